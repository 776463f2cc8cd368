"""Train a classifier and snapshot the probe set's embeddings before training and after each epoch.

The loop is deliberately plain: the data sit whole on the device, every batch is a tensor
index (no DataLoader, no per-item transforms), and evaluation is one pass over the test
split. The capture rides on that pass: the probe set is part of the test split, so it is
evaluated first with the hooks on, then the rest of the split without them. Capturing costs
only the copy of the probe activations.

>>> data = load_dataset("digits")                                   # doctest: +SKIP
>>> model = build_model("cnn", data.input_shape, data.n_classes)    # doctest: +SKIP
>>> snaps = train(model, data, epochs=10)                           # doctest: +SKIP
>>> snaps.embeddings["embed"].shape                                 # doctest: +SKIP
(11, 450, 64)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import LabData
from .errors import ConfigError, DivergedError, LabkitError
from .hooks import capture, embedding_layers, find_layers, head_layer, penultimate_layer
from .snapshots import Snapshots

__all__ = ["PRECISIONS", "resolve_precision", "evaluate", "pick_device", "resolve_layers", "train"]

# Above this many bytes of snapshots we warn: conv feature maps flatten to thousands of dims.
_WARN_BYTES = 2 * 1024**3


def _whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def check_training(
    model: nn.Module,
    data: LabData | None = None,
    *,
    epochs: int = 10,
    batch_size: int | None = None,
    lr: float = 1e-3,
    seed: int = 0,
) -> None:
    """Raise :class:`ConfigError` for arguments :func:`train` cannot use, before any work."""
    if not _whole(epochs) or epochs < 0:
        raise ConfigError(f"epochs must be a whole number >= 0, got {epochs!r}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        raise ConfigError(f"the learning rate must be a finite number > 0, got {lr!r}")
    if not _whole(seed) or seed < 0:
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
    if batch_size is not None:
        smallest = 2 if has_batch_norm(model) else 1
        if not _whole(batch_size) or batch_size < smallest:
            why = (
                " (the model has BatchNorm, which needs two samples a batch)"
                if smallest == 2
                else ""
            )
            raise ConfigError(
                f"batch size must be a whole number >= {smallest}{why}, got {batch_size!r}"
            )
    if data is not None:
        head = dict(model.named_modules()).get(head_layer(model))
        outputs = getattr(head, "out_features", None)
        if outputs is not None and outputs < data.n_classes:
            raise ConfigError(
                f"the data has {data.n_classes} classes but the model's head has {outputs} "
                f"outputs; build the model with n_classes=data.n_classes"
            )


DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` gives CUDA when it is available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(
            f"unknown device {str(device)!r}; use one of {', '.join(DEVICES)}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LabkitError(
            "device='cuda' was asked for but torch sees no CUDA GPU; "
            "use device='auto' or 'cpu' (on Colab: Runtime > Change runtime type)"
        )
    return device


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), where bf16 is
    about 1.5x faster than fp32; elsewhere torch emulates it, slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, name)() for name in checks if hasattr(torch.cpu, name))
    except RuntimeError:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """What ``precision`` means on ``device``: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``"auto"``: bf16 where the hardware has it (a CPU with AVX512-BF16 or AMX, a CUDA GPU
    from Ampere on), fp16 on older CUDA GPUs (a Colab T4), fp32 elsewhere. Mixed precision:
    weights stay fp32; the forward pass and its gradients are computed in the lower one.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and _native_bf16_cpu():
        return "bf16"
    return "fp32"


