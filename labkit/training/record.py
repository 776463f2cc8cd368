"""The probe set's record: one evaluation pass over the test split that captures the probe's
activations on the way, and the recorder that keeps one such capture per epoch (embeddings,
probabilities, the head's weights, the history) until they become the :class:`Snapshots`.

The capture rides on the evaluation: a test-split probe is evaluated first with the hooks
on, then the rest of the split without them, so capturing costs only the copy of the probe's
activations."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import LabData
from ..errors import ConfigError
from ..hooks import capture, head_layer
from ..snapshots import Snapshots
from .batches import batch_slices
from .device import autocast, resolve_precision

__all__ = ["Recorder", "evaluate"]

# Above this many bytes of snapshots we warn: conv feature maps flatten to thousands of dims.
_WARN_BYTES = 2 * 1024**3


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

    ``precision`` (see :func:`labkit.training.device.resolve_precision`) applies to the rest of the
    test split; the probe pass always runs in fp32, so the captured embeddings are full
    precision whatever the hardware (and cost little: the probe is a fifth of the split).
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
        for sl in batch_slices(len(probe), batch_size):
            idx = probe[sl]
            logits = model(x_probe[idx])
            if in_test:
                y = y_probe[idx]
                loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(1) == y).sum().item()
            probs.append(logits.float().softmax(1).cpu())
            for name in layers:
                if name not in acts:
                    raise ConfigError(
                        f"the layer {name!r} of {type(model).__name__} gave no output: its "
                        f"forward() does not call it; capture a layer the forward pass uses"
                    )
                chunks[name].append(acts[name].flatten(1).float().cpu())
    precision = resolve_precision(precision, device)
    for sl in batch_slices(len(rest_idx), batch_size):  # hooks are gone: no capture cost here
        idx = rest_idx[sl]
        with autocast(device, precision):
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


class Recorder:
    """Evaluates ``model`` and keeps the probe's capture, once before training (epoch 0) and
    after every epoch: ``record(epoch, ...)`` each time, then ``snapshots(meta)``."""

    def __init__(
        self,
        model: nn.Module,
        data: LabData,
        layers: list[str],
        epochs: int,
        *,
        batch_size: int,
        precision: str,
    ) -> None:
        self.model, self.data, self.layers, self.epochs = model, data, layers, epochs
        self.batch_size, self.precision = batch_size, precision
        head = dict(model.named_modules())[head_layer(model)]
        self.head = head if isinstance(head, nn.Linear) else None  # its weights are recorded
        self.embeddings: dict[str, np.ndarray] = {}  # [epochs + 1, n_probe, dim] each
        n_probe = len(data.probe_index)
        self.probabilities = np.zeros((epochs + 1, n_probe, data.n_classes), np.float32)
        self.head_weights: list[np.ndarray] = []
        self.head_bias: list[np.ndarray] = []
        self.history: list[dict] = []

    def record(
        self,
        epoch: int,
        *,
        train_loss: float | None = None,
        train_acc: float | None = None,
        seconds: float = 0.0,
    ) -> dict:
        """Evaluate, keep epoch ``epoch``'s capture, and return its row of the history."""
        ev = evaluate(self.model, self.data, self.layers, self.batch_size, precision=self.precision)
        for name, a in ev["embeddings"].items():
            if name not in self.embeddings:  # allocated once its width is known
                self.embeddings[name] = np.zeros((self.epochs + 1, *a.shape), np.float32)
                _warn_if_large(name, self.embeddings[name].nbytes, len(self.layers))
            self.embeddings[name][epoch] = a
        self.probabilities[epoch] = ev["probabilities"]
        if self.head is not None:
            self.head_weights.append(self.head.weight.detach().float().cpu().numpy().copy())
            if self.head.bias is not None:
                self.head_bias.append(self.head.bias.detach().float().cpu().numpy().copy())
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": ev["test_loss"],
            "test_acc": ev["test_acc"],
            "seconds": round(seconds, 3),
        }
        self.history.append(row)
        return row

    def snapshots(self, meta: dict) -> Snapshots:
        """Everything recorded, with the probe's labels, titles and pictures from the data."""
        data = self.data
        return Snapshots(
            embeddings=self.embeddings,
            labels=data.y_probe.cpu().numpy().astype(np.int64),
            predictions=self.probabilities.argmax(2).astype(np.int64),
            probabilities=self.probabilities,
            titles=list(data.titles),
            class_names=list(data.class_names),
            history=self.history,
            probe_index=data.probe_index.cpu().numpy().astype(np.int64),
            head_weights=np.stack(self.head_weights) if self.head_weights else None,
            head_bias=np.stack(self.head_bias) if self.head_bias else None,
            thumbnails=data.thumbnails,
            flipped=data.flipped,
            snippets=list(data.snippets) if data.snippets else None,
            meta=meta,
        )


def _warn_if_large(name: str, nbytes: int, n_layers: int) -> None:
    total = nbytes * n_layers
    if total > _WARN_BYTES:
        warnings.warn(
            f"capturing {n_layers} layer(s) like {name!r} will hold about "
            f"{total / 1024**3:.1f} GiB of snapshots; capture fewer layers or use a "
            f"smaller probe set (probe_size=...)",
            stacklevel=4,
        )
