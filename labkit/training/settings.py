"""One record of how a run trains, checked in one place.

:func:`labkit.train` builds a :class:`TrainSettings` from its keywords, ``labkit.experiment.run``
and the command line build the same record before any data is loaded (so a bad learning rate
is one sentence before a download, not after it), and what the run cache's key and the
snapshots' ``meta`` say of the training is read from it, resolved for the model and the data
(:meth:`TrainSettings.resolved`). Each rule is written once, here: the command line parses
the text of its flags and leaves the judging to this record.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks import check_seed, is_whole
from ..errors import ConfigError
from .device import DEVICES, PRECISIONS

__all__ = ["LR_MAX", "TrainSettings", "has_batch_norm"]

# The largest learning rate AdamW can apply: the weights are float32, and torch refuses a
# step size beyond float32's range (larger rates below it simply diverge, which is shown).
LR_MAX = float(np.finfo(np.float32).max)


def _real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """How a run trains: the arguments of :func:`labkit.train` but the model and the data.

    Built, it holds valid values only, as Python's own numbers (numpy's are converted):
    ``TrainSettings(lr=-1)`` raises :class:`labkit.ConfigError` with the sentence the command
    line prints for ``--lr -1``.
    """

    epochs: int = 10
    layers: str | tuple[str, ...] | None = "penultimate"
    batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    eval_batch_size: int = 1024
    cache: bool = True

    def __post_init__(self) -> None:
        if not is_whole(self.epochs) or self.epochs < 0:
            raise ConfigError(f"epochs must be a whole number >= 0, got {self.epochs!r}")
        if not _real(self.lr) or not math.isfinite(self.lr) or not 0 < self.lr <= LR_MAX:
            raise ConfigError(
                f"lr, the learning rate, must be a finite number > 0 and at most "
                f"{LR_MAX:.3g} (the largest float32), got {self.lr!r}"
            )
        wd = self.weight_decay
        if not _real(wd) or not math.isfinite(wd) or wd < 0:
            raise ConfigError(f"weight_decay must be a finite number >= 0, got {wd!r}")
        check_seed(self.seed, ConfigError)
        if self.batch_size is not None and (not is_whole(self.batch_size) or self.batch_size < 1):
            raise ConfigError(f"batch_size must be a whole number >= 1, got {self.batch_size!r}")
        if not is_whole(self.eval_batch_size) or self.eval_batch_size < 1:
            raise ConfigError(
                f"eval_batch_size must be a whole number >= 1, got {self.eval_batch_size!r}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}"
            )
        if not isinstance(self.cache, bool):
            raise ConfigError(f"cache is True or False, got {self.cache!r}")
        set_ = object.__setattr__  # frozen: the checked values, as Python's own types
        set_(self, "epochs", int(self.epochs))
        set_(self, "lr", float(self.lr))
        set_(self, "weight_decay", float(wd))
        set_(self, "seed", int(self.seed))
        set_(self, "eval_batch_size", int(self.eval_batch_size))
        if self.batch_size is not None:
            set_(self, "batch_size", int(self.batch_size))
        set_(self, "device", _device_name(self.device))
        set_(self, "layers", _layers(self.layers))

    @classmethod
    def of(cls, options: dict) -> TrainSettings:
        """The record of ``options`` (a dict of its fields); a name that is not a field is
        one sentence listing the fields."""
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = [name for name in options if name not in fields]
        if unknown:
            raise ConfigError(
                f"no training setting {unknown[0]!r}; the settings are {', '.join(fields)}"
            )
        return cls(**options)

    def check_model(self, model: nn.Module) -> None:
        """What these settings ask of ``model``: BatchNorm needs two samples a batch."""
        if self.batch_size is not None and self.batch_size < 2 and has_batch_norm(model):
            raise ConfigError(
                f"batch_size must be at least 2 for this model (its BatchNorm layers need two "
                f"samples a batch), got {self.batch_size!r}"
            )

    def resolved(
        self, *, layers: list[str], batch_size: int, device: torch.device, precision: str
    ) -> TrainSettings:
        """These settings with what ``auto`` and ``None`` became for one model and data:
        the layers by name, the batch size, the device and the precision that train."""
        return dataclasses.replace(
            self,
            layers=tuple(layers),
            batch_size=batch_size,
            device=str(device),
            precision=precision,
        )

    def record(self) -> dict:
        """What the run cache's key and the snapshots' ``meta`` hold of the training (the
        cache flag changes nothing trained, so it is left out)."""
        out = dataclasses.asdict(self)
        del out["cache"]
        if isinstance(self.layers, tuple):
            out["layers"] = list(self.layers)
        return out


def _device_name(device: Any) -> str:
    """``device`` as the text torch reads, checked for its form only (whether that device is
    here is asked when training starts: :func:`labkit.pick_device`)."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return device
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {str(device)!r}; use one of {', '.join(DEVICES)}")
    return str(parsed)


def _layers(layers: Any) -> str | tuple[str, ...] | None:
    """``None``, one name (``"penultimate"``, ``"all"`` or a layer's), or names as a tuple."""
    if layers is None or isinstance(layers, str):
        return layers
    if isinstance(layers, Sequence) and all(isinstance(n, str) for n in layers):
        return tuple(layers)
    raise ConfigError(
        f"layers is 'penultimate', 'all', None (every layer), a layer's name or a list of "
        f"names, got {layers!r}"
    )