_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor (an epoch's order, a batch's mirror flips) on ``device``.

    The draws stay on the CPU's generator, so a seed gives the same run on any device. On a
    GPU the copy goes through pinned memory without waiting: a copy from ordinary memory
    would hold the loop until every kernel queued before it had run, once a batch."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _autocast(device: torch.device, precision: str):
    dtype = _DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def auto_batch_size(n_train: int, largest: int = 128, min_steps: int = 20) -> int:
    """128, or smaller (down to 8) so that an epoch has at least ``min_steps`` steps."""
    return max(8, min(largest, n_train // min_steps))


def resolve_layers(model: nn.Module, layers: str | Sequence[str]) -> list[str]:
    """``"penultimate"``, ``"all"`` (every representation layer), explicit names, or ``None``.

    Explicit names are those of :func:`labkit.layer_names` and ``"input"``, the model's input
    (flattened, like every capture): ``["input", *embedding_layers(model), head_layer(model)]``
    runs from the pixels to the logits. ``"all"`` holds the representation layers only, so
    what the command line exports and measures with ``--layers all`` is unchanged.
    """
    if layers is None:
        return []
    if layers == "penultimate":
        return [penultimate_layer(model)]
    if layers == "all":
        return embedding_layers(model)
    names = [layers] if isinstance(layers, str) else list(layers)
    find_layers(model, names)  # fail early, with suggestions, on a typo
    return names


def _batches(n: int, size: int, no_singleton: bool = False):
    """Slices of ``size``; with ``no_singleton`` a last batch of one joins the one before
    (batch norm cannot train on a single sample)."""
    starts = list(range(0, n, size))
    if no_singleton and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for i, start in enumerate(starts):
        yield slice(start, starts[i + 1] if i + 1 < len(starts) else n)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    data: LabData,
    layers: Sequence[str] = (),
    batch_size: int = 1024,
    *,
    precision: str = "fp32",
) -> dict:
    """Loss and accuracy on the whole test split, plus the probe set's captured activations.

    Returns ``{"test_loss", "test_acc", "embeddings": {layer: [n_probe, dim]},
    "probabilities": [n_probe, C]}`` (arrays as float32 numpy). A test-split probe's forward
    pass counts towards the test metrics (each test sample goes through once).

    ``precision`` (see :func:`resolve_precision`) applies to the rest of the test split; the
    probe pass always runs in fp32, so the captured embeddings are full precision whatever
    the hardware (and cost little: the probe is a fifth of the split).
    """
    was_training = model.training
    model.eval()
    device = data.x_test.device
    probe = data.probe_index.to(device)
    in_test = data.probe_split == "test"
    x_probe, y_probe = (data.x_test, data.y_test) if in_test else (data.x_train, data.y_train)
    rest = torch.ones(len(data.y_test), dtype=torch.bool, device=device)
    if in_test:
        rest[probe] = False
    rest_idx = rest.nonzero().squeeze(1)

    loss_sum, correct = 0.0, 0
    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    probs = []
    with capture(model, list(layers)) as acts:
        for sl in _batches(len(probe), batch_size):
            idx = probe[sl]
            logits = model(x_probe[idx])
            if in_test:
                y = y_probe[idx]
                loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(1) == y).sum().item()
            probs.append(logits.float().softmax(1).cpu())
            for name in layers:
                chunks[name].append(acts[name].flatten(1).float().cpu())
    precision = resolve_precision(precision, device)
    for sl in _batches(len(rest_idx), batch_size):  # hooks are gone: no capture cost here
        idx = rest_idx[sl]
        with _autocast(device, precision):
            logits = model(data.x_test[idx])
        y = data.y_test[idx]
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train(was_training)
    n = len(data.y_test)
    return {
        "test_loss": loss_sum / n,
        "test_acc": correct / n,
        "embeddings": {k: torch.cat(v).numpy() for k, v in chunks.items()},
        "probabilities": torch.cat(probs).numpy(),
    }


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="batch", dynamic_ncols=True, leave=True)


