"""TensorBoard Embedding Projector logs that a stock TensorBoard reads, no TensorFlow needed.

One embedding per (layer, epoch), named ``01_embed/epoch_00`` so the projector's dropdown
sorts by layer, then epoch. Layout of the log folder::

    tensorboard/
      projector_config.pbtxt          the index TensorBoard reads (paths relative to it)
      events.out.tfevents.*.labkit    loss and accuracy per epoch (Scalars tab)
      projector/sprite.png            thumbnails of the probe set (image data only)
      projector/01_embed/epoch_00.bin float32 tensor, row-major [n, dim]
      projector/01_embed/epoch_00.tsv metadata with a header: label, title, prediction, ...

Tensors are raw float32, not TSV: TensorBoard reads a tensor file as TSV text and, when that
fails to decode, as float32 with the shape from the config. Raw bytes are exact and about
forty times faster to write than formatted text. Rare tensors whose first bytes happen to be
valid UTF-8 (all zeros, say) are written as TSV instead, with 9 significant digits, which is
exact for float32 too.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._io import atomic_write
from .cells import quote_formula

if TYPE_CHECKING:
    from ..snapshots import Snapshots

__all__ = ["PROJECTOR_POINT_LIMIT", "SPRITE_LIMIT_PX", "tensor_name", "write_projector"]

PROJECTOR_POINT_LIMIT = 100_000  # the projector samples down above this many points
PROJECTOR_TSNE_SAMPLE = 10_000  # ... and runs its t-SNE on this many of them
PROJECTOR_UMAP_SAMPLE = 5_000  # ... and its UMAP on this many
SPRITE_LIMIT_PX = 8192  # WebGL texture limit the projector enforces for sprite sheets
CONFIG = "projector_config.pbtxt"
_TB_TEXT_BLOCK = 16 * 1024 * 1024  # TensorBoard decodes this many characters at a time


def tensor_name(layer_index: int, layer: str, epoch: int) -> str:
    """``01_embed/epoch_03``: zero-padded so the dropdown sorts by layer, then epoch."""
    return f"{layer_index:02d}_{layer}/epoch_{epoch:02d}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def clean_cell(text) -> str:
    """A metadata cell: tabs and line breaks would split columns or rows, so they become spaces."""
    return re.sub(r"[\t\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+", " ", str(text)).strip()


def _write_tensor(path: Path, x: np.ndarray) -> Path:
    x = np.ascontiguousarray(x, dtype="<f4")
    data = x.tobytes()
    try:
        data[:_TB_TEXT_BLOCK].decode("utf-8")
    except UnicodeDecodeError:
        with atomic_write(path, "wb") as f:
            f.write(data)
        return path
    # Decodes as text, so TensorBoard would parse it as TSV: give it real TSV.
    with atomic_write(path, "w") as f:
        for row in x.astype(np.float64).tolist():
            f.write("\t".join(f"{v:.9g}" for v in row) + "\n")
    return path


def _metadata(snaps, at_epochs: list[int]) -> dict[int, str]:
    """Each epoch's metadata TSV. Labels, titles and snippets are cleaned once for every
    epoch (only the predictions change): 20,000 cells a run instead of 130,000.

    A cell a spreadsheet would open as a formula (``=``, ``+``, ``-``, ``@`` first: the
    file is a plain TSV that a double click opens in one) starts with a single quote, as in
    the Mantis CSV (:mod:`labkit.export.cells`); the projector shows it as written."""

    def cleaned(values) -> list[str]:
        return [quote_formula(clean_cell(v)) or "-" for v in values]

    fixed = {"label": cleaned(snaps.label_names), "title": cleaned(snaps.titles)}
    if snaps.snippets:
        fixed["snippet"] = cleaned(snaps.snippets)
    names = cleaned(snaps.class_names)
    index = [str(i) for i in range(snaps.n_probe)]
    header = "\t".join([*fixed, "prediction", "correct", "index"])
    out = {}
    for epoch in at_epochs:
        prediction = [names[i] for i in snaps.predictions[epoch]]
        correct = ["yes" if c else "no" for c in snaps.correct(epoch)]
        rows = zip(*fixed.values(), prediction, correct, index, strict=True)
        out[epoch] = "\n".join([header, *("\t".join(row) for row in rows)]) + "\n"
    return out


def _sprite(thumbs: np.ndarray) -> tuple[np.ndarray, int, int]:
    """A square, row-major grid of thumbnails within the projector's limit; returns (img, w, h)."""
    import torch
    import torch.nn.functional as F

    n, h, w = thumbs.shape[:3]
    # A square grid, padded with blanks, as TensorFlow's own writer makes it.
    cols = rows = math.ceil(math.sqrt(n))
    scale = min(1.0, SPRITE_LIMIT_PX / (cols * w), SPRITE_LIMIT_PX / (rows * h))
    if scale < 1.0:  # shrink every thumbnail (area-averaged) so the sheet fits
        nh, nw = max(1, int(h * scale)), max(1, int(w * scale))
        t = torch.from_numpy(thumbs.astype(np.float32))
        t = t.permute(0, 3, 1, 2) if t.ndim == 4 else t[:, None]
        t = F.interpolate(t, size=(nh, nw), mode="area")
        t = t.permute(0, 2, 3, 1) if thumbs.ndim == 4 else t[:, 0]
        thumbs = t.round().clamp(0, 255).to(torch.uint8).numpy()
        h, w = nh, nw
    sheet = np.zeros((rows * h, cols * w, *thumbs.shape[3:]), np.uint8)
    padded = np.zeros((rows * cols, *thumbs.shape[1:]), np.uint8)
    padded[:n] = thumbs
    grid = padded.reshape(rows, cols, h, w, *thumbs.shape[3:]).swapaxes(1, 2)
    sheet[:] = grid.reshape(sheet.shape)
    return sheet, w, h


