"""Command line: ``python -m labkit run ...``.

python -m labkit run                                  # digits, offline, < 1 minute
python -m labkit run --dataset mnist --epochs 10 --out runs/mnist
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import warnings
from pathlib import Path

from . import interrupts
from .data import DATASETS
from .errors import ConfigError, LabkitError
from .models import MODELS
from .training.device import PRECISIONS


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text}") from None


def _size(text: str) -> int | str:
    return "all" if text == "all" else _whole(text)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text}") from None


def _classes(text: str) -> list[int | str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if len(names) < 2:
        raise argparse.ArgumentTypeError(f"name at least 2 classes, e.g. 0,1,2; got {text!r}")
    return [int(t) if t.isdigit() else t for t in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m labkit", description="Watch a classifier learn its embeddings."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser(
        "run",
        help="train with embedding capture and write a run folder",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    r.add_argument(
        "--dataset",
        default="digits",
        choices=sorted(DATASETS),
        help="data set ('digits' ships with scikit-learn and works offline)",
    )
    r.add_argument(
        "--model",
        default=None,
        choices=sorted(MODELS),
        help="model (default: 'cnn' for images, 'mlp' otherwise; 'deep-mlp' for layer studies)",
    )
    r.add_argument("--epochs", type=_whole, default=10)
    r.add_argument(
        "--probe-size",
        type=_size,
        default=None,
        help="samples whose embeddings are recorded (default: 2000, or the whole split when "
        "it is smaller; all: the whole split)",
    )
    r.add_argument("--layers", default="penultimate", choices=["penultimate", "all"])
    r.add_argument(
        "--topics",
        default=None,
        help='wikipedia: comma-separated topics, e.g. "Astronomy,Cooking,Basketball"',
    )
    r.add_argument(
        "--api-url",
        default=None,
        help="wikipedia: the MediaWiki api.php endpoint (another language, a mirror)",
    )
    r.add_argument("--csv", default=None, help="bbc: path or URL of the BBC News CSV")
    r.add_argument(
        "--text-column", default=None, help="bbc: the CSV column with the texts (default: text)"
    )
    r.add_argument(
        "--label-column",
        default=None,
        help="bbc: the CSV column with the labels (default: category)",
    )
    r.add_argument("--data-dir", default="data", help="where data sets are downloaded/found")
    r.add_argument("--out", default=None, help="run folder (default: runs/DATASET)")
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run folder (otherwise it is refused)",
    )
    r.add_argument(
        "--classes",
        type=_classes,
        default=None,
        metavar="A,B,...",
        help="only these classes (indices or names), e.g. 0,1,2",
    )
    r.add_argument(
        "--probe-split",
        default="test",
        choices=["test", "train"],
        help="the split the probe set is drawn from (train: watch the data the "
        "network is fitted on, e.g. for neural collapse)",
    )
    r.add_argument(
        "--label-noise",
        type=_number,
        default=0.0,
        metavar="SHARE",
        help="give this share of the labels another class (e.g. 0.1), to find "
        "them again with label_error_candidates",
    )
    r.add_argument("--seed", type=_whole, default=0)
    r.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps")
    r.add_argument(
        "--batch-size",
        type=_whole,
        default=None,
        help="default: 128, less for small data sets (at least 20 steps an epoch)",
    )
    r.add_argument("--lr", type=_number, default=1e-3, help="peak learning rate")
    r.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto: mixed bf16 where the CPU or GPU computes it natively (fp16 on older "
        "GPUs), else fp32; the probe is captured in fp32 either way",
    )
    r.add_argument(
        "--no-cache",
        action="store_true",
        help="train even if the same run is in the run cache (home/runs/.cache, or "
        "$LABKIT_RUN_CACHE), and keep nothing there",
    )
    r.add_argument(
        "--method",
        default="pca",
        choices=["pca", "tsne", "umap"],
        help="projection method for the figures (pca is fast and deterministic)",
    )
    r.add_argument("--no-figures", action="store_true", help="skip figures and geometry")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    t = sub.add_parser(
        "tensorboard",
        help="serve a run's projector logs with TensorBoard",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("run_dir", help="a run folder (or its tensorboard/ folder)")
    t.add_argument("--port", type=_whole, default=6006, help="first port to try")
    t.add_argument(
        "--tunnel",
        action="store_true",
        help="also open a public ngrok tunnel (needs NGROK_AUTHTOKEN)",
    )
    return parser


def _check_flags(args: argparse.Namespace) -> None:
    """Flags for one data set given with another (the library's checks, which ``run`` makes
    before any data is loaded, judge every value)."""
    for flag in ("topics", "api_url"):
        if getattr(args, flag) is not None and args.dataset != "wikipedia":
            raise ConfigError(f"--{flag.replace('_', '-')} is for --dataset wikipedia")
    for flag in ("csv", "text_column", "label_column"):
        if getattr(args, flag) is not None and args.dataset != "bbc":
            raise ConfigError(f"--{flag.replace('_', '-')} is for --dataset bbc")


def _cmd_run(args: argparse.Namespace) -> int:
    from .experiment import run

    _check_flags(args)
    extra = {}
    if args.topics is not None:
        extra["topics"] = [t.strip() for t in args.topics.split(",") if t.strip()]
    if args.api_url is not None:
        extra["api_url"] = args.api_url
    if args.classes is not None:
        extra["classes"] = args.classes
    if args.probe_split != "test":
        extra["probe_split"] = args.probe_split
    if args.label_noise:
        extra["label_noise"] = args.label_noise
    for key in ("csv", "text_column", "label_column"):
        if getattr(args, key) is not None:
            extra[key] = getattr(args, key)
    result = run(
        args.dataset,
        args.model,
        probe_size=args.probe_size,
        data_dir=args.data_dir,
        out=args.out,
        progress=not args.no_progress,
        method=args.method,
        figures=not args.no_figures,
        overwrite=args.overwrite,
        # The training's settings, judged by the library's one record (TrainSettings).
        epochs=args.epochs,
        layers=args.layers,
        seed=args.seed,
        device=args.device,
        batch_size=args.batch_size,
        lr=args.lr,
        precision=args.precision,
        cache=not args.no_cache,
        **extra,
    )
    snaps, folder = result.snapshots, result.folder
    final = snaps.history[-1]
    print(
        f"\nTrained {snaps.meta['model']} on {snaps.meta['dataset']} for {snaps.epochs} epochs: "
        f"test accuracy {final['test_acc']:.1%} (epoch 0: {snaps.history[0]['test_acc']:.1%})."
    )
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
    from .view import open_tunnel, require_token, start_tensorboard
    from .view.processes import check_port

    check_port(args.port, "--port")
    if args.tunnel:
        require_token(args.port)  # say so before starting anything
    run_dir = Path(args.run_dir)
    logdir = run_dir / "tensorboard" if (run_dir / "tensorboard").is_dir() else run_dir
    server = start_tensorboard(logdir, port=args.port)
    ours = server.process is not None  # reused: an earlier command's; it stays running
    # From here a Ctrl-C stops TensorBoard and ends the command normally, even one that
    # lands the moment the address is printed; SIGTERM and SIGHUP stop it the same way and
    # end the command with 128 + the signal's number, as a shell reports them.
    try:
        state = "already running" if server.reused else "started"
        print(f"TensorBoard {state} on {logdir}: {server.projector_url}", flush=True)
        if args.tunnel:
            open_tunnel(server.port)
        if ours:
            print("Press Ctrl-C to stop.", flush=True)
            server.process.wait()
    except KeyboardInterrupt as stop:
        if ours:
            print(f"\n{_reason(stop, 'stopping TensorBoard')}", flush=True)
        if isinstance(stop, Signalled):
            return 128 + stop.signum
    finally:
        if ours:
            server.stop()
    return 0


class Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where a Ctrl-C would be: a closed terminal or a scheduler's
    timeout ends a command as a Ctrl-C ends it (nothing half-written, TensorBoard stopped)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _reason(stop: KeyboardInterrupt, what: str) -> str:
    return f"{stop.args[0]}: {what}" if isinstance(stop, Signalled) else what


@contextlib.contextmanager
def _signals_as_ctrl_c():
    """SIGTERM and SIGHUP raise :class:`Signalled` in the block; the old handlers after."""
    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be set in the main thread (a test calling main())
        return

    def raise_signalled(signum, frame):
        raise Signalled(signum)

    old = {n: signal.signal(getattr(signal, n), raise_signalled) for n in names}
    try:
        yield
    finally:
        for n, handler in old.items():
            signal.signal(getattr(signal, n), handler)


def _warning_line(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"  # a sentence for people, not a source location


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Warnings print as sentences while the command runs; a caller's (a test's, a script's
    # calling main()) own format is back afterwards.
    before = warnings.formatwarning
    warnings.formatwarning = _warning_line
    try:
        with _signals_as_ctrl_c(), interrupts.noted():
            return _main(args)
    finally:
        warnings.formatwarning = before


def _main(args: argparse.Namespace) -> int:
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "tensorboard":
            return _cmd_tensorboard(args)
    except (LabkitError, FileNotFoundError) as err:
        # Errors the kit raises are written for people: show them without a traceback.
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, permission denied...: say which file
        where = f" ({err.filename})" if err.filename else ""
        print(
            f"error: {err.strerror or err}{where}; nothing was changed in the run folder",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt as stop:
        kept = (
            "nothing was written, and an earlier run folder is as it was"
            if args.command == "run"
            else "TensorBoard was stopped"
        )
        if isinstance(stop, Signalled):
            print(f"\n{stop.args[0]}: {kept}", file=sys.stderr)
            return 128 + stop.signum
        print(f"\ninterrupted: {kept}", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
