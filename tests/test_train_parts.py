"""The parts ``labkit.train`` is told with: the batches, the recorder and the schedule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import labkit
from labkit.training.batches import TrainingBatches, batch_slices
from labkit.training.loop import _one_cycle
from labkit.training.record import Recorder, evaluate


def _epochs(batches: TrainingBatches, n: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    return [list(batches) for _ in range(n)]


def test_each_epoch_takes_every_training_item_once_in_a_new_order(digits):
    batches = TrainingBatches(digits, batch_size=100, seed=0)
    first, second = _epochs(batches, 2)
    assert len(first) == len(batches) == 14  # 1347 items: 13 full batches and one of 47
    for epoch in (first, second):
        seen = torch.cat([y for _, y in epoch])
        assert torch.equal(seen.sort().values, digits.y_train.sort().values)
        x = torch.cat([x for x, _ in epoch])
        # Each image is a training image (no mirroring for digits), each once.
        assert x.shape == digits.x_train.shape
        torch.testing.assert_close(x.flatten(1).sum(0), digits.x_train.flatten(1).sum(0))
    assert not torch.equal(first[0][1], second[0][1])  # a new order every epoch


def test_a_seed_gives_the_same_batches_whatever_else_draws_random_numbers(digits):
    one = _epochs(TrainingBatches(digits, batch_size=100, seed=3), 2)
    torch.manual_seed(12345)
    torch.rand(1000)  # the global generator moves; the run's own does not
    two = _epochs(TrainingBatches(digits, batch_size=100, seed=3), 2)
    other = _epochs(TrainingBatches(digits, batch_size=100, seed=4), 1)
    for a, b in zip(one, two, strict=True):
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(one[0][0][1], other[0][0][1])


def test_photographs_have_about_half_of_each_batch_mirrored(tmp_path):
    from .fakedata import write_cifar10

    write_cifar10(tmp_path, per_batch=40, n_test=20)
    photos = labkit.load_dataset("cifar10", data_dir=tmp_path, probe_size=10)
    plain = TrainingBatches(replace(photos, mirror=False), batch_size=200, seed=0)
    mirrored = TrainingBatches(photos, batch_size=200, seed=0)
    assert mirrored.mirror and not plain.mirror
    (x_plain, y_plain), (x_mirror, y_mirror) = next(iter(plain)), next(iter(mirrored))
    assert torch.equal(y_plain, y_mirror)  # the order is drawn first: the same items
    same = (x_mirror == x_plain).flatten(1).all(1)
    flipped = (x_mirror == x_plain.flip(3)).flatten(1).all(1)
    assert bool((same | flipped).all())  # each image is itself or its mirror image
    assert 0.35 < flipped.float().mean().item() < 0.65  # 200 coin flips


def test_a_last_batch_of_one_rides_with_the_one_before():
    assert [(s.start, s.stop) for s in batch_slices(7, 3)] == [(0, 3), (3, 6), (6, 7)]
    assert [(s.start, s.stop) for s in batch_slices(7, 3, no_singleton=True)] == [(0, 3), (3, 7)]
    assert [(s.start, s.stop) for s in batch_slices(1, 3, no_singleton=True)] == [(0, 1)]


def test_the_recorder_keeps_one_evaluation_per_epoch(digits):
    torch.manual_seed(0)
    model = labkit.build_model("cnn", digits.input_shape, digits.n_classes)
    recorder = Recorder(model, digits, ["embed"], epochs=2, batch_size=256, precision="fp32")
    expected = evaluate(model, digits, ["embed"], 256)
    row = recorder.record(0, seconds=0.12345)
    assert row == {
        "epoch": 0,
        "train_loss": None,
        "train_acc": None,
        "test_loss": expected["test_loss"],
        "test_acc": expected["test_acc"],
        "seconds": 0.123,
    }
    with torch.no_grad():
        model.head.weight.mul_(2.0)  # "training": epoch 1 sees another model
    recorder.record(1, train_loss=0.5, train_acc=0.9, seconds=1.0)
    n_probe = len(digits.probe_index)
    # Epoch 2 is not recorded yet: it is zero, the allocation is for the whole run.
    assert recorder.embeddings["embed"].shape == (3, n_probe, 64)
    assert not recorder.embeddings["embed"][2].any()
    recorder.record(2, train_loss=0.4, train_acc=0.9, seconds=2.0)
    snaps = recorder.snapshots({"epochs": 2})
    np.testing.assert_array_equal(snaps.embeddings["embed"][0], expected["embeddings"]["embed"])
    np.testing.assert_array_equal(snaps.embeddings["embed"][2], snaps.embeddings["embed"][1])
    np.testing.assert_array_equal(snaps.probabilities[0], expected["probabilities"])
    assert snaps.head_weights.shape == (3, digits.n_classes, 64)
    np.testing.assert_allclose(snaps.head_weights[1], 2 * snaps.head_weights[0])
    assert [r["epoch"] for r in snaps.history] == [0, 1, 2] and snaps.meta == {"epochs": 2}
    np.testing.assert_array_equal(snaps.labels, digits.y_probe.numpy())


def test_the_schedule_warms_up_for_15_percent_then_anneals_to_almost_nothing():
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3)
    schedule = _one_cycle(optimizer, 1e-3, steps=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert int(np.argmax(rates)) == 14 and rates[14] == pytest.approx(1e-3)  # the 15th step
    assert rates[0] < 1e-4 and rates[-1] < 1e-6
    assert all(a >= b for a, b in zip(rates[14:-1], rates[15:], strict=True))  # cosine: down