def train(
    model: nn.Module,
    data: LabData,
    epochs: int = 10,
    layers: str | Sequence[str] | None = "penultimate",
    *,
    batch_size: int | None = None,
    lr: float = 1e-3,
    weight_decay: float = 5e-4,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    eval_batch_size: int = 1024,
    precision: str = "auto",
) -> Snapshots:
    """Train ``model`` on ``data`` with AdamW and a cosine schedule; snapshot the probe set.

    The probe embeddings of ``layers`` (``"penultimate"``, ``"all"``, a list of names, or
    ``None`` for no capture; see :func:`resolve_layers`) are recorded at epoch 0, before any
    update, and after every epoch. With the same ``seed`` a CPU run is repeatable bit for bit; the global RNG state is restored afterwards.
    ``batch_size=None`` picks 128, or less for small training sets so that an epoch takes
    at least 20 steps (a 100-article text set would otherwise learn one step an epoch).

    ``precision="auto"`` trains in mixed precision where the hardware computes it natively
    (bfloat16 on a CPU with AVX512-BF16 or AMX and on recent GPUs, float16 with loss scaling
    on older GPUs), else in fp32; ``"fp32"``, ``"bf16"`` or ``"fp16"`` force one. Weights
    stay fp32 and the probe is always captured in fp32 (see :func:`evaluate`); a bf16 run's
    accuracy matches an fp32 run's within a point (tests/test_train.py).

    Photographs (``data.mirror``, as CIFAR-10 sets it) are augmented: a random half of each
    training batch is mirrored left-right. The probe and the test split never are.

    What it does to ``model``: trains its weights in place (they end as the last epoch's),
    moves it to ``device``, puts an image model in channels-last memory format (faster
    convolutions; results are the same), and leaves it in evaluation mode. All three stay
    after the call, so ``model`` is ready for :func:`evaluate` or :func:`labkit.capture`.
    """
    check_training(model, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    device = pick_device(device)
    precision = resolve_precision(precision, device)
    names = resolve_layers(model, layers)
    model.to(device)
    data = data.to(device)
    if data.x_train.dim() == 4:
        # Channels-last is the layout oneDNN (CPU) and cuDNN convolutions run fastest in:
        # about 1.6x per epoch for the MNIST CNN on a 2-core CPU. Converted once, up front.
        model.to(memory_format=torch.channels_last)
        data = replace(
            data,
            x_train=data.x_train.contiguous(memory_format=torch.channels_last),
            x_test=data.x_test.contiguous(memory_format=torch.channels_last),
        )
    head = dict(model.named_modules())[head_layer(model)]
    n_train = len(data.y_train)
    if batch_size is None:
        batch_size = auto_batch_size(n_train)
    batches = list(_batches(n_train, batch_size, no_singleton=True))  # the same every epoch
    mirror = data.mirror and data.x_train.dim() == 4
    steps = len(batches)

    n_probe = len(data.probe_index)
    history: list[dict] = []
    emb: dict[str, np.ndarray] = {}
    probabilities = np.zeros((epochs + 1, n_probe, data.n_classes), np.float32)
    head_w: list[np.ndarray] = []
    head_b: list[np.ndarray] = []

    def snapshot(
        epoch: int, train_loss: float | None, train_acc: float | None, seconds: float
    ) -> dict:
        ev = evaluate(model, data, names, eval_batch_size, precision=precision)
        for name, a in ev["embeddings"].items():
            if name not in emb:
                emb[name] = np.zeros((epochs + 1, *a.shape), np.float32)
                _warn_if_large(name, emb[name].nbytes, len(names))
            emb[name][epoch] = a
        probabilities[epoch] = ev["probabilities"]
        if isinstance(head, nn.Linear):
            head_w.append(head.weight.detach().float().cpu().numpy().copy())
            if head.bias is not None:
                head_b.append(head.bias.detach().float().cpu().numpy().copy())
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": ev["test_loss"],
            "test_acc": ev["test_acc"],
            "seconds": round(seconds, 3),
        }
        history.append(row)
        return row

    started = time.perf_counter()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)  # dropout draws; restored on exit so callers see no change
        shuffle = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=lr,
            total_steps=max(1, epochs * steps),
            pct_start=0.15,
            anneal_strategy="cos",
        )
        # float16 needs its loss scaled, or small gradients underflow to zero; bfloat16 has
        # fp32's range and does not.
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        last = snapshot(0, None, None, 0.0)
        bar = _progress(epochs * steps, progress)
        try:
            for epoch in range(1, epochs + 1):
                model.train()
                loss_sum = torch.zeros((), device=device)
                correct = torch.zeros((), device=device, dtype=torch.int64)
                order = _to_device(torch.randperm(n_train, generator=shuffle), device)
                if bar is not None:
                    bar.set_description(f"epoch {epoch}/{epochs}")
                for sl in batches:
                    idx = order[sl]
                    x, y = data.x_train[idx], data.y_train[idx]
                    if mirror:
                        # Mirror a random half of the batch left-right: the standard
                        # augmentation for photographs, worth points on CIFAR-10's test set.
                        flip = _to_device(torch.rand(len(idx), generator=shuffle) < 0.5, device)
                        x = torch.where(flip[:, None, None, None], x.flip(3), x)
                    with _autocast(device, precision):
                        logits = model(x)
                    loss = F.cross_entropy(logits.float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    schedule.step()
                    # Accumulate on the device: .item() per batch would sync a GPU every step.
                    loss_sum += loss.detach() * len(y)
                    correct += (logits.detach().argmax(1) == y).sum()
                    if bar is not None:
                        bar.update(1)
                train_loss = loss_sum.item() / n_train
                if not math.isfinite(train_loss):
                    raise DivergedError(
                        f"training diverged at epoch {epoch} (loss {train_loss}); try a lower "
                        f"learning rate than {lr:g} (--lr, or lr= in train)"
                    )
                last = snapshot(
                    epoch, train_loss, correct.item() / n_train, time.perf_counter() - started
                )
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{last['train_loss']:.3f}", test_acc=f"{last['test_acc']:.3f}"
                    )
        finally:
            if bar is not None:
                bar.close()
    model.eval()

    preds = probabilities.argmax(2).astype(np.int64)
    return Snapshots(
        embeddings=emb,
        labels=data.y_probe.cpu().numpy().astype(np.int64),
        predictions=preds,
        probabilities=probabilities,
        titles=list(data.titles),
        class_names=list(data.class_names),
        history=history,
        probe_index=data.probe_index.cpu().numpy().astype(np.int64),
        head_weights=np.stack(head_w) if head_w else None,
        head_bias=np.stack(head_b) if head_b else None,
        thumbnails=data.thumbnails,
        flipped=data.flipped,
        snippets=list(data.snippets) if data.snippets else None,
        meta={
            "dataset": data.name,
            "kind": data.kind,
            "probe_split": data.probe_split,
            "model": getattr(model, "kind", type(model).__name__),
            "model_class": type(model).__name__,
            "penultimate": _penultimate_among(model, names) if names else None,
            "epochs": epochs,
            "seed": seed,
            "device": device.type,
            "precision": precision,
            "mirror": mirror,
            "batch_size": batch_size,
            "lr": lr,
            "n_train": n_train,
            "n_test": len(data.y_test),
        },
    )


def _penultimate_among(model: nn.Module, names: list[str]) -> str:
    try:
        pen = penultimate_layer(model)
    except ValueError:
        return names[-1]
    return pen if pen in names else names[-1]


def _warn_if_large(name: str, nbytes: int, n_layers: int) -> None:
    total = nbytes * n_layers
    if total > _WARN_BYTES:
        import warnings

        warnings.warn(
            f"capturing {n_layers} layer(s) like {name!r} will hold about "
            f"{total / 1024**3:.1f} GiB of snapshots; capture fewer layers or use a "
            f"smaller probe set (probe_size=...)",
            stacklevel=3,
        )
