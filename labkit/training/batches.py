"""The training split in batches, as the loop takes them: the whole split sits on the device
and a batch is a tensor index (no DataLoader, no per-item transforms), in a new order every
epoch, with a random half of each batch of photographs mirrored."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..data import LabData
from .device import to_device

__all__ = ["TrainingBatches", "auto_batch_size", "batch_slices"]


def auto_batch_size(n_train: int, largest: int = 128, min_steps: int = 20) -> int:
    """128, or smaller (down to 8) so that an epoch has at least ``min_steps`` steps."""
    return max(8, min(largest, n_train // min_steps))


def batch_slices(n: int, size: int, no_singleton: bool = False) -> Iterator[slice]:
    """Slices of ``size``; with ``no_singleton`` a last batch of one joins the one before
    (batch norm cannot train on a single sample)."""
    starts = list(range(0, n, size))
    if no_singleton and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for i, start in enumerate(starts):
        yield slice(start, starts[i + 1] if i + 1 < len(starts) else n)


class TrainingBatches:
    """One epoch of ``(x, y)`` batches each time it is iterated.

    The order and the mirror flips are drawn from a generator of the run's own, seeded with
    ``seed``, so a seed gives the same batches on every device and whatever else draws
    random numbers. Photographs (``data.mirror``, as CIFAR-10 sets it) have a random half of
    each batch mirrored left-right, the standard augmentation, worth points on CIFAR-10's
    test set; the probe and the test split never are.
    """

    def __init__(self, data: LabData, batch_size: int, seed: int) -> None:
        self.x, self.y = data.x_train, data.y_train
        self.slices = list(batch_slices(len(self.y), batch_size, no_singleton=True))
        self.mirror = data.mirror and self.x.dim() == 4
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.slices)  # the same every epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.x.device
        order = to_device(torch.randperm(len(self.y), generator=self.generator), device)
        for sl in self.slices:
            idx = order[sl]
            x, y = self.x[idx], self.y[idx]
            if self.mirror:
                flip = to_device(torch.rand(len(idx), generator=self.generator) < 0.5, device)
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
            yield x, y
