"""Forward hooks that record what named layers output, and never outlive their ``with`` block.

>>> model = build_model("mlp", input_shape=(64,), n_classes=10)   # doctest: +SKIP
>>> with capture(model, ["hidden1", "hidden2"]) as acts:           # doctest: +SKIP
...     logits = model(x)
>>> acts["hidden2"].shape                                          # doctest: +SKIP
torch.Size([32, 64])

Works on any ``nn.Module``: names are those of ``model.named_modules()`` (see
:func:`layer_names`), and ``"input"`` (:data:`INPUT`) records what the model itself is given,
so a capture can run from the input to the logits (the head's output). The hooks are removed
in ``finally``, so an exception in the forward pass leaves the model exactly as it was.
"""

from __future__ import annotations

import contextlib
import difflib
import warnings
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn

from .errors import ConfigError, LayerNotFound

__all__ = [
    "INPUT",
    "capture",
    "embedding_layers",
    "find_layers",
    "head_layer",
    "layer_names",
    "penultimate_layer",
    "resolve_layers",
]

_PASS_THROUGH = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.Flatten,
    nn.Identity,
)


# The name under which :func:`capture` records the model's own input. No module outputs it,
# so it is not among layer_names(); a model with a sub-module of that name keeps its module.
INPUT = "input"


def layer_names(model: nn.Module, *, leaves_only: bool = False) -> list[str]:
    """Every layer :func:`capture` accepts, in registration order (``leaves_only``: no
    containers); ``capture`` also takes :data:`INPUT`, the model's input."""
    return [
        name
        for name, m in model.named_modules()
        if name and (not leaves_only or not any(True for _ in m.children()))
    ]


def records_input(model: nn.Module, name: str) -> bool:
    """Whether ``name`` asks :func:`capture` for the model's input (:data:`INPUT`, unless the
    model has a sub-module of that name)."""
    return name == INPUT and name not in dict(model.named_modules())


def find_layers(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    """The modules called ``names`` in ``model``, by name; a name that is not there raises
    LayerNotFound (a KeyError) with the closest names (a typo should never cost a training run).
    :data:`INPUT` is accepted and skipped: no module outputs the model's input."""
    modules = dict(model.named_modules())
    out = {}
    for name in names:
        if records_input(model, name):
            continue
        if name not in modules or name == "":
            close = difflib.get_close_matches(str(name), list(modules)[1:], n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise LayerNotFound(
                f"{type(model).__name__} has no layer {name!r}.{hint} "
                f"labkit.layer_names(model) lists them all."
            )
        out[name] = modules[name]
    return out


@contextlib.contextmanager
def capture(
    model: nn.Module, layers: str | Iterable[str], *, detach: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` during forward passes inside the ``with`` block.

    Yields a dict keyed by layer name, holding each layer's output of the latest forward
    pass (detached unless ``detach=False``); ``acts["input"]`` is the tensor the model was
    called with, when :data:`INPUT` is among ``layers``. Every hook is removed on exit, also
    on error.
    """
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    targets = find_layers(model, layers)
    acts: dict[str, torch.Tensor] = {}
    handles = []

    def recorder(name: str):
        def hook(_module, _inputs, output):
            if isinstance(output, (tuple, list)):  # e.g. an RNN's (output, state)
                output = output[0]
            acts[name] = output.detach() if detach else output

        return hook

    def input_recorder(_module, inputs):
        acts[INPUT] = inputs[0].detach() if detach else inputs[0]

    try:
        if _mode_dependent(model):
            handles.append(model.register_forward_pre_hook(_warn_once_if_training()))
        if any(records_input(model, name) for name in layers):
            # A pre-hook on the model itself: it sees the input before any layer does.
            handles.append(model.register_forward_pre_hook(input_recorder))
        for name, module in targets.items():
            handles.append(module.register_forward_hook(recorder(name)))
        yield acts
    finally:
        for handle in handles:
            handle.remove()


# Layers that compute differently in training mode: what a capture then records is not
# what the model computes when it is used, and BatchNorm's running statistics move.
_MODE_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def _mode_dependent(model: nn.Module) -> list[str]:
    return sorted({type(m).__name__ for m in model.modules() if isinstance(m, _MODE_DEPENDENT)})


def _warn_once_if_training():
    """A forward pre-hook that says so, once a block, when a forward pass runs in training
    mode on a model with BatchNorm or dropout. The mode is left as it is: capturing during
    training is a use of its own, and ``model.eval()`` inside the block is as good as before."""
    said = []

    def hook(model: nn.Module, _inputs) -> None:
        if model.training and not said:
            said.append(True)
            warnings.warn(
                f"capture: {type(model).__name__} ran in training mode, so its "
                f"{', '.join(_mode_dependent(model))} computed as in training (BatchNorm's "
                f"running statistics changed); call model.eval() first to record what the "
                f"model computes",
                stacklevel=2,
            )

    return hook


def head_layer(model: nn.Module) -> str:
    """Name of the classifier head: ``model.head`` for kit models, else the last ``nn.Linear``."""
    linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if "head" in dict(model.named_children()):
        return "head"
    if not linear:
        raise ConfigError(
            f"{type(model).__name__} has no nn.Linear head; name the layers to "
            f"capture explicitly, e.g. layers=['fc1']"
        )
    return linear[-1]


def embedding_layers(model: nn.Module) -> list[str]:
    """The representation layers, shallow to deep; the last is the penultimate layer.

    Kit models list them in ``model.embedding_layers``. For other models: walk the top-level
    children up to the head; each module with weights, together with the parameter-free
    modules after it (its activation, pooling), forms one layer, represented by its last
    module. Dropout and Flatten are skipped (identities at evaluation time).
    """
    if hasattr(model, "embedding_layers"):
        return list(model.embedding_layers)
    head = head_layer(model)
    top = head.split(".")[0]
    children = list(model.named_children())
    if not children:
        raise ConfigError(f"{type(model).__name__} has no sub-modules to capture")
    groups: list[str] = []
    for name, child in children:
        if name == top:
            break
        if isinstance(child, _PASS_THROUGH):
            continue
        has_weights = any(True for _ in child.parameters())
        if has_weights or not groups:
            groups.append(name)
        else:
            groups[-1] = name  # activation/pool after a weighted layer: its output is the layer's
    if not groups:
        raise ConfigError(
            f"could not find layers before the head {head!r} of "
            f"{type(model).__name__}; pass layers=[...] explicitly "
            f"(labkit.layer_names(model) lists them)"
        )
    return groups


def penultimate_layer(model: nn.Module) -> str:
    """The layer whose output feeds the classifier head, found without naming it."""
    return embedding_layers(model)[-1]


def resolve_layers(model: nn.Module, layers: str | Sequence[str] | None) -> list[str]:
    """``"penultimate"``, ``"all"`` or ``None`` (every representation layer, as ``None``
    means in every function that takes ``layers``), explicit names, or ``()`` (none).

    Explicit names are those of :func:`layer_names` and ``"input"``, the model's input
    (flattened, like every capture): ``["input", *embedding_layers(model), head_layer(model)]``
    runs from the pixels to the logits. ``"all"`` holds the representation layers only, so
    what the command line exports and measures with ``--layers all`` is unchanged.
    """
    if layers is None or layers == "all":
        return embedding_layers(model)
    if layers == "penultimate":
        return [penultimate_layer(model)]
    names = [layers] if isinstance(layers, str) else list(layers)
    find_layers(model, names)  # fail early, with suggestions, on a typo
    return names