def _read_config(path: Path):
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    config = ProjectorConfig()
    if path.exists():
        text_format.Parse(path.read_text(encoding="utf-8"), config)
    return config


def write_projector(
    snaps: Snapshots,
    logdir: str | Path,
    layers: list[str] | None = None,
    at_epochs: list[int] | None = None,
    *,
    scalars: bool = True,
) -> Path:
    """Write projector logs for ``layers`` x ``at_epochs`` (default: all) into ``logdir``.

    Writing again into the same folder merges with its config: entries of the same name are
    replaced, others kept (as long as their files exist). Returns the config's path.
    """

    snaps = replace(snaps)  # construction's checks again: a title changed since is named
    logdir = Path(logdir)
    layers = snaps.layer_names if layers is None else list(layers)  # None: every layer
    at_epochs = list(range(snaps.epochs + 1)) if at_epochs is None else list(at_epochs)
    if snaps.n_probe > PROJECTOR_POINT_LIMIT:
        from ..data import probe_indices

        warnings.warn(
            f"{snaps.n_probe:,} points: the projector shows at most "
            f"{PROJECTOR_POINT_LIMIT:,}, so the logs hold a stratified sample of that many "
            f"(the same classes' shares; the Mantis CSV and the snapshots keep every point)",
            stacklevel=2,
        )
        snaps = snaps.subset(probe_indices(snaps.labels, PROJECTOR_POINT_LIMIT))
    elif snaps.n_probe > PROJECTOR_TSNE_SAMPLE:
        warnings.warn(
            f"{snaps.n_probe:,} points: the projector's PCA shows every one, but its t-SNE "
            f"runs on a random {PROJECTOR_TSNE_SAMPLE:,} and its UMAP on "
            f"{PROJECTOR_UMAP_SAMPLE:,} of them (labkit.reduce.project takes them all)",
            stacklevel=2,
        )
    assets = logdir / "projector"
    sprite = _write_sprite(snaps.thumbnails, assets) if snaps.thumbnails is not None else None

    from tensorboard.plugins.projector.projector_config_pb2 import EmbeddingInfo

    metadata = _metadata(snaps, at_epochs)  # the same for every layer
    entries: dict[str, EmbeddingInfo] = {}
    for layer in layers:
        li = snaps.layer_names.index(layer) + 1
        emb = snaps.layer(layer)
        folder = assets / f"{li:02d}_{_safe(layer)}"
        for epoch in at_epochs:
            stem = f"epoch_{epoch:02d}"
            _write_tensor(folder / f"{stem}.bin", emb[epoch])
            with atomic_write(folder / f"{stem}.tsv", "w") as f:
                f.write(metadata[epoch])
            entry = EmbeddingInfo(
                tensor_name=tensor_name(li, layer, epoch),
                tensor_path=f"projector/{folder.name}/{stem}.bin",
                metadata_path=f"projector/{folder.name}/{stem}.tsv",
            )
            entry.tensor_shape.extend(emb[epoch].shape)
            if sprite:
                entry.sprite.image_path = sprite[0]
                entry.sprite.single_image_dim.extend([sprite[1], sprite[2]])
            entries[entry.tensor_name] = entry

    config_path = _merge_config(logdir, entries)  # last: an interrupted export keeps the old

    if scalars:
        _write_scalars(snaps, logdir)
    return config_path


def _write_sprite(thumbnails: np.ndarray, assets: Path) -> tuple[str, int, int]:
    """The thumbnails as one sprite sheet; its path in the config and one image's size."""
    from PIL import Image

    sheet, w, h = _sprite(thumbnails)
    with atomic_write(assets / "sprite.png", "wb") as f:
        Image.fromarray(sheet).save(f, format="PNG")
    return "projector/sprite.png", w, h


def _merge_config(logdir: Path, entries: dict) -> Path:
    """Write the config: ``entries``, with what the folder already lists under other names
    while their tensor files exist (same names are replaced). Returns its path."""
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    config_path = logdir / CONFIG
    kept = {
        e.tensor_name: e
        for e in _read_config(config_path).embeddings
        if e.tensor_name not in entries and (logdir / e.tensor_path).exists()
    }
    merged = {**kept, **entries}
    config = ProjectorConfig()
    config.embeddings.extend(merged[name] for name in sorted(merged))
    with atomic_write(config_path, "w") as f:
        f.write(text_format.MessageToString(config))
    return config_path


def _write_scalars(snaps, logdir: Path) -> None:
    """Loss and accuracy per epoch, replacing the scalars an earlier export wrote."""
    from torch.utils.tensorboard import SummaryWriter

    for old in logdir.glob("events.out.tfevents.*.labkit"):
        old.unlink()
    writer = SummaryWriter(log_dir=str(logdir), filename_suffix=".labkit")
    try:
        for row in snaps.history:
            for split in ("train", "test"):
                for metric in ("loss", "acc"):
                    value = row.get(f"{split}_{metric}")
                    if value is not None:
                        tag = f"{'loss' if metric == 'loss' else 'accuracy'}/{split}"
                        writer.add_scalar(tag, value, global_step=row["epoch"])
    finally:
        writer.close()
