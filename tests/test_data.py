"""Data loaders on files the tests write in the real formats; offline errors that help."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision

import labkit
import labkit.data.images
from labkit.cli import main
from labkit.data import DataError, probe_indices

from .fakedata import CIFAR_NAMES, write_cifar10, write_mnist


def test_probe_is_stratified_sorted_and_repeatable():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    idx = probe_indices(labels, 40, seed=0)
    assert len(idx) == 40 and np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx]).tolist() == [20, 10, 6, 4]
    assert np.array_equal(idx, probe_indices(labels, 40, seed=0))
    assert not np.array_equal(idx, probe_indices(labels, 40, seed=1))
    assert np.array_equal(probe_indices(labels, 999), np.arange(200))


def test_digits_is_the_offline_default(digits):
    assert digits.name == "digits" and digits.kind == "image"
    assert digits.x_train.shape == (1347, 1, 8, 8) and digits.x_test.shape == (450, 1, 8, 8)
    assert digits.x_train.dtype == torch.float32
    # Normalised with training statistics: mean 0, std 1 on the training split.
    assert abs(digits.x_train.mean().item()) < 1e-4
    assert digits.x_train.std().item() == pytest.approx(1.0, abs=1e-3)
    assert digits.titles[:2] == [f"test #{i}" for i in digits.probe_index[:2].tolist()]
    assert digits.thumbnails.shape == (450, 8, 8) and digits.thumbnails.dtype == np.uint8


def test_blobs_and_probe_size():
    data = labkit.load_dataset("blobs", probe_size=100, n_samples=1000)
    assert data.kind == "vector" and data.input_shape == (32,)
    assert len(data.probe_index) == 100 and data.thumbnails is None
    assert np.bincount(data.y_probe.numpy()).tolist() == [20] * 5


def test_mnist_from_idx_files_written_here(tmp_path):
    written = write_mnist(tmp_path, n_train=600, n_test=200)
    data = labkit.load_dataset("mnist", data_dir=tmp_path, probe_size=50)
    assert data.x_train.shape == (600, 1, 28, 28) and data.x_test.shape == (200, 1, 28, 28)
    assert data.y_train.tolist() == written["y_train"].tolist()
    assert data.class_names == [str(i) for i in range(10)]
    probe = data.probe_index.numpy()
    np.testing.assert_array_equal(data.thumbnails, written["x_test"][probe])
    # The normalised tensor is an affine image of the bytes that were written.
    x = written["x_train"].astype(np.float32) / 255
    mean, std = x.mean(), x.std()
    np.testing.assert_allclose(data.x_train[:, 0].numpy(), (x - mean) / std, atol=1e-4)
    # ... and a model learns from them (they are real handwritten digits).
    model = labkit.build_model("cnn", data.input_shape, data.n_classes)
    snaps = labkit.train(model, data, epochs=3, progress=False)
    assert snaps.layer().shape == (4, 50, 128) and snaps.history[-1]["test_acc"] > 0.6


def test_a_local_mnist_copy_is_read_as_torchvision_reads_it_without_importing_it(tmp_path):
    """torchvision only downloads: importing it costs a second and a half (torch._dynamo)
    in every kernel that loads MNIST, for files numpy reads in milliseconds."""
    write_mnist(tmp_path, n_train=120, n_test=50)
    code = (
        "import sys, labkit; "
        f"d = labkit.load_dataset('mnist', data_dir={str(tmp_path)!r}, download=False); "
        "print(d.x_train.shape[0], d.x_test.shape[0], 'torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["120", "50", "False"]
    ours = labkit.data.images.mnist(tmp_path, download=False, seed=0)
    for train, x, y in ((True, ours.x_train, ours.y_train), (False, ours.x_test, ours.y_test)):
        theirs = torchvision.datasets.MNIST(str(tmp_path), train=train, download=False)
        np.testing.assert_array_equal(x[:, 0], theirs.data.numpy().astype(np.float32) / 255)
        np.testing.assert_array_equal(y, theirs.targets.numpy())
    np.testing.assert_array_equal(ours.images_uint8, theirs.data.numpy())


def test_fashion_mnist_reads_its_own_folder(tmp_path):
    write_mnist(tmp_path, n_train=100, n_test=40, folder="FashionMNIST")
    data = labkit.load_dataset("fashion-mnist", data_dir=tmp_path)
    assert data.x_test.shape == (40, 1, 28, 28) and data.class_names[0] == "T-shirt/top"


def test_cifar10_from_a_local_copy_without_download_or_checksum(tmp_path):
    written = write_cifar10(tmp_path, per_batch=40, n_test=100)
    data = labkit.load_dataset("cifar10", data_dir=tmp_path, download=False, probe_size=30)
    assert data.x_train.shape == (200, 3, 32, 32) and data.x_test.shape == (100, 3, 32, 32)
    assert data.class_names == CIFAR_NAMES
    assert data.y_test.tolist() == written["y_test"].tolist()
    probe = data.probe_index.numpy()
    np.testing.assert_array_equal(data.thumbnails, written["x_test"][probe].transpose(0, 2, 3, 1))
    model = labkit.build_model("cnn", data.input_shape, data.n_classes)
    assert labkit.embedding_layers(model) == ["block1", "block2", "block3", "embed"]


def test_a_corrupt_cifar_batch_is_named(tmp_path):
    write_cifar10(tmp_path, per_batch=10, n_test=10)
    import pickle

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({"pixels": []}, f)
    with pytest.raises(DataError, match=r"data_batch_3.*'data' and 'labels'"):
        labkit.load_dataset("cifar10", data_dir=tmp_path)


@pytest.fixture
def no_network(monkeypatch):
    """Point every download at a closed port on loopback: a real, immediate failure."""
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(
        torchvision.datasets.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz"
    )


@pytest.mark.parametrize(
    "name, folder", [("mnist", "MNIST/raw"), ("cifar10", "cifar-10-batches-py")]
)
def test_offline_error_names_files_data_dir_and_digits(tmp_path, no_network, name, folder):
    with pytest.raises(DataError) as info:
        labkit.load_dataset(name, data_dir=tmp_path / "empty")
    msg = str(info.value)
    assert "could not be downloaded" in msg and "127.0.0.1" in msg
    assert str(tmp_path / "empty" / folder) in msg
    assert "--data-dir" in msg and "--dataset digits" in msg
    expected = "t10k-images-idx3-ubyte" if name == "mnist" else "test_batch"
    assert expected in msg
    with pytest.raises(DataError, match="download=False"):
        labkit.load_dataset(name, data_dir=tmp_path / "empty", download=False)


def test_cli_prints_the_offline_error_without_a_traceback(tmp_path, no_network, capsys):
    out = str(tmp_path / "run")  # not runs/mnist in the working directory: a checkout may hold one
    code = main(
        ["run", "--dataset", "mnist", "--data-dir", str(tmp_path), "--out", out, "--no-progress"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: MNIST is not in") and "Traceback" not in err
    assert "train-labels-idx1-ubyte" in err


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DataError, match="digits, blobs, mnist"):
        labkit.load_dataset("imagenet")


def test_a_class_subset_keeps_those_classes_relabelled_and_names_the_original_samples():
    full = labkit.load_dataset("digits")
    sub = labkit.load_dataset("digits", classes=[7, 2, "5"])
    assert sub.class_names == ["2", "5", "7"] and sub.n_classes == 3
    assert sorted(sub.y_train.unique().tolist()) == [0, 1, 2]
    assert len(sub.y_train) == int(np.isin(full.y_train.numpy(), [2, 5, 7]).sum())
    assert len(sub.y_test) == int(np.isin(full.y_test.numpy(), [2, 5, 7]).sum())
    # A probe title still names the sample of the full test split it came from.
    k = int(sub.titles[0].split("#")[1])
    assert (
        full.class_names[int(full.y_test[k])]
        == sub.class_names[int(sub.y_test[sub.probe_index[0]])]
    )
    with pytest.raises(labkit.data.DataError, match="has no class 12; its classes are 0..9"):
        labkit.load_dataset("digits", classes=[0, 12])
    with pytest.raises(labkit.data.DataError, match="at least 2 classes"):
        labkit.load_dataset("digits", classes=[3, 3])


def test_label_noise_flips_a_tenth_of_the_labels_reproducibly_and_marks_them(digits):
    noisy = labkit.load_dataset("digits", label_noise=0.1)
    again = labkit.load_dataset("digits", label_noise=0.1)
    other = labkit.load_dataset("digits", label_noise=0.1, seed=1)
    for split in ("y_train", "y_test"):
        changed = (getattr(noisy, split) != getattr(digits, split)).float().mean().item()
        assert abs(changed - 0.1) <= 0.01, (split, changed)
        assert torch.equal(getattr(noisy, split), getattr(again, split))
    assert not torch.equal(noisy.y_train, other.y_train)
    # The mask marks exactly the probe labels that differ from the true ones.
    truth = digits.y_probe.numpy()
    assert noisy.flipped.dtype == bool and len(noisy.flipped) == len(truth)
    np.testing.assert_array_equal(noisy.flipped, noisy.y_probe.numpy() != truth)
    assert abs(noisy.flipped.mean() - 0.1) <= 0.01
    assert torch.equal(noisy.x_train, digits.x_train)  # the images are the same
    assert digits.flipped is None
    with pytest.raises(DataError, match="label_noise is the share of labels to flip"):
        labkit.load_dataset("digits", label_noise=1.0)


def test_the_embedding_finds_the_flipped_labels(tmp_path, capsys):
    """On digits with 10 % of labels flipped, the candidates at k = number of flips (model
    and neighbours agree on another class) hold at least half of the flips; the run folder
    keeps the mask, and the command line takes --classes and --label-noise."""
    from labkit import workflows

    code = main(
        [
            "run",
            "--label-noise",
            "0.1",
            "--epochs",
            "10",
            "--no-figures",
            "--no-progress",
            "--out",
            str(tmp_path / "noisy"),
        ]
    )
    assert code == 0
    snaps = labkit.Snapshots.load(tmp_path / "noisy")
    k = int(snaps.flipped.sum())
    assert k == round(0.1 * len(snaps.labels))
    found = workflows.label_error_candidates(snaps)["index"].to_numpy()[:k]
    assert snaps.flipped[found].sum() >= k / 2
    code = main(
        [
            "run",
            "--classes",
            "0,1,2",
            "--epochs",
            "1",
            "--no-figures",
            "--no-progress",
            "--out",
            str(tmp_path / "three"),
        ]
    )
    assert code == 0
    assert labkit.Snapshots.load(tmp_path / "three").class_names == ["0", "1", "2"]
    capsys.readouterr()
    assert main(["run", "--classes", "0,12", "--out", str(tmp_path / "x")]) == 2
    assert "digits has no class 12" in capsys.readouterr().err
    assert main(["run", "--label-noise", "1.5", "--out", str(tmp_path / "y")]) == 2
    assert capsys.readouterr().err == (
        "error: label_noise is the share of labels to flip, from 0 to below 1; got 1.5\n"
    )


@pytest.mark.slow
def test_a_training_split_probe_of_three_classes_collapses_as_the_homework_says(tmp_path):
    """The deep MLP on digits 0, 1, 2 fits its training probe perfectly, and the penultimate
    layer's NC1 on that probe falls at least 20-fold from epoch 0."""
    from labkit import metrics

    data = labkit.load_dataset("digits", classes=[0, 1, 2], probe_split="train")
    full = labkit.load_dataset("digits")
    assert data.probe_split == "train" and len(data.probe_index) == len(data.y_train)
    assert torch.equal(data.x_probe, data.x_train[data.probe_index])
    assert set(data.y_probe.tolist()) == {0, 1, 2} and data.class_names == ["0", "1", "2"]
    assert data.titles[0] == f"train #{int(data.probe_index[0])}"
    assert data.thumbnails.shape == (len(data.probe_index), 8, 8)
    # Images of digits 0-2 only, and none of them a test image.
    from sklearn.datasets import load_digits

    raw = load_digits()
    pixels = {
        tuple(np.round(im / 16 * 255).astype(np.uint8).ravel()): int(t)
        for im, t in zip(raw.images, raw.target, strict=True)
    }
    assert {pixels[tuple(t.ravel())] for t in data.thumbnails} == {0, 1, 2}
    tests = {tuple(t.ravel()) for t in full.thumbnails}
    assert not any(tuple(t.ravel()) in tests for t in data.thumbnails)

    model = labkit.build_model("deep-mlp", data.input_shape, data.n_classes, seed=0)
    snaps = labkit.train(model, data, epochs=30, layers="all", seed=0, progress=False)
    assert snaps.correct(-1).mean() == 1.0  # training accuracy on the probe
    last = snaps.layer()  # the penultimate layer
    nc1 = [metrics.neural_collapse(last[e], snaps.labels)["nc1"] for e in (0, -1)]
    assert nc1[1] * 20 <= nc1[0], nc1
    assert snaps.meta["probe_split"] == "train"
    assert (
        main(
            [
                "run",
                "--classes",
                "0,1,2",
                "--probe-split",
                "train",
                "--epochs",
                "1",
                "--no-figures",
                "--no-progress",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    assert labkit.Snapshots.load(tmp_path / "r").titles[0].startswith("train #")
    with pytest.raises(DataError, match="probe_split is 'test' or 'train'"):
        labkit.load_dataset("digits", probe_split="validation")


def test_a_loader_option_it_does_not_take_is_refused_with_the_closest_name():
    with pytest.raises(DataError, match=r"no option 'n_sample' \(did you mean 'n_samples'\?\)"):
        labkit.load_dataset("blobs", n_sample=300)
    with pytest.raises(DataError, match="load_dataset\\('digits'\\) takes no option 'topics'"):
        labkit.load_dataset("digits", topics=["Astronomy"])
    data = labkit.load_dataset("blobs", n_samples=300, centers=3)
    assert len(data.y_train) + len(data.y_test) == 300 and data.n_classes == 3


def _pixels(x: torch.Tensor, data) -> list[tuple]:
    """Each image of ``x`` as its raw pixel values (digits: sixteenths), normalisation undone."""
    norm = data.info["normalisation"]
    raw = x.numpy() * np.array(norm["std"], np.float32) + np.array(norm["mean"], np.float32)
    return [tuple(r) for r in np.round(raw.reshape(len(x), -1) * 16).astype(int)]


def test_a_pool_holds_out_a_stratified_share_of_training_and_keeps_its_true_labels(digits):
    """pool=0.3: 30 % of the training split, class by class, out of training; its labels are
    the true ones, where label noise changed the training labels; the test split, the probe
    and its flips are those of the same load without a pool."""
    noisy = labkit.load_dataset("digits", label_noise=0.1)
    data = labkit.load_dataset("digits", label_noise=0.1, pool=0.3)
    assert data.n_pool == round(0.3 * 1347) == 404 and len(data.y_train) == 1347 - 404
    assert data.x_pool.shape == (404, 1, 8, 8) and data.pool_thumbnails.shape == (404, 8, 8)
    assert "pool 404 (unlabelled)" in repr(data) and data.info["pool"] == 0.3
    truth = data.pool_truth(np.arange(data.n_pool))
    assert truth.dtype == np.int64
    per_class = np.bincount(digits.y_train.numpy())
    assert np.all(np.abs(np.bincount(truth) - 0.3 * per_class) <= 1)  # stratified
    # Pool and training split are the full training split, image for image.
    full = _pixels(digits.x_train, digits)
    where = {p: i for i, p in enumerate(full)}
    in_pool = np.array([where[p] for p in _pixels(data.x_pool, data)])
    in_train = np.array([where[p] for p in _pixels(data.x_train, data)])
    assert len(set(in_pool) | set(in_train)) == 1347 and not set(in_pool) & set(in_train)
    # The pool's labels are the true ones, also where the noise changed the training label;
    # the training split keeps the noisy labels, as without a pool.
    np.testing.assert_array_equal(truth, digits.y_train.numpy()[in_pool])
    changed = noisy.y_train.numpy()[in_pool] != truth
    assert changed.sum() > 20
    np.testing.assert_array_equal(data.y_train.numpy(), noisy.y_train.numpy()[in_train])
    # The pool is normalised with the training statistics, like the test split.
    assert abs(data.x_train.mean().item()) < 1e-4 and abs(data.x_pool.mean().item()) < 0.05
    assert torch.equal(data.y_test, noisy.y_test)
    assert torch.equal(data.probe_index, noisy.probe_index)
    np.testing.assert_array_equal(data.flipped, noisy.flipped)
    # The same pool on every load with the same seed, another one with another seed.
    again = labkit.load_dataset("digits", label_noise=0.1, pool=0.3)
    assert torch.equal(again.x_pool, data.x_pool)
    other = labkit.load_dataset("digits", label_noise=0.1, pool=0.3, seed=1)
    assert not torch.equal(other.x_pool[:50], data.x_pool[:50])


def test_pool_items_added_to_training_carry_their_true_labels(digits):
    data = labkit.load_dataset("digits", label_noise=0.1, pool=0.3)
    picked = np.array([5, 0, 400])
    labels = data.pool_truth(picked)
    more = data.add_from_pool(picked)
    assert len(more.y_train) == len(data.y_train) + 3 and more.n_pool == data.n_pool - 3
    assert torch.equal(more.x_train[-3:], data.x_pool[picked])
    assert more.y_train[-3:].tolist() == labels.tolist()
    assert torch.equal(more.x_train[:-3], data.x_train) and torch.equal(more.x_test, data.x_test)
    rest = np.setdiff1d(np.arange(data.n_pool), picked)
    assert torch.equal(more.x_pool, data.x_pool[rest])
    np.testing.assert_array_equal(more.pool_truth(np.arange(more.n_pool)), data.pool_truth(rest))
    assert more.pool_thumbnails.shape == (data.n_pool - 3, 8, 8)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda d: d.pool_truth([404]), "the pool holds 404 items, numbered 0 to 403; 404 is not"),
        (lambda d: d.pool_truth([-1]), "numbered 0 to 403; -1 is not one of them"),
        (lambda d: d.pool_truth(np.array([0.0, 1.0])), "give integer positions in the pool"),
        (lambda d: d.add_from_pool([3, 3]), "each pool item can be asked for once"),
    ],
    ids=["past-the-end", "negative", "not-integers", "repeated"],
)
def test_pool_positions_out_of_range_are_refused_in_one_sentence(call, message):
    data = labkit.load_dataset("digits", pool=0.3)
    with pytest.raises(DataError, match=re.escape(message)):
        call(data)


