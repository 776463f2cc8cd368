"""Projector logs, checked through a real TensorBoard on 127.0.0.1 and its HTTP API."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import urllib.parse

import numpy as np
import pytest
from PIL import Image

import labkit
from labkit.export.projector import CONFIG, SPRITE_LIMIT_PX, _sprite, write_projector

from .browser import browser_page, chromium_path, read_projector

ODD = ["tab\there", "new\nline", 'say "hi", ok', "ünïcödé ✓ 日本語", "cr\r\nlf", "  "]


def _clean(t):
    return " ".join(t.replace("\t", " ").replace("\r", " ").replace("\n", " ").split()) or "-"


@pytest.fixture(scope="module")
def logged(digits_run, deep_run, tmp_path_factory):
    """Logs of the CNN run (with odd titles) and of the deep MLP's five layers, side by side."""
    _, snaps = digits_run
    snaps = copy.deepcopy(snaps)
    for i, t in enumerate(ODD):
        snaps.titles[i] = t
    root = tmp_path_factory.mktemp("tb")
    write_projector(snaps, root / "cnn")
    _, deep = deep_run
    deep = copy.deepcopy(deep)
    write_projector(deep, root / "deep", at_epochs=[0, 1, 30])
    return root, snaps, deep


@pytest.fixture(scope="module")
def tb(logged):
    root, _, _ = logged
    server = labkit.start_tensorboard(root, port=6106)
    yield server
    server.stop()


def _json(tb, path, **params):
    return json.loads(tb.get(f"{path}?{urllib.parse.urlencode(params)}"))


def test_runs_and_one_embedding_per_layer_and_epoch(tb, logged):
    _, snaps, deep = logged
    runs = json.loads(tb.get("/data/plugin/projector/runs"))
    assert sorted(runs) == ["cnn", "deep"]
    info = _json(tb, "/data/plugin/projector/info", run="cnn")
    names = [e["tensorName"] for e in info["embeddings"]]
    assert names == [f"01_embed/epoch_{e:02d}" for e in range(5)]
    assert all(e["tensorShape"] == [450, 64] for e in info["embeddings"])
    deep_names = [
        e["tensorName"] for e in _json(tb, "/data/plugin/projector/info", run="deep")["embeddings"]
    ]
    assert deep_names == [
        f"{i:02d}_hidden{i}/epoch_{e:02d}" for i in range(1, 6) for e in (0, 1, 30)
    ]


def test_tensor_bytes_are_the_snapshot_values(tb, logged):
    _, snaps, deep = logged
    for epoch in (0, 4):
        data = tb.get(
            "/data/plugin/projector/tensor?run=cnn&name="
            + urllib.parse.quote(f"01_embed/epoch_{epoch:02d}")
        )
        assert data == snaps.layer()[epoch].astype("<f4").tobytes()
    data = tb.get(
        "/data/plugin/projector/tensor?run=deep&name=" + urllib.parse.quote("03_hidden3/epoch_30")
    )
    assert data == deep.embeddings["hidden3"][30].astype("<f4").tobytes()


def test_metadata_has_a_header_and_one_clean_line_per_point(tb, logged):
    _, snaps, _ = logged
    text = tb.get(
        "/data/plugin/projector/metadata?run=cnn&name=" + urllib.parse.quote("01_embed/epoch_04")
    ).decode("utf-8")
    lines = text.split("\n")[:-1]
    assert lines[0] == "label\ttitle\tprediction\tcorrect\tindex"
    assert len(lines) == 1 + snaps.n_probe
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == 5 for r in rows)
    assert [r[1] for r in rows[: len(ODD)]] == [_clean(t) for t in ODD]
    assert rows[3][1] == "ünïcödé ✓ 日本語" and rows[2][1] == 'say "hi", ok'
    assert [r[0] for r in rows] == snaps.label_names
    preds = [snaps.class_names[p] for p in snaps.predictions[4]]
    assert [r[2] for r in rows] == preds
    assert [r[3] == "yes" for r in rows] == list(snaps.correct(4))


def test_sprite_is_served_for_image_data(tb, logged):
    _, snaps, _ = logged
    info = _json(tb, "/data/plugin/projector/info", run="cnn")
    sprite = info["embeddings"][0]["sprite"]
    assert sprite["singleImageDim"] == [8, 8]
    png = tb.get(
        "/data/plugin/projector/sprite_image?run=cnn&name="
        + urllib.parse.quote("01_embed/epoch_00")
    )
    img = np.asarray(Image.open(io.BytesIO(png)))
    assert img.shape == (22 * 8, 22 * 8)  # ceil(sqrt(450)) = 22 thumbnails a row
    np.testing.assert_array_equal(img[:8, :8], snaps.thumbnails[0])
    np.testing.assert_array_equal(img[8:16, 8 * 3 : 8 * 4], snaps.thumbnails[22 + 3])


def test_scalars_are_in_the_scalars_tab(tb):
    tags = json.loads(tb.get("/data/plugin/scalars/tags"))
    assert set(tags["cnn"]) == {"loss/train", "loss/test", "accuracy/train", "accuracy/test"}
    points = json.loads(tb.get("/data/plugin/scalars/scalars?run=cnn&tag=accuracy%2Ftest"))
    assert [p[1] for p in points] == [0, 1, 2, 3, 4]


