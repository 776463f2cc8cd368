"""Train a classifier and snapshot the probe set's embeddings before training and after each epoch.

The loop is the one students write in Lab 1, made fast: the data sit whole on the device and
a batch is a tensor index (:mod:`labkit.batches`), the forward pass runs in mixed precision
where the hardware has it (:mod:`labkit.device`), and the probe is recorded by the
evaluation pass after every epoch (:mod:`labkit.record`).

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

import torch
import torch.nn.functional as F
from torch import nn

from ..data import LabData
from ..errors import ConfigError, DivergedError
from ..hooks import head_layer, penultimate_layer, resolve_layers
from ..snapshots import Snapshots
from . import runcache
from .batches import TrainingBatches, auto_batch_size
from .device import autocast, loss_scaler, pick_device, resolve_precision
from .record import Recorder
from .settings import TrainSettings

__all__ = ["check_training", "train"]


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
    cache: bool = True,
) -> Snapshots:
    """Train ``model`` on ``data`` with AdamW and a cosine schedule; snapshot the probe set.

    The probe embeddings of ``layers`` (``"penultimate"``; ``"all"`` or ``None``, every
    representation layer; a list of names; or ``()`` for no capture: see
    :func:`labkit.hooks.resolve_layers`) are recorded at epoch 0, before any update, and
    after every epoch. With the same ``seed`` a CPU run is repeatable bit for bit; the
    global RNG state is restored afterwards.
    ``batch_size=None`` picks 128, or less for small training sets so that an epoch takes
    at least 20 steps (a 100-article text set would otherwise learn one step an epoch).

    ``precision="auto"`` trains in mixed precision where the hardware computes it natively
    (bfloat16 on a CPU with AVX512-BF16 or AMX and on recent GPUs, float16 with loss scaling
    on older GPUs), else in fp32; ``"fp32"``, ``"bf16"`` or ``"fp16"`` force one. Weights
    stay fp32 and the probe is always captured in fp32 (see :func:`labkit.evaluate`); a bf16
    run's accuracy matches an fp32 run's within a point (tests/test_train.py).

    Photographs (``data.mirror``, as CIFAR-10 sets it) are augmented: a random half of each
    training batch is mirrored left-right. The probe and the test split never are.

    What it does to ``model``: trains its weights in place (they end as the last epoch's),
    moves it to ``device``, puts an image model in channels-last memory format (faster
    convolutions; results are the same), and leaves it in evaluation mode. All three stay
    after the call, so ``model`` is ready for :func:`labkit.evaluate` or :func:`labkit.capture`.

    ``cache=True`` looks the run up in the run cache first (:mod:`labkit.training.runcache`): the
    same model, weights, data and settings trained before on this device are loaded, not
    trained again (the result is the same, bit for bit), and ``model`` ends with the trained
    weights as it would have. ``cache=False`` always trains (and keeps nothing).
    """
    asked = TrainSettings(
        epochs=epochs,
        layers=layers,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        device=device,
        precision=precision,
        eval_batch_size=eval_batch_size,
        cache=cache,
    )
    check_training(model, data, asked)
    device = pick_device(asked.device)
    settings = asked.resolved(
        layers=resolve_layers(model, asked.layers),
        batch_size=asked.batch_size or auto_batch_size(len(data.y_train)),
        device=device,
        precision=resolve_precision(asked.precision, device),
    )
    key = runcache.run_key(model, data, settings) if cache else None
    data = _place(model, data, device)
    epochs, names, precision = settings.epochs, list(settings.layers), settings.precision
    batches = TrainingBatches(data, settings.batch_size, settings.seed)
    recorder = Recorder(
        model, data, names, epochs, batch_size=settings.eval_batch_size, precision=precision
    )
    entry = key and runcache.load(
        key, model_state=model.state_dict(), n_probe=len(data.probe_index), n_classes=data.n_classes
    )
    if entry:
        return _restore(entry, model, recorder)

    started = time.perf_counter()
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)  # dropout draws; restored on exit: callers see none
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
        )
        schedule = _one_cycle(optimizer, settings.lr, steps=epochs * len(batches))
        scaler = loss_scaler(device, precision)
        recorder.record(0)  # epoch 0: before any update
        with _progress(epochs * len(batches), progress) as bar:
            for epoch in range(1, epochs + 1):
                bar.set_description(f"epoch {epoch}/{epochs}")
                loss, acc = _train_epoch(
                    model, batches, optimizer, schedule, scaler, precision, bar
                )
                if not math.isfinite(loss):
                    raise DivergedError(
                        f"training diverged at epoch {epoch} (loss {loss}); try a lower "
                        f"learning rate than {settings.lr:g} (--lr, or lr= in train)"
                    )
                row = recorder.record(
                    epoch, train_loss=loss, train_acc=acc, seconds=time.perf_counter() - started
                )
                bar.set_postfix(loss=f"{loss:.3f}", test_acc=f"{row['test_acc']:.3f}")
    model.eval()
    meta = _meta(model, data, settings, batches)
    if key:
        _keep(key, model, recorder, meta)
    return recorder.snapshots(meta)


def _train_epoch(
    model: nn.Module,
    batches: TrainingBatches,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    precision: str,
    bar,
) -> tuple[float, float]:
    """One pass over the training data: the pass's mean loss and accuracy."""
    model.train()
    device = batches.x.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for x, y in batches:
        with autocast(device, precision):
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
        bar.update(1)
    n = len(batches.y)
    return loss_sum.item() / n, correct.item() / n


def _one_cycle(optimizer: torch.optim.Optimizer, lr: float, steps: int):
    """Warm up to ``lr`` over the first 15 % of the steps, then anneal along a cosine."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=max(1, steps), pct_start=0.15, anneal_strategy="cos"
    )


def _keep(key: str, model: nn.Module, recorder: Recorder, meta: dict) -> None:
    """Store the finished run in the run cache under ``key``."""
    entry = runcache.Entry(
        embeddings=recorder.embeddings,
        probabilities=recorder.probabilities,
        head_weights=recorder.head_weights,
        head_bias=recorder.head_bias,
        history=recorder.history,
        meta=meta,
        state=model.state_dict(),
        trained_at=time.time(),
    )
    runcache.store(key, entry)


def _restore(entry: runcache.Entry, model: nn.Module, recorder: Recorder) -> Snapshots:
    """A cached run as :func:`train` would have returned it, ``model`` in its trained state."""
    model.load_state_dict(entry.state)  # copied into the placed (channels-last) weights
    model.eval()
    recorder.embeddings = entry.embeddings
    recorder.probabilities = entry.probabilities
    recorder.head_weights, recorder.head_bias = entry.head_weights, entry.head_bias
    recorder.history = entry.history
    runcache.announce(entry)
    return recorder.snapshots(entry.meta)


def _place(model: nn.Module, data: LabData, device: torch.device) -> LabData:
    """``model`` and ``data`` on ``device``; an image model and its images in channels-last,
    the layout oneDNN (CPU) and cuDNN convolutions run fastest in: about 1.6x per epoch for
    the MNIST CNN on a 2-core CPU. Converted once, up front."""
    model.to(device)
    data = data.to(device)
    if data.x_train.dim() == 4:
        model.to(memory_format=torch.channels_last)
        data = replace(
            data,
            x_train=data.x_train.contiguous(memory_format=torch.channels_last),
            x_test=data.x_test.contiguous(memory_format=torch.channels_last),
        )
    return data


def _progress(total: int, enabled: bool):
    """A progress bar over the run's batches; switched off, every call on it does nothing."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="batch", dynamic_ncols=True, leave=True, disable=not enabled)


def _meta(model: nn.Module, data: LabData, settings: TrainSettings, batches) -> dict:
    """What the snapshots say about their run: the data, the model, and the settings that
    trained it (resolved: the layers by name, the batch size, the device, the precision)."""
    names = list(settings.layers)
    return {
        "dataset": data.name,
        "kind": data.kind,
        "probe_split": data.probe_split,
        "model": getattr(model, "kind", type(model).__name__),
        "model_class": type(model).__name__,
        "penultimate": _penultimate_among(model, names) if names else None,
        **settings.record(),
        "device": torch.device(settings.device).type,
        "mirror": batches.mirror,
        "n_train": len(data.y_train),
        "n_test": len(data.y_test),
    }


def _penultimate_among(model: nn.Module, names: list[str]) -> str:
    try:
        pen = penultimate_layer(model)
    except ValueError:
        return names[-1]
    return pen if pen in names else names[-1]


# -- arguments ------------------------------------------------------------------------------


def check_training(model: nn.Module, data: LabData, settings: TrainSettings) -> None:
    """Raise :class:`ConfigError` for a model, data or settings :func:`train` cannot use,
    before any work (the settings' own rules are checked when the record is built)."""
    settings.check_model(model)
    _check_head(model, data)
    _check_data(data)


def _check_head(model: nn.Module, data: LabData) -> None:
    head = dict(model.named_modules()).get(head_layer(model))
    outputs = getattr(head, "out_features", None)
    if outputs is not None and outputs != data.n_classes:
        raise ConfigError(
            f"the data has {data.n_classes} classes but the model's head has {outputs} "
            f"outputs; build the model with n_classes=data.n_classes"
        )


def _check_data(data: LabData) -> None:
    """The tensors of ``data`` as :class:`LabData` describes them: float32 inputs, finite,
    labels that are class indices, one label per input."""
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if x.dtype != torch.float32:
            raise ConfigError(
                f"x_{split} holds {x.dtype} values and the models compute in float32; "
                f"convert it with x_{split}.float()"
            )
        if len(x) != len(y):
            raise ConfigError(
                f"x_{split} has {len(x)} samples but y_{split} has {len(y)} labels; give "
                f"one label per sample"
            )
        if len(y) == 0:
            raise ConfigError(f"the {split} split is empty; give it at least one sample")
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
            raise ConfigError(
                f"x_{split} holds NaN or infinite values in {bad} sample(s); replace or "
                f"drop them before training (torch.nan_to_num, or a mask)"
            )
        if y.dtype != torch.int64:
            raise ConfigError(
                f"y_{split} holds {y.dtype} values and labels are int64 class indices; "
                f"convert it with y_{split}.long()"
            )
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= data.n_classes:
            raise ConfigError(
                f"y_{split} holds the label {low if low < 0 else high}, outside the "
                f"{data.n_classes} classes (0..{data.n_classes - 1}) of class_names"
            )
    # What the snapshots will say of the probe: checked now, not after the training.
    if not all(isinstance(name, str) for name in data.class_names):
        raise ConfigError("class_names should all be str; give each class a name")
    n = len(getattr(data, f"y_{data.probe_split}"))
    probe = data.probe_index
    if len(probe) and (int(probe.min()) < 0 or int(probe.max()) >= n):
        raise ConfigError(
            f"probe_index holds {int(probe.max())}, outside the {n} samples of the "
            f"{data.probe_split} split it indexes"
        )
    if len(data.titles) != len(probe) or not all(isinstance(t, str) for t in data.titles):
        raise ConfigError(
            f"titles should be {len(probe)} str, one for each probe sample (probe_index), "
            f"got {len(data.titles)} of types {sorted({type(t).__name__ for t in data.titles})}"
        )
