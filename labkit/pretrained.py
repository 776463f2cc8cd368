"""Embeddings from a network trained on ImageNet, to set beside the lab network's.

A pretrained backbone's penultimate layer is the embedding most practitioners start from.
``pretrained_embedding(images)`` runs images through a torchvision model with its ImageNet
weights and returns that layer, one row per image, for the same k-NN and neighbour measures
the labs apply to their own network. The weights are downloaded once by torchvision (about
45 MB for ResNet-18, kept in ``$TORCH_HOME/hub/checkpoints``); where there is no internet
and no copy, :class:`PretrainedUnavailable` says so and the lab's optional cell moves on.

The layer is read with torchvision's ``create_feature_extractor`` (activations by node
name, as the kit's hooks record them by module name): for the ResNets, ``flatten``, the
pooled features the classifier ``fc`` reads.

The weights file is read as tensors only (``torch.load(weights_only=True)``): a file that
asks to run code is refused, whatever its name. A file whose sha256 is not the one its name
carries (torchvision's files are named ``<model>-<first 8 hex digits of sha256>.pth``) is
still read that way, with a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from torch.nn import functional as F

from .data.raw import short_error
from .errors import LabkitError

__all__ = ["PretrainedUnavailable", "pretrained_embedding"]


class PretrainedUnavailable(LabkitError, OSError):
    """The pretrained weights could not be had here (no internet and no copy on disk, or a
    copy that is not a file of weights)."""


def _weights(name: str):
    import torchvision

    try:
        return torchvision.models.get_model_weights(name).DEFAULT
    except (KeyError, ValueError):
        known = ", ".join(sorted(torchvision.models.list_models(torchvision.models)))
        raise PretrainedUnavailable(
            f"torchvision has no model {name!r}; its image classifiers: {known}"
        ) from None


def _checkpoint_path(weights) -> Path:
    """Where torch.hub keeps (or will download) the file of ``weights``, as
    ``load_state_dict_from_url`` names it."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _check_published_hash(path: Path, name: str) -> None:
    """Warn when ``path``'s sha256 does not start with the digits its name carries."""
    found = torch.hub.HASH_REGEX.search(path.name)
    if found is None:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(found.group(1)):
        warnings.warn(
            f"{path} is not the published file of {name}'s ImageNet weights (its sha256 "
            f"does not start with {found.group(1)}): it is read as tensors only, so nothing "
            f"in it runs; if you did not put it there, delete it to download the real one",
            stacklevel=4,
        )


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Every ``torch.load`` in the block reads tensors only. torchvision's builders read the
    checkpoint through ``torch.hub.load_state_dict_from_url``, whose ``weights_only`` is
    False and which they give no way to change; torch's own switch for that is this
    environment variable, read by each ``torch.load``. Building through torchvision keeps
    each model's own loading (densenet's renamed keys, inception's auxiliary head)."""
    names = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved = {n: os.environ.pop(n) for n in names if n in os.environ}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        os.environ.update(saved)


def _pretrained_model(name: str, weights) -> torch.nn.Module:
    """torchvision's ``name`` with ``weights``, downloaded once (torch.hub checks the sha256
    of a download); a copy already on disk is read as tensors only."""
    import torchvision

    path = _checkpoint_path(weights)
    on_disk = path.exists()
    try:
        with _weights_only_loads():
            model = torchvision.models.get_model(name, weights=weights)
    except Exception as err:
        if on_disk:  # whatever stopped it, the file there is not one to use
            raise PretrainedUnavailable(
                f"{path} is not a file of {name}'s ImageNet weights ({_why_unreadable(err)}), "
                f"so it was not used; delete it to download the real one"
            ) from None
        if isinstance(err, (OSError, RuntimeError)):  # urllib's URLError is an OSError
            raise PretrainedUnavailable(
                f"the ImageNet weights of {name} could not be downloaded ({err}); this needs "
                f"internet once (Colab has it), or the file {path.name} in {path.parent}, "
                f"downloaded from {weights.url}"
            ) from None
        raise
    if on_disk:  # a download was checked as it came; a copy put there is checked here
        _check_published_hash(path, name)
    return model


def _why_unreadable(err: Exception) -> str:
    """What stopped a checkpoint's reading, in a few words (torch's refusal of a pickle that
    is not tensors alone runs to a paragraph of advice around one line of cause)."""
    text = str(err)
    cause = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:\n\n|$)", text, re.S)
    if cause is None:
        return f"{type(err).__name__}: {short_error(text)}"
    named = re.match(r"Unsupported global: GLOBAL ([\w.]+)", cause.group(1))
    if named:
        return f"it asks to run {named.group(1)}"
    return f"it is not a pickle of tensors alone: {short_error(cause.group(1))}"


def pretrained_embedding(
    images: torch.Tensor,
    *,
    name: str = "resnet18",
    layer: str = "flatten",
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """The ``layer`` of torchvision's ``name`` with its ImageNet weights, for ``images``.

    ``images`` is ``[n, C, H, W]`` with values in [0, 1], as ``load_dataset(...,
    normalise=False)`` gives them; one channel is repeated to three, and each image is
    resized to the weights' input size and standardised with ImageNet's statistics, as the
    network was trained. Returns a float32 array ``[n, width]`` (512 for ResNet-18).
    Raises :class:`PretrainedUnavailable` when the weights cannot be downloaded or found.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    images = torch.as_tensor(images, dtype=torch.float32)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"images should be [n, 1 or 3 channels, height, width]; got {tuple(images.shape)}"
        )
    weights = _weights(name)
    model = _pretrained_model(name, weights)
    device = torch.device(device) if device is not None else images.device
    extractor = create_feature_extractor(model, return_nodes={layer: "embedding"})
    extractor.eval().to(device)
    preset = weights.transforms()
    size = preset.crop_size[0]
    mean = torch.tensor(preset.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(preset.std, device=device).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            out.append(extractor((x - mean) / std)["embedding"].flatten(1).float().cpu())
    return torch.cat(out).numpy()