def test_writing_again_keeps_a_valid_merged_config(digits_run, deep_run, tmp_path):
    _, snaps = digits_run
    write_projector(snaps, tmp_path, at_epochs=[0, 1])
    write_projector(snaps, tmp_path, at_epochs=[1, 4])  # overlapping: replaced, not duplicated
    text = (tmp_path / CONFIG).read_text()
    assert text.count("tensor_name:") == 3
    for name in ("01_embed/epoch_00", "01_embed/epoch_01", "01_embed/epoch_04"):
        assert text.count(f'"{name}"') == 1
    # Only one events file: scalars are replaced, not appended twice.
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    # An entry whose files were deleted is dropped rather than left dangling.
    (tmp_path / "projector" / "01_embed" / "epoch_00.bin").unlink()
    write_projector(snaps, tmp_path, at_epochs=[2])
    text = (tmp_path / CONFIG).read_text()
    assert '"01_embed/epoch_00"' not in text and text.count("tensor_name:") == 3


def test_sprite_shrinks_to_the_8192_px_limit():
    thumbs = np.random.default_rng(0).integers(0, 255, (100_000, 28, 28), dtype=np.uint8)
    sheet, w, h = _sprite(thumbs)
    assert max(sheet.shape[:2]) <= SPRITE_LIMIT_PX and (w, h) == (25, 25)
    assert sheet.shape[1] == 317 * 25
    rgb = np.random.default_rng(0).integers(0, 255, (50, 32, 32, 3), dtype=np.uint8)
    sheet, w, h = _sprite(rgb)
    assert sheet.shape == (8 * 32, 8 * 32, 3) and (w, h) == (32, 32)
    assert not sheet[7 * 32 :, 2 * 32 :].any()  # the padding after the last of 50 is blank
    np.testing.assert_array_equal(sheet[32:64, 0:32], rgb[8])


def test_past_the_projector_point_limit_the_logs_hold_a_stratified_sample(
    digits_run, tmp_path, monkeypatch
):
    """Above the projector's own limit the logs hold a sample of that many points with the
    classes' shares; above its t-SNE sample, one sentence says what TensorBoard samples."""
    import labkit.export.projector as projector

    monkeypatch.setattr(projector, "PROJECTOR_POINT_LIMIT", 100)
    _, snaps = digits_run
    with pytest.warns(UserWarning, match="a stratified sample of that many") as said:
        write_projector(snaps, tmp_path / "a", at_epochs=[0], scalars=False)
    assert len(said) == 1
    rows = (tmp_path / "a" / "projector" / "01_embed" / "epoch_00.tsv").read_text().splitlines()
    assert len(rows) == 1 + 100  # a header and the sample
    tensor = tmp_path / "a" / "projector" / "01_embed" / "epoch_00.bin"
    assert tensor.stat().st_size == 100 * snaps.layer().shape[2] * 4
    labels = [r.split("\t")[0] for r in rows[1:]]
    shares = np.bincount(snaps.labels, minlength=10) / snaps.n_probe
    np.testing.assert_allclose(
        [labels.count(c) / 100 for c in snaps.class_names], shares, atol=0.011
    )
    monkeypatch.setattr(projector, "PROJECTOR_POINT_LIMIT", 100_000)
    monkeypatch.setattr(projector, "PROJECTOR_TSNE_SAMPLE", 100)
    with pytest.warns(UserWarning, match="its t-SNE runs on a random 100 and its UMAP on"):
        write_projector(snaps, tmp_path / "b", at_epochs=[0], scalars=False)


def test_all_zero_tensors_fall_back_to_exact_tsv(digits_run, tmp_path):
    # All zeros is valid UTF-8, which TensorBoard would parse as text: we must write text.
    _, snaps = digits_run
    snaps = copy.deepcopy(snaps)
    snaps.embeddings["embed"] = np.zeros_like(snaps.layer())
    snaps.embeddings["embed"][1] = 0.1
    write_projector(snaps, tmp_path, at_epochs=[0, 1], scalars=False)
    first = (tmp_path / "projector" / "01_embed" / "epoch_00.bin").read_bytes()
    assert first.startswith(b"0\t0\t")
    second = (tmp_path / "projector" / "01_embed" / "epoch_01.bin").read_bytes()
    assert second == snaps.layer()[1].astype("<f4").tobytes()


@pytest.mark.skipif(
    chromium_path() is None and not os.environ.get("CI"),
    reason="needs Debian's chromium (apt-get install chromium; .ci/run does)",
)
def test_projector_page_renders_in_headless_chromium(tb, logged, tmp_path):
    _, snaps, _ = logged
    with browser_page() as page:
        state = read_projector(page, tb.url + "#projector")
        page.screenshot(path=str(tmp_path / "projector.png"))
    # The first run's first tensor is shown: 5 tensors (epochs 0..4) of 450 x 64.
    assert state["tensors_found"] == 5
    assert state["points"] == snaps.n_probe == 450
    assert state["dimension"] == 64
    assert "01_embed/epoch_00" in state["texts"]
    assert (tmp_path / "projector.png").stat().st_size > 10_000


def test_an_interrupted_export_leaves_the_previous_logs_valid(digits_run, tmp_path, monkeypatch):
    import labkit.export.projector as projector

    _, snaps = digits_run
    write_projector(snaps, tmp_path, at_epochs=[0, 1], scalars=False)
    config_before = (tmp_path / CONFIG).read_bytes()
    meta_before = (tmp_path / "projector" / "01_embed" / "epoch_01.tsv").read_bytes()
    calls = []

    def interrupted(path, x):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second epoch's files
        return original(path, x)

    original = projector._write_tensor
    monkeypatch.setattr(projector, "_write_tensor", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_projector(snaps, tmp_path, at_epochs=[0, 1, 2], scalars=False)
    assert (tmp_path / CONFIG).read_bytes() == config_before  # the index is untouched
    assert (tmp_path / "projector" / "01_embed" / "epoch_01.tsv").read_bytes() == meta_before
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    # Every file the old config names is still there and whole.
    for name in re.findall(r'(?:tensor|metadata)_path: "([^"]+)"', config_before.decode()):
        assert (tmp_path / name).stat().st_size > 0
