"""Command line: ``python -m labkit run ...``.

    python -m labkit run                                  # digits, offline, < 1 minute
    python -m labkit run --dataset mnist --epochs 10 --out runs/mnist
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data import DATASETS
from .errors import LabkitError
from .models import MODELS


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labkit",
                                     description="Watch a classifier learn its embeddings.")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train with embedding capture and write a run folder",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--dataset", default="digits", choices=sorted(DATASETS),
                   help="data set ('digits' ships with scikit-learn and works offline)")
    r.add_argument("--model", default=None, choices=sorted(MODELS),
                   help="model (default: 'cnn' for images, 'mlp' otherwise; "
                        "'deep-mlp' for layer studies)")
    r.add_argument("--epochs", type=_non_negative, default=10)
    r.add_argument("--probe-size", type=_positive, default=2000,
                   help="test samples whose embeddings are recorded")
    r.add_argument("--layers", default="penultimate", choices=["penultimate", "all"])
    r.add_argument("--topics", default=None,
                   help='wikipedia: comma-separated topics, e.g. "Astronomy,Cooking,Basketball"')
    r.add_argument("--api-url", default=None,
                   help="wikipedia: the MediaWiki api.php endpoint (another language, a mirror)")
    r.add_argument("--csv", default=None, help="bbc: path or URL of the BBC News CSV")
    r.add_argument("--data-dir", default="data", help="where data sets are downloaded/found")
    r.add_argument("--out", default=None, help="run folder (default: runs/DATASET)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", help="auto, cpu or cuda")
    r.add_argument("--batch-size", type=_positive, default=None,
                   help="default: 128, less for small data sets (at least 20 steps an epoch)")
    r.add_argument("--lr", type=float, default=1e-3)
    r.add_argument("--reducer", default="pca", choices=["pca", "tsne", "umap"],
                   help="projection for the figures (pca is fast and deterministic)")
    r.add_argument("--no-figures", action="store_true", help="skip figures and geometry")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    t = sub.add_parser("tensorboard", help="serve a run's projector logs with TensorBoard",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("run_dir", help="a run folder (or its tensorboard/ folder)")
    t.add_argument("--port", type=_positive, default=6006, help="first port to try")
    t.add_argument("--tunnel", action="store_true",
                   help="also open a public ngrok tunnel (needs NGROK_AUTHTOKEN)")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from .experiment import run

    extra = {}
    if args.topics is not None:
        extra["topics"] = [t.strip() for t in args.topics.split(",") if t.strip()]
    if args.api_url is not None:
        extra["api_url"] = args.api_url
    if args.csv is not None:
        extra["csv"] = args.csv
    result = run(
        dataset=args.dataset, model=args.model, epochs=args.epochs, probe_size=args.probe_size,
        layers=args.layers, data_dir=args.data_dir, out=args.out, seed=args.seed,
        device=args.device, progress=not args.no_progress, reducer=args.reducer,
        figures=not args.no_figures,
        train_options={"batch_size": args.batch_size, "lr": args.lr}, **extra,
    )
    snaps, folder = result.snapshots, result.folder
    final = snaps.history[-1]
    print(f"\nTrained {snaps.meta['model']} on {snaps.meta['dataset']} for {snaps.epochs} epochs: "
          f"test accuracy {final['test_acc']:.1%} (epoch 0: {snaps.history[0]['test_acc']:.1%}).")
    print(f"Run folder: {folder}")
    width = max(len(k) for k in result.files)
    for key, path in result.files.items():
        print(f"  {key:<{width}}  {path}")
    print("\nNext:")
    print(f"  python -m labkit tensorboard {folder}      # the Embedding Projector")
    print(f"  open {folder / 'mantis.csv'} in Mantis")
    print(f"  python -c \"import labkit; print(labkit.Snapshots.load('{folder}'))\"")
    return 0


def _cmd_tensorboard(args: argparse.Namespace) -> int:
    from .serve import open_tunnel, start_tensorboard

    run_dir = Path(args.run_dir)
    logdir = run_dir / "tensorboard" if (run_dir / "tensorboard").is_dir() else run_dir
    server = start_tensorboard(logdir, port=args.port)
    state = "already running" if server.reused else "started"
    print(f"TensorBoard {state} on {logdir}: {server.projector_url}")
    if args.tunnel:
        open_tunnel(server.port)
    if server.process is None:  # reused: it belongs to an earlier command; leave it running
        return 0
    print("Press Ctrl-C to stop.")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        print("\nstopping TensorBoard")
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "tensorboard":
            return _cmd_tensorboard(args)
    except (LabkitError, FileNotFoundError) as err:
        # Errors the kit raises are written for people: show them without a traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