def test_a_pool_share_out_of_range_or_no_pool_is_refused(digits):
    for share in (1.0, -0.1, 1.5):
        with pytest.raises(DataError, match="pool is the share of the training split to hold"):
            labkit.load_dataset("digits", pool=share)
    with pytest.raises(DataError, match="holds out none of the 1347 training samples"):
        labkit.load_dataset("digits", pool=1e-5)
    with pytest.raises(DataError, match=r"no unlabelled pool; load it with load_dataset\("):
        digits.pool_truth([0])
    with pytest.raises(DataError, match="pool and probe_split='train' both take samples"):
        labkit.load_dataset("digits", pool=0.3, probe_split="train")
    assert digits.x_pool is None and digits.n_pool == 0


def test_label_noise_keeps_the_probe_so_a_clean_load_gives_its_true_labels():
    noisy = labkit.load_dataset("digits", probe_size=60, seed=0, label_noise=0.1)
    clean = labkit.load_dataset("digits", probe_size=60, seed=0)
    assert torch.equal(noisy.x_probe, clean.x_probe) and noisy.titles == clean.titles
    changed = (noisy.y_probe != clean.y_probe).numpy()
    assert changed.any() and np.array_equal(changed, noisy.flipped)


def test_an_annotator_labels_within_its_budget_and_counts_each_item_once():
    data = labkit.load_dataset("digits", label_noise=0.1, pool=0.3)
    annotator = labkit.Annotator(data, budget=5)
    assert (annotator.spent, annotator.left) == (0, 5) and annotator.revealed.size == 0
    first = annotator.reveal([7, 3])
    np.testing.assert_array_equal(first, data.pool_truth([7, 3]))
    # Asking again for a labelled item costs nothing; only the new ones count.
    again = annotator.reveal([3, 9, 7])
    np.testing.assert_array_equal(again, data.pool_truth([3, 9, 7]))
    assert annotator.spent == 3 and annotator.revealed.tolist() == [7, 3, 9]
    np.testing.assert_array_equal(annotator.labels, data.pool_truth([7, 3, 9]))
    assert repr(annotator) == "Annotator(budget 5: 3 spent, 2 left)"
    # Over the budget: a clear sentence, and none of the request is labelled.
    with pytest.raises(
        labkit.BudgetExceeded,
        match=re.escape("the budget is 5 labels and 3 are spent: 3 new items asked for, 2 left"),
    ):
        annotator.reveal([1, 2, 4])
    assert annotator.spent == 3 and annotator.revealed.tolist() == [7, 3, 9]
    annotator.reveal([1, 2])  # the last two labels
    with pytest.raises(labkit.BudgetExceeded, match="0 left"):
        annotator.reveal([11])
    # The labelled data holds exactly the revealed items, with their true labels.
    more = annotator.labelled_data()
    assert len(more.y_train) == len(data.y_train) + 5 and more.n_pool == data.n_pool - 5
    assert more.y_train[-5:].tolist() == data.pool_truth([7, 3, 9, 1, 2]).tolist()
    assert torch.equal(more.x_train[-5:], data.x_pool[[7, 3, 9, 1, 2]])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: labkit.Annotator(d, budget=-1), "budget is a whole number of labels"),
        (lambda d: labkit.Annotator(d, budget=2.5), "budget is a whole number of labels"),
        (lambda d: labkit.Annotator(d, budget=3).reveal([0, 0]), "asked for once"),
        (lambda d: labkit.Annotator(d, budget=3).reveal([9999]), "9999 is not one of them"),
    ],
    ids=["negative", "fraction", "repeated", "out-of-range"],
)
def test_an_annotator_refuses_a_bad_budget_or_position_in_one_sentence(make, message):
    with pytest.raises(DataError, match=re.escape(message)):
        make(labkit.load_dataset("digits", pool=0.3))


def test_an_annotator_needs_a_pool(digits):
    with pytest.raises(DataError, match=r"no unlabelled pool; load it with load_dataset\("):
        labkit.Annotator(digits, budget=4)
