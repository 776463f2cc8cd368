"""Files planted or damaged on purpose in the places the loaders read: nothing in them runs,
nothing outside the data folder is read, and each one is refused with one sentence that
names the file and says what to do (through load_dataset and the real command line)."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import labkit
from labkit.data import DataError

from .fakedata import (
    write_cifar10,
    write_idx,
    write_idx_of,
    write_mnist,
    write_python2_pickle,
)
from .mediawiki import FakeWiki, write_news_csv
from .test_mistakes import QUICK, labkit_cli


def assert_refused(proc, *words: str) -> None:
    """Exit code 2 and one line, ``error: ...``, holding ``words``; no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def run_on(dataset: str, data_dir: Path, cwd: Path):
    return labkit_cli(
        "run",
        "--dataset",
        dataset,
        "--data-dir",
        str(data_dir),
        "--out",
        str(cwd / "out"),
        *QUICK,
        cwd=cwd,
    )


class WritesMarker:
    """Pickles as a call of ``exec`` that writes ``marker``: what a planted file holds."""

    def __init__(self, marker: Path):
        self.code = f"open({str(marker)!r}, 'w').write('ran')"

    def __reduce__(self):
        return (exec, (self.code,))


class WritesMarkerThroughNumpy(WritesMarker):
    """The same, through a function of numpy's own that runs a string of Python."""

    def __reduce__(self):
        from numpy.testing._private.utils import runstring

        return (runstring, (self.code, {}))


# -- CIFAR-10 ----------------------------------------------------------------------------


def _batch(path: Path) -> dict:
    with open(path, "rb") as f:  # the test's own files, just written
        return pickle.load(f)


def _plant(path: Path, how: str, marker: Path) -> None:
    """Rewrite the CIFAR-10 file ``path`` so that unpickling it writes ``marker``; it still
    holds its real contents, so a loader that runs the payload goes on as if nothing were
    wrong."""
    batch = _batch(path)
    if how == "extra key":
        batch["notes"] = WritesMarker(marker)
    elif how == "object array":  # an ndarray whose items are unpickled in turn
        batch["filenames"] = np.array([WritesMarker(marker)], dtype=object)
    else:  # "numpy function"
        batch["notes"] = WritesMarkerThroughNumpy(marker)
    with open(path, "wb") as f:
        pickle.dump(batch, f)


@pytest.mark.parametrize("how", ["extra key", "object array", "numpy function"])
@pytest.mark.parametrize("name", ["data_batch_1", "test_batch", "batches.meta"])
def test_a_planted_cifar_file_runs_nothing_and_is_refused(tmp_path, name, how):
    write_cifar10(tmp_path / "data", per_batch=10, n_test=20)
    planted = tmp_path / "data" / "cifar-10-batches-py" / name
    marker = tmp_path / "ran"
    _plant(planted, how, marker)
    proc = run_on("cifar10", tmp_path / "data", tmp_path)
    assert not marker.exists()
    function = "numpy.testing._private.utils.runstring" if how == "numpy function" else "exec"
    assert_refused(
        proc,
        f"{planted} is not CIFAR-10 data",
        f"asks to run {'' if '.' in function else 'builtins.'}{function}",
        "so it was not read; delete it to download again",
    )
    assert not (tmp_path / "out").exists()


