"""Training with capture: epoch 0 is the untrained model, seeds repeat bit for bit."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import labkit
from labkit.errors import ConfigError
from labkit.hooks import capture


def test_epoch_0_is_the_untrained_model_and_every_epoch_moves(digits):
    model = labkit.build_model("cnn", digits.input_shape, digits.n_classes, seed=5)
    untrained = copy.deepcopy(model).eval()
    with torch.no_grad(), capture(untrained, "embed") as acts:
        logits = untrained(digits.x_probe)
    snaps = labkit.train(model, digits, epochs=3, seed=5, progress=False)

    emb = snaps.layer()
    assert emb.shape == (4, 450, 64)
    np.testing.assert_allclose(emb[0], acts["embed"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(snaps.predictions[0], logits.argmax(1).numpy())
    np.testing.assert_allclose(snaps.probabilities[0], logits.softmax(1).numpy(), atol=1e-6)
    for k in range(3):
        assert np.abs(emb[k + 1] - emb[k]).max() > 1e-3, f"epoch {k + 1} equals epoch {k}"
    # The head's weights are recorded per epoch too (for NC3): epoch 0 is the initial head.
    np.testing.assert_array_equal(snaps.head_weights[0], untrained.head.weight.detach().numpy())
    assert snaps.head_weights.shape == (4, 10, 64)


def test_history_has_every_epoch_and_learning_happens(digits_run):
    _, snaps = digits_run
    h = snaps.history
    assert [row["epoch"] for row in h] == [0, 1, 2, 3, 4]
    assert h[0]["train_loss"] is None and h[0]["test_acc"] < 0.3  # chance is 0.1
    assert h[-1]["test_acc"] > 0.85 and h[-1]["train_loss"] < h[1]["train_loss"]
    # Test accuracy in the history agrees with the probe predictions (probe = whole test here).
    assert h[-1]["test_acc"] == pytest.approx(snaps.correct().mean())


def _run(digits, seed):
    model = labkit.build_model("cnn", digits.input_shape, digits.n_classes, seed=seed)
    # cache=False: these tests are about training itself, run after run.
    return labkit.train(model, digits, epochs=2, seed=seed, progress=False, cache=False)


def _same(a, b):
    arrays = [
        (a.layer(), b.layer()),
        (a.predictions, b.predictions),
        (a.probabilities, b.probabilities),
        (a.head_weights, b.head_weights),
    ]
    return all(x.tobytes() == y.tobytes() for x, y in arrays)


def test_same_seed_is_bit_identical_and_other_seeds_differ(digits):
    a, b, c = _run(digits, 0), _run(digits, 0), _run(digits, 1)
    assert _same(a, b)
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert not _same(a, c)
    assert np.abs(a.layer()[-1] - c.layer()[-1]).max() > 1e-2


def test_train_leaves_the_global_rng_alone(digits):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    _run(digits, 0)
    assert torch.equal(torch.get_rng_state(), state)


def test_snapshots_round_trip_exactly(digits_run, tmp_path):
    _, snaps = digits_run
    snaps = copy.deepcopy(snaps)
    snaps.titles[0] = 'tab\there, "quotes", newline\nand ünïcödé ✓'
    snaps.save(tmp_path / "snaps")
    back = labkit.Snapshots.load(tmp_path / "snaps")
    assert back.equals(snaps)
    assert back.thumbnails.dtype == np.uint8 and back.thumbnails.shape == (450, 8, 8)
    assert back.titles[0] == snaps.titles[0]
    # Saving again over the same folder replaces the files whole.
    snaps.titles[0] = "second"
    snaps.save(tmp_path / "snaps")
    assert labkit.Snapshots.load(tmp_path / "snaps").titles[0] == "second"
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == ["arrays.npz", "meta.json"]


def test_missing_snapshots_error_says_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m labkit run"):
        labkit.Snapshots.load(tmp_path)


def test_device_choice():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert labkit.pick_device("auto").type == expected
    assert labkit.pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(labkit.LabkitError, match="device='auto'"):
            labkit.pick_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_matches_the_cpu_shapes(digits):
    from dataclasses import replace

    model = labkit.build_model("cnn", digits.input_shape, digits.n_classes)
    snaps = labkit.train(model, digits, epochs=2, device="cuda", progress=False)
    assert snaps.meta["device"] == "cuda" and snaps.layer().shape == (3, 450, 64)
    assert snaps.history[-1]["test_acc"] > 0.5
    assert snaps.meta["precision"] in ("bf16", "fp16")  # mixed precision on every GPU
    # Mirrored batches: each batch's flips reach the GPU through pinned memory.
    model = labkit.build_model("cnn", digits.input_shape, digits.n_classes)
    mirrored = labkit.train(
        model, replace(digits, mirror=True), epochs=2, device="cuda", progress=False
    )
    assert mirrored.meta["mirror"] and np.isfinite(mirrored.layer()).all()


def test_a_last_batch_of_one_joins_the_previous_one(digits):
    # 1347 training images in batches of 1346 leave one over: batch norm cannot train on a
    # single sample, so it rides with the batch before instead of crashing the epoch.
    model = labkit.build_model("cnn", digits.input_shape, digits.n_classes)
    snaps = labkit.train(model, digits, epochs=1, batch_size=1346, progress=False)
    assert [row["epoch"] for row in snaps.history] == [0, 1]


def test_small_training_sets_get_smaller_batches():
    from labkit.training.batches import auto_batch_size

    assert auto_batch_size(60000) == 128 and auto_batch_size(1347) == 67
    assert auto_batch_size(105) == 8  # at least 20 steps an epoch where it can


@pytest.mark.slow
def test_mixed_precision_matches_fp32_within_tolerance(digits):
    # bf16 autocast (the default on a CPU with native bf16) against fp32, same seed: the
    # snapshots have the same shapes and dtype, epoch 0 (captured in fp32 before any update)
    # is identical, and the trained runs agree within a stated tolerance.
    runs = {}
    for precision in ("fp32", "bf16"):
        model = labkit.build_model("cnn", digits.input_shape, digits.n_classes)
        runs[precision] = labkit.train(model, digits, epochs=4, progress=False, precision=precision)
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert (fp32.meta["precision"], bf16.meta["precision"]) == ("fp32", "bf16")
    assert bf16.layer().shape == fp32.layer().shape == (5, 450, 64)
    assert bf16.layer().dtype == np.float32 and bf16.probabilities.dtype == np.float32
    np.testing.assert_array_equal(bf16.layer()[0], fp32.layer()[0])
    # Tolerances: final test accuracy within 1.5 points (here 450 test images: 7 images), and
    # the final embeddings nearly the same representation (linear CKA above 0.95).
    assert bf16.history[-1]["test_acc"] > 0.9
    assert abs(bf16.history[-1]["test_acc"] - fp32.history[-1]["test_acc"]) <= 0.015
    assert labkit.metrics.linear_cka(bf16.layer()[-1], fp32.layer()[-1]) > 0.95
    # and the bf16 run still repeats bit for bit
    again = labkit.train(
        labkit.build_model("cnn", digits.input_shape, digits.n_classes),
        digits,
        epochs=4,
        progress=False,
        precision="bf16",
        cache=False,
    )
    np.testing.assert_array_equal(again.layer(), bf16.layer())


def test_fp16_scales_its_loss_and_learns(digits):
    # The path a GPU without bf16 takes (a Colab T4): float16 autocast with a GradScaler.
    # Run on the CPU here, where autocast supports float16 too.
    model = labkit.build_model("mlp", (64,), digits.n_classes)
    flat = labkit.load_dataset("digits", probe_size=200)
    snaps = labkit.train(model, flat, epochs=3, progress=False, precision="fp16")
    assert snaps.meta["precision"] == "fp16"
    assert snaps.history[-1]["test_acc"] > 0.8
    assert all(np.isfinite(row["train_loss"]) for row in snaps.history[1:])


def test_precision_auto_follows_the_hardware(monkeypatch):
    from labkit.training import device as module
    from labkit.training.device import resolve_precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(module, "_native_bf16_cpu", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(module, "_native_bf16_cpu", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"  # emulated bf16 is slower than fp32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", cuda) == "fp16"  # a T4: fp16 with loss scaling
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", cuda) == "bf16"
    assert resolve_precision("fp32", cuda) == "fp32"
    with pytest.raises(ConfigError, match="unknown precision 'half'.*auto, fp32"):
        resolve_precision("half", cpu)


def test_photographs_are_mirrored_in_training_only(tmp_path):
    from dataclasses import replace

    from .fakedata import write_cifar10

    write_cifar10(tmp_path, per_batch=40, n_test=100)
    photos = labkit.load_dataset("cifar10", data_dir=tmp_path, probe_size=50)
    assert photos.mirror and not labkit.load_dataset("digits").mirror  # a mirrored 2 is no 2
    runs = {}
    for mirror in (True, False):
        model = labkit.build_model("cnn", photos.input_shape, photos.n_classes)
        data = replace(photos, mirror=mirror)
        runs[mirror] = labkit.train(model, data, epochs=1, batch_size=20, progress=False)
    assert runs[True].meta["mirror"] and not runs[False].meta["mirror"]
    # The same untrained model sees the same, unmirrored probe; training then differs.
    np.testing.assert_array_equal(runs[True].layer()[0], runs[False].layer()[0])
    assert np.abs(runs[True].layer()[1] - runs[False].layer()[1]).max() > 1e-3
    again = labkit.train(
        labkit.build_model("cnn", photos.input_shape, photos.n_classes),
        photos,
        epochs=1,
        batch_size=20,
        progress=False,
        cache=False,
    )
    np.testing.assert_array_equal(again.layer(), runs[True].layer())  # still repeatable


def test_a_capture_from_the_input_to_the_logits_and_what_reads_it(tmp_path):
    # "input" is the model's input, flattened like every capture, the same at every epoch;
    # the head's output is the logits, whose softmax the snapshots keep as probabilities.
    data = labkit.load_dataset("digits", classes=[0, 1, 2], probe_split="train")
    model = labkit.build_model("deep-mlp", data.input_shape, data.n_classes, depth=2)
    layers = ["input", *labkit.embedding_layers(model), labkit.head_layer(model)]
    snaps = labkit.train(model, data, epochs=2, layers=layers, progress=False)
    assert snaps.layer_names == ["input", "hidden1", "hidden2", "head"]
    assert snaps.penultimate == "hidden2" and snaps.layer().shape == (3, len(data.probe_index), 128)
    pixels = data.x_probe.flatten(1).numpy()
    assert snaps.layer("input").shape == (3, len(data.probe_index), 64)
    for epoch in range(3):
        np.testing.assert_array_equal(snaps.layer("input")[epoch], pixels)
    logits = torch.from_numpy(snaps.layer("head"))
    np.testing.assert_allclose(logits.softmax(2).numpy(), snaps.probabilities, atol=1e-6)
    # "all" still means the representation layers: the command line's --layers all is as it was
    from labkit.hooks import resolve_layers

    assert resolve_layers(model, "all") == ["hidden1", "hidden2"]
    assert resolve_layers(model, layers) == layers
    # What reads snapshots reads these layers too: metrics, projector logs, Mantis CSV.
    table = labkit.metrics.geometry(snaps)
    assert list(dict.fromkeys(table["layer"])) == layers
    end = table[table.epoch == 2].set_index("layer")
    first = table[table.epoch == 0].set_index("layer")
    assert end.loc["input", "nc1"] == first.loc["input", "nc1"]  # training left the data alone
    assert end["nc3"].notna().tolist() == [False, False, True, False]  # the penultimate only
    config = labkit.write_projector(snaps, tmp_path / "tb").read_text()
    assert "01_input/epoch_00" in config and "04_head/epoch_02" in config
    labkit.write_mantis_csv(snaps, tmp_path / "mantis.csv")
    back = labkit.read_mantis_csv(tmp_path / "mantis.csv")
    np.testing.assert_array_equal(back.embeddings[-1], snaps.layer()[-1])  # the penultimate


def test_the_input_of_an_image_model_is_its_pixels_in_their_order(digits):
    # Images are trained channels-last; the captured input is flattened in (C, H, W) order,
    # exactly as the data set holds it.
    model = labkit.build_model("cnn", digits.input_shape, digits.n_classes)
    snaps = labkit.train(model, digits, epochs=1, layers=["input", "embed"], progress=False)
    np.testing.assert_array_equal(snaps.layer("input")[1], digits.x_probe.flatten(1).numpy())
    assert snaps.penultimate == "embed"


def test_layers_none_means_every_layer_everywhere_and_an_empty_list_none(tmp_path):
    from labkit import align, metrics
    from labkit.hooks import resolve_layers

    data = labkit.load_dataset("digits", probe_size=60)
    model = labkit.build_model("deep-mlp", data.input_shape, data.n_classes, seed=0)
    every = labkit.embedding_layers(model)
    snaps = labkit.train(model, data, epochs=1, layers=None, progress=False, cache=False)
    assert snaps.layer_names == every == resolve_layers(model, "all") and len(every) > 1
    bare = labkit.build_model("deep-mlp", data.input_shape, data.n_classes, seed=0)
    assert labkit.train(bare, data, epochs=1, layers=(), progress=False).layer_names == []
    assert set(metrics.geometry(snaps, layers=None)["layer"]) == set(every)
    assert metrics.geometry(snaps, layers=[]).empty
    assert align.layer_trajectory(snaps, layers=None).shape[0] == len(every)
    config = labkit.write_projector(snaps, tmp_path / "tb", layers=None).read_text()
    assert all(f"_{name}/epoch_01" in config for name in every)
