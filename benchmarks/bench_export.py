"""Exporters on 10,000 points x 128 dims x 11 epochs, side by side with the usual code.

    python benchmarks/bench_export.py          # about 1.5 minutes on 2 CPU cores

Mantis CSV: the kit's writer against pandas, ``df[f"embedding_epoch_{e}"] = emb[e].tolist()``
then ``to_csv``. Projector: the kit's writer against 11 calls of
``torch.utils.tensorboard.SummaryWriter.add_embedding`` (one per epoch, with metadata).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import labkit  # noqa: E402

WORK = ROOT / "benchmarks" / "_work" / "export"


def make_snapshots(n: int, dim: int, epochs: int, kind: str = "relu") -> labkit.Snapshots:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    emb = rng.normal(0, 1, (epochs + 1, n, dim))
    if kind == "relu":  # what a penultimate ReLU layer gives: non-negative, half exact zeros
        emb = np.maximum(emb, 0)
    emb = emb.astype(np.float32)
    preds = rng.integers(0, 10, (epochs + 1, n))
    return labkit.Snapshots(
        embeddings={"embed": emb},
        labels=labels,
        predictions=preds,
        probabilities=np.zeros((epochs + 1, n, 10), np.float32),
        titles=[f"article {i}, part {i % 7}" for i in range(n)],
        class_names=[f"class {c}" for c in range(10)],
        history=[{"epoch": e} for e in range(epochs + 1)],
        meta={"penultimate": "embed"},
    )


def size(path: Path) -> int:
    return (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def pandas_mantis(snaps: labkit.Snapshots, path: Path) -> None:
    import pandas as pd

    df = pd.DataFrame({"title": snaps.titles, "categoric": snaps.label_names})
    emb = snaps.layer()
    for e in range(emb.shape[0]):
        df[f"embedding_epoch_{e}"] = emb[e].tolist()
    df.to_csv(path, index=False)


def add_embedding_logs(snaps: labkit.Snapshots, logdir: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(logdir))
    meta = [[c, t] for c, t in zip(snaps.label_names, snaps.titles, strict=True)]
    for e, emb in enumerate(snaps.layer()):
        writer.add_embedding(
            emb, metadata=meta, metadata_header=["label", "title"], global_step=e, tag="embed"
        )
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10, help="epochs; snapshots are N + 1")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "export.json"))
    parser.add_argument(
        "--data",
        nargs="+",
        default=["gaussian", "relu"],
        choices=["gaussian", "relu"],
        help="gaussian: every value a full-length number (like the issue's "
        "291 MB baseline); relu: a penultimate layer's output",
    )
    args = parser.parse_args()
    results = {kind: run(args, kind) for kind in args.data}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


def run(args, kind: str) -> dict:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    snaps = make_snapshots(args.n, args.dim, args.epochs, kind)
    print(f"{kind}: {args.n} points x {args.dim} dims x {args.epochs + 1} snapshots")

    res: dict = {}
    res["mantis_pandas_s"] = timed(lambda: pandas_mantis(snaps, WORK / "pandas.csv"))
    res["mantis_kit_s"] = timed(lambda: labkit.write_mantis_csv(snaps, WORK / "kit.csv"))
    res["mantis_pandas_bytes"] = size(WORK / "pandas.csv")
    res["mantis_kit_bytes"] = size(WORK / "kit.csv")
    back = labkit.read_mantis_csv(WORK / "kit.csv").embeddings
    emb = snaps.layer()
    res["mantis_kit_exact"] = bool(np.array_equal(back.view(np.uint32), emb.view(np.uint32)))
    res["mantis_speedup"] = res["mantis_pandas_s"] / res["mantis_kit_s"]
    print(
        f"Mantis CSV : pandas {res['mantis_pandas_s']:.2f} s, "
        f"{res['mantis_pandas_bytes'] / 1e6:.0f} MB | kit {res['mantis_kit_s']:.2f} s, "
        f"{res['mantis_kit_bytes'] / 1e6:.0f} MB | {res['mantis_speedup']:.1f}x "
        f"(every float32 read back bit for bit: {res['mantis_kit_exact']})"
    )

    res["projector_add_embedding_s"] = timed(lambda: add_embedding_logs(snaps, WORK / "tb_ref"))
    res["projector_kit_s"] = timed(lambda: labkit.write_projector(snaps, WORK / "tb_kit"))
    res["projector_add_embedding_bytes"] = size(WORK / "tb_ref")
    res["projector_kit_bytes"] = size(WORK / "tb_kit")
    res["projector_speedup"] = res["projector_add_embedding_s"] / res["projector_kit_s"]
    print(
        f"Projector  : add_embedding x{args.epochs + 1} {res['projector_add_embedding_s']:.2f} s, "
        f"{res['projector_add_embedding_bytes'] / 1e6:.0f} MB | "
        f"kit {res['projector_kit_s']:.2f} s, "
        f"{res['projector_kit_bytes'] / 1e6:.0f} MB | {res['projector_speedup']:.1f}x"
    )

    res.update(n=args.n, dim=args.dim, snapshots=args.epochs + 1)
    shutil.rmtree(WORK, ignore_errors=True)
    return res


if __name__ == "__main__":
    main()