def test_cifar_files_not_the_published_ones_load_with_one_warning_naming_them(tmp_path):
    """The tests' own batches (Python 3's pickles) and batches pickled as the official
    tarball's are (Python 2, numpy.core.multiarray) both load; their md5 sums are not the
    published ones, which one warning says, naming the files."""
    written = write_cifar10(tmp_path, per_batch=10, n_test=20)
    folder = tmp_path / "cifar-10-batches-py"
    for name in ("data_batch_2", "test_batch", "batches.meta"):
        batch = _batch(folder / name)
        write_python2_pickle(
            folder / name,
            {
                k.encode(): [n.encode() for n in v] if k == "label_names" else v
                for k, v in batch.items()
            },
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = labkit.load_dataset("cifar10", data_dir=tmp_path, download=False, probe_size=20)
    assert data.y_test.tolist() == written["y_test"].tolist()
    np.testing.assert_array_equal(data.thumbnails, written["x_test"].transpose(0, 2, 3, 1))
    assert data.class_names[:2] == ["airplane", "automobile"]
    said = [str(w.message) for w in caught]
    assert said == [
        f"{folder} holds CIFAR-10 files whose md5 is not the published one (batches.meta, "
        f"data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch): "
        f"they were read as data only, so nothing in them ran; if you did not make them, "
        f"delete them to download the real ones"
    ]


def test_the_md5_sums_are_the_ones_torchvision_checks():
    import torchvision

    from labkit.data import images

    cifar = torchvision.datasets.CIFAR10
    published = dict(cifar.train_list + cifar.test_list)
    published[cifar.meta["filename"]] = cifar.meta["md5"]
    assert published == images._CIFAR_MD5


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda b: b.update(labels=[12] + b["labels"][1:]), "expected labels from 0 to 9"),
        (
            lambda b: b.update(data=b["data"].astype(np.int64) + 200),
            "expected pixels as whole numbers from 0 to 255, got int64 values",
        ),
        (
            lambda b: b.update(data=b["data"].astype(np.float32) / 255),
            "expected pixels as whole numbers from 0 to 255, got float32 values",
        ),
        (
            lambda b: b.update(data=b["data"][:0], labels=[]),
            "N at least 1, got (0, 3072)",
        ),
    ],
    ids=["label 12", "pixels over 255", "float pixels", "no images"],
)
def test_a_cifar_batch_that_is_not_pixels_and_labels_is_named(tmp_path, edit, words):
    write_cifar10(tmp_path, per_batch=10, n_test=20)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch = _batch(path)
    edit(batch)
    with open(path, "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(DataError) as info:
        labkit.load_dataset("cifar10", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and words in message
    assert message.endswith("delete it to download again")


@pytest.mark.parametrize(
    "content, found",
    [(np.zeros(3), "found an object of type ndarray"), ({1: 2, "data": 3}, "found 'data', 1)")],
)
def test_a_cifar_batch_that_is_not_a_dict_of_data_and_labels_is_named(tmp_path, content, found):
    write_cifar10(tmp_path, per_batch=10, n_test=20)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    with open(path, "wb") as f:
        pickle.dump(content, f)
    proc = run_on("cifar10", tmp_path, tmp_path)
    assert_refused(proc, f"{path} is not a CIFAR-10 batch", found, "delete it to download again")


def test_cifar_class_names_that_are_not_a_list_of_names_are_named(tmp_path):
    write_cifar10(tmp_path, per_batch=10, n_test=20)
    path = tmp_path / "cifar-10-batches-py" / "batches.meta"
    with open(path, "wb") as f:
        pickle.dump({"label_names": "airplane"}, f)
    proc = run_on("cifar10", tmp_path, tmp_path)
    assert_refused(proc, f"{path} has no 'label_names'", "delete it to download again")


# -- MNIST -------------------------------------------------------------------------------

RAW = Path("MNIST") / "raw"


def _damage_mnist(raw: Path, damage: str) -> tuple[Path, ...]:
    """Damage the IDX files in ``raw``; returns the files the message should name."""
    images, labels = raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"
    test_images = raw / "t10k-images-idx3-ubyte"
    if damage == "counts differ":
        x, y = np.zeros((300, 28, 28), np.uint8), np.arange(250) % 10
        write_idx(images, x)
        write_idx(labels, y)
        return images, labels
    if damage == "label 200":
        y = np.arange(300) % 10
        y[17] = 200
        write_idx(labels, y)
        return (labels,)
    if damage == "2-D images":
        write_idx(images, np.zeros((300, 784), np.uint8))
        return (images,)
    if damage == "float pixels":
        write_idx_of(images, 0x0D, (300, 28, 28), np.zeros((300, 28, 28), ">f4").tobytes())
        return (images,)
    if damage == "no test images":
        write_idx(test_images, np.zeros((0, 28, 28), np.uint8))
        write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(0, np.uint8))
        return (test_images,)
    # "test images of another size"
    write_idx(test_images, np.zeros((100, 20, 20), np.uint8))
    return test_images, images


MNIST_DAMAGE = {
    "counts differ": ["holds 300 images but", "holds 250 labels", "delete both"],
    "label 200": ["holds the label 200 (label #17)", "classes are 0 to 9"],
    "2-D images": [
        "not a usable MNIST file",
        "it has 2 dimensions [300, 784], where an MNIST image file has 3",
    ],
    "float pixels": [
        "holds 32-bit floats, type 0x0D",
        "MNIST files hold unsigned bytes, type 0x08",
    ],
    "no test images": ["holds no pixels to learn from (0 images of 28x28)"],
    "test images of another size": ["holds images of 20x20 pixels", "are 28x28"],
}


@pytest.mark.parametrize("damage", list(MNIST_DAMAGE))
def test_mnist_files_that_do_not_make_a_data_set_are_named(tmp_path, damage):
    write_mnist(tmp_path / "data", n_train=300, n_test=100)
    named = _damage_mnist(tmp_path / "data" / RAW, damage)
    proc = run_on("mnist", tmp_path / "data", tmp_path)
    assert_refused(proc, *[str(p) for p in named], *MNIST_DAMAGE[damage], "to download again")
    assert not (tmp_path / "out").exists()


def test_mnist_counts_that_differ_are_refused_in_python_too(tmp_path):
    write_mnist(tmp_path, n_train=300, n_test=100)
    _damage_mnist(tmp_path / RAW, "counts differ")
    with pytest.raises(DataError, match="holds 300 images but .* holds 250 labels"):
        labkit.load_dataset("mnist", data_dir=tmp_path, download=False)


# -- the pretrained backbone's checkpoint -----------------------------------------------


def _checkpoint(torch_home: Path) -> Path:
    import torchvision

    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder / url.rsplit("/", 1)[-1]


@pytest.mark.parametrize("form", ["torch.save", "pickle.dump"])
def test_a_crafted_checkpoint_runs_nothing_and_is_refused(tmp_path, monkeypatch, form):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, marker = _checkpoint(tmp_path), tmp_path / "ran"
    if form == "torch.save":
        torch.save({"conv1.weight": WritesMarker(marker)}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(WritesMarker(marker), f)
    with pytest.raises(labkit.PretrainedUnavailable) as info:
        labkit.pretrained_embedding(torch.rand(2, 1, 8, 8))
    assert not marker.exists()
    message = str(info.value)
    assert message.startswith(f"{path} is not a file of resnet18's ImageNet weights (")
    assert message.endswith("so it was not used; delete it to download the real one")
    assert "could not be downloaded" not in message  # the file is there: it was refused
    assert "\n" not in message
    if form == "torch.save":
        assert "(it asks to run exec)" in message


def test_a_checkpoint_that_is_not_the_published_file_is_read_as_tensors_with_a_warning(
    tmp_path, monkeypatch
):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = _checkpoint(tmp_path)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.warns(UserWarning) as caught:
        emb = labkit.pretrained_embedding(torch.rand(2, 3, 16, 16))
    assert emb.shape == (2, 512)
    assert [str(w.message) for w in caught] == [
        f"{path} is not the published file of resnet18's ImageNet weights (its sha256 does "
        f"not start with f37072fd): it is read as tensors only, so nothing in it runs; if "
        f"you did not put it there, delete it to download the real one"
    ]


# -- the Wikipedia cache -----------------------------------------------------------------

TOPICS = ["Astronomy", "Cooking"]
SECRET = "Title: Secret\n" + "private diary entry " * 30


def _load_wikipedia(data_dir: Path, wiki: FakeWiki):
    return labkit.load_dataset(
        "wikipedia",
        data_dir=data_dir,
        topics=TOPICS,
        api_url=wiki.url,
        per_topic=20,
        probe_size=20,
    )


@pytest.mark.parametrize("way", ["../", "absolute", "symlink"])
def test_a_cache_index_that_points_outside_the_cache_is_refetched_not_read(tmp_path, way):
    from labkit.data.wikipedia import _topic_dir

    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    data_dir = tmp_path / "data"
    with FakeWiki(topics=TOPICS, per_topic=20) as wiki:
        _load_wikipedia(data_dir, wiki)
        folder = _topic_dir(data_dir / "wikipedia_articles", "Cooking")
        index = folder / "index.json"
        meta = json.loads(index.read_text())
        for entry in meta["articles"]:
            if way == "symlink":
                (folder / entry["file"]).unlink()
                (folder / entry["file"]).symlink_to(secret)
            else:
                up = Path(*[".."] * len(folder.relative_to(tmp_path).parts))
                entry["file"] = str(secret) if way == "absolute" else str(up / "secret.txt")
        index.write_text(json.dumps(meta))
        before = len(wiki.log)
        data = _load_wikipedia(data_dir, wiki)
        refetched = len(wiki.log) > before
    assert refetched
    assert not any("private diary" in s for s in data.snippets)
    assert "diary" not in data.info["terms"]
    assert secret.read_text(encoding="utf-8") == SECRET  # and left as it was
    rewritten = json.loads(index.read_text())
    assert all("/" not in e["file"] for e in rewritten["articles"])
    assert not any((folder / e["file"]).is_symlink() for e in rewritten["articles"])


def test_an_article_folder_with_a_link_out_of_it_is_not_read(tmp_path):
    """A folder of ``<Title>.txt`` files from elsewhere is read as it is, but not a file in
    it that links out of it."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    root = tmp_path / "data" / "wikipedia_articles"
    for topic in TOPICS:
        (root / topic).mkdir(parents=True)
        for i in range(12):
            (root / topic / f"{topic} {i}.txt").write_text(
                f"Title: {topic} {i}\n\n{topic} " + "words " * 40, encoding="utf-8"
            )
    (root / "Cooking" / "Cooking 0.txt").unlink()
    (root / "Cooking" / "Cooking 0.txt").symlink_to(secret)
    with FakeWiki(topics=TOPICS, per_topic=20) as wiki:
        data = _load_wikipedia(tmp_path / "data", wiki)
        asked = len(wiki.log)
    assert asked > 0  # Cooking came from the wiki instead
    assert not any("private diary" in s for s in data.snippets)
    assert "diary" not in data.info["terms"]
    assert "Secret" not in data.titles


# -- the BBC News CSV --------------------------------------------------------------------


def test_texts_of_stop_words_only_are_named_with_their_column(tmp_path):
    csv = tmp_path / "news.csv"
    rows = [f"{'tech' if i % 2 else 'food'},the and of it is was an" for i in range(60)]
    csv.write_text("category,text\n" + "\n".join(rows) + "\n", encoding="utf-8")
    proc = labkit_cli(
        "run",
        "--dataset",
        "bbc",
        "--csv",
        str(csv),
        "--out",
        str(tmp_path / "out"),
        *QUICK,
        cwd=tmp_path,
    )
    assert_refused(
        proc,
        f"the training part of the texts in column 'text' of {csv}: no words are left",
        "English stop words",
        "TF-IDF needs texts with words of their own",
    )


@pytest.mark.parametrize(
    "options, words",
    [
        ({"vocab_size": 0}, "vocab_size is how many words TF-IDF keeps, a whole number of at"),
        ({"test_size": 1.5}, "test_size is the share of the texts in column 'text' of"),
        ({"test_size": 0}, "between 0 and 1 (0.3 holds out 30 %); got 0"),
        ({"test_size": 0.99}, "60 samples in 3 classes cannot be split with test_size=0.99"),
    ],
)
def test_text_options_out_of_range_are_one_sentence(tmp_path, options, words):
    write_news_csv(tmp_path / "news.csv", per_section=20)
    with pytest.raises(DataError) as info:
        labkit.load_dataset("bbc", csv=tmp_path / "news.csv", **options)
    assert words in str(info.value) and "\n" not in str(info.value)
