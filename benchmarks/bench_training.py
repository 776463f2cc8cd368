"""One MNIST-shaped epoch: the kit's loop and CNN against the common seed-style loop.

    python benchmarks/bench_training.py            # about 7 minutes on 2 CPU cores

Seed-style: torchvision MNIST + DataLoader with per-item ToTensor/Normalize, batch 64, the
PyTorch-example CNN with Adadelta, one training epoch and one test pass (as in
pytorch/examples mnist/main.py). Kit: ``labkit.train(epochs=1)`` with the kit's CNN, which
also evaluates the test split twice (epoch 0 and epoch 1) and captures a 2000-sample probe.

Also measured: the capture overhead (train with a 2000-sample probe captured vs with no
capture, same everything else) and the accuracy the kit's CNNs reach in 10 epochs on
scikit-learn's digits, at 8x8 and scaled up to MNIST's 28x28. Real MNIST cannot be
downloaded here, so the data are MNIST-shaped IDX files made of those digits.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import labkit  # noqa: E402
from labkit.training.device import resolve_precision  # noqa: E402
from tests.fakedata import digit_images, write_idx  # noqa: E402

WORK = ROOT / "benchmarks" / "_work"


class ExampleNet(nn.Module):
    """The CNN of pytorch/examples mnist/main.py, unchanged."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def write_mnist_shaped(root: Path, n_train: int, n_test: int) -> None:
    raw = root / "MNIST" / "raw"
    if (raw / "t10k-labels-idx1-ubyte").exists():
        return
    raw.mkdir(parents=True, exist_ok=True)
    x, y = digit_images(n_train + n_test, 28, seed=0)
    write_idx(raw / "train-images-idx3-ubyte", x[:n_train])
    write_idx(raw / "train-labels-idx1-ubyte", y[:n_train])
    write_idx(raw / "t10k-images-idx3-ubyte", x[n_train:])
    write_idx(raw / "t10k-labels-idx1-ubyte", y[n_train:])


def seed_style_epoch(root: Path) -> dict:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(1)
    t_load = time.perf_counter()
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_set = datasets.MNIST(str(root), train=True, transform=tf)
    test_set = datasets.MNIST(str(root), train=False, transform=tf)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=1000)
    model = ExampleNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)

    t0 = time.perf_counter()
    t_load = t0 - t_load
    model.train()
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
    t_train = time.perf_counter() - t0
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += (model(x).argmax(1) == y).sum().item()
    total = time.perf_counter() - t0
    return {
        "seconds": total,
        "train_seconds": t_train,
        "load_seconds": t_load,
        "test_acc": correct / len(test_set),
    }


def kit_epoch(root: Path, precision: str = "auto") -> dict:
    t0 = time.perf_counter()
    data = labkit.load_dataset("mnist", data_dir=root, probe_size=2000)
    t_load = time.perf_counter() - t0
    model = labkit.build_model("cnn", data.input_shape, data.n_classes)
    t0 = time.perf_counter()
    snaps = labkit.train(model, data, epochs=1, progress=False, precision=precision, cache=False)
    total = time.perf_counter() - t0
    return {
        "seconds": total,
        "load_seconds": t_load,
        "precision": snaps.meta["precision"],
        "test_acc": snaps.history[-1]["test_acc"],
        "probe_shape": list(snaps.layer().shape),
    }


def side_by_side(root: Path, repeats: int) -> dict:
    """The seed-style epoch and the kit's, alternated ``repeats`` times (drift in the
    machine's speed hits both alike), each with its data loading: the median of each, and
    their ratio."""
    seeds, kits = [], []
    for _ in range(repeats):
        seed = seed_style_epoch(root)
        kit = kit_epoch(root)
        seeds.append(seed["seconds"] + seed["load_seconds"])
        kits.append(kit["seconds"] + kit["load_seconds"])
    seed_s, kit_s = float(np.median(seeds)), float(np.median(kits))
    return {
        "seed_style_s": seeds,
        "kit_s": kits,
        "speedup": seed_s / kit_s,
        "seed_style_median_s": seed_s,
        "kit_median_s": kit_s,
    }


def matmul_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Multiply-add throughput of this CPU in FLOP/s: the best of ``repeats`` n x n matrix
    products (2 n^3 FLOPs each), with torch's threads."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b  # warm-up: the kernel's first call picks and packs
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def arithmetic_floor(root: Path, kit_seconds: float, precision: str) -> dict:
    """The least time the kit's epoch could take on this CPU: the CNN's FLOPs (a training
    step's forward and backward per training image, a forward per test image in each of
    the epoch's two evaluations) divided by the measured matrix-multiply rate at the
    training precision. Convolutions reach less than a large matmul, so the floor is not
    reachable; it says how far there is to go."""
    from torch.utils.flop_counter import FlopCounterMode

    data = labkit.load_dataset("mnist", data_dir=root, probe_size=2000)
    model = labkit.build_model("cnn", data.input_shape, data.n_classes)
    x, y = data.x_train[:128], data.y_train[:128]
    with FlopCounterMode(display=False) as train_count:
        F.cross_entropy(model.train()(x), y).backward()
    with FlopCounterMode(display=False) as eval_count, torch.no_grad():
        model.eval()(x)
    train_per_image = train_count.get_total_flops() / len(x)
    eval_per_image = eval_count.get_total_flops() / len(x)
    n_train, n_test = len(data.y_train), len(data.y_test)
    flops = train_per_image * n_train + eval_per_image * n_test * 2
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    rate = matmul_rate(dtype)
    floor = flops / rate
    return {
        "train_flops_per_image": train_per_image,
        "eval_flops_per_image": eval_per_image,
        "epoch_flops": flops,
        "matmul_flops_per_s": rate,
        "matmul_dtype": str(dtype),
        "floor_s": floor,
        "kit_s": kit_seconds,
        "kit_over_floor": kit_seconds / floor,
        "n_train": n_train,
        "n_test": n_test,
    }


def compile_trial(root: Path, n: int = 12000) -> dict:
    """The kit's training step on ``n`` images, eager against ``torch.compile`` (both bf16
    autocast, AdamW): the compiled side's first epoch includes its compile."""
    data = labkit.load_dataset("mnist", data_dir=root, probe_size=500)
    x = data.x_train[:n].contiguous(memory_format=torch.channels_last)
    y = data.y_train[:n]
    out = {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = labkit.build_model("cnn", data.input_shape, data.n_classes)
        model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        forward = torch.compile(model) if name == "compiled" else model
        for epoch in ("first_epoch_s", "second_epoch_s"):
            t0 = time.perf_counter()
            for start in range(0, n, 128):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits = forward(x[start : start + 128])
                loss = F.cross_entropy(logits.float(), y[start : start + 128])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            out[f"{name}_{epoch}"] = time.perf_counter() - t0
    out["images"] = n
    return out


def capture_overhead(root: Path, epochs: int, repeats: int) -> dict:
    """Whole runs with and without the capture, at the default precision."""
    data = labkit.load_dataset("mnist", data_dir=root, probe_size=2000)
    times: dict[str, list[float]] = {"capture": [], "no_capture": []}
    for _ in range(repeats):  # alternate, so drift in the machine's speed hits both alike
        for key, layers in (("capture", "penultimate"), ("no_capture", None)):
            model = labkit.build_model("cnn", data.input_shape, data.n_classes)
            t0 = time.perf_counter()
            labkit.train(model, data, epochs=epochs, layers=layers, progress=False, cache=False)
            times[key].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    return {
        "epochs": epochs,
        "runs": times,
        "best": best,
        "overhead": best["capture"] / best["no_capture"] - 1,
    }


def capture_cost_direct(root: Path, repeats: int = 7) -> dict:
    """The evaluation pass with and without the probe hooks, alternated: the capture's own cost.

    Whole training runs differ by a few per cent from run to run on this machine, more than
    the capture costs; the evaluation pass is where the capture happens, so timing it
    directly gives a precise figure.
    """
    data = labkit.load_dataset("mnist", data_dir=root, probe_size=2000)
    model = labkit.build_model("cnn", data.input_shape, data.n_classes).eval()
    model.to(memory_format=torch.channels_last)
    precision = resolve_precision("auto", torch.device("cpu"))
    from dataclasses import replace

    data = replace(data, x_test=data.x_test.contiguous(memory_format=torch.channels_last))
    with_hooks, without = [], []
    labkit.evaluate(model, data, ["embed"], precision=precision)  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        labkit.evaluate(model, data, ["embed"], precision=precision)
        with_hooks.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        labkit.evaluate(model, data, [], precision=precision)
        without.append(time.perf_counter() - t0)
    w, wo = float(np.median(with_hooks)), float(np.median(without))
    return {"eval_with_capture_s": w, "eval_without_capture_s": wo, "extra_s": w - wo}


BEFORE_CODE = """
import inspect, json, sys, time
import labkit
# Time the training itself, never a run-cache hit (older kits have no cache).
fresh = {"cache": False} if "cache" in inspect.signature(labkit.train).parameters else {}
kind, root, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = labkit.load_dataset(kind, data_dir=root, probe_size=2000 if kind == "mnist" else 1000)
model = labkit.build_model("cnn", data.input_shape, data.n_classes)
t0 = time.perf_counter()
snaps = labkit.train(model, data, epochs=epochs, progress=False, **fresh)
print(json.dumps({"seconds": time.perf_counter() - t0, "epochs": epochs,
                  "test_acc": snaps.history[-1]["test_acc"]}))
"""


def before(checkout: Path, kind: str, root: Path, epochs: int) -> dict:
    """The same training with the kit as it is in ``checkout`` (a git worktree of an
    earlier commit, or this one), in a fresh process: before and after are measured the
    same way, cold start included."""
    import os
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", BEFORE_CODE, kind, str(root), str(epochs)],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["checkout"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True
    ).stdout.strip()
    return result


def cifar_data() -> Path:
    """CIFAR-shaped data: 50,000 + 10,000 images in the real file format."""
    from tests.fakedata import write_cifar10

    root = WORK / "cifar"
    if not (root / "cifar-10-batches-py" / "test_batch").exists():
        write_cifar10(root, per_batch=10000, n_test=10000)
    return root


def cifar_run(epochs: int, precision: str, model_options: dict | None = None) -> dict:
    """The CIFAR-10 lab's training (``labkit.train`` with the kit's CNN, probe 1,000 test
    images)."""
    root = cifar_data()
    data = labkit.load_dataset("cifar10", data_dir=root, probe_size=1000)
    model = labkit.build_model("cnn", data.input_shape, data.n_classes, **(model_options or {}))
    t0 = time.perf_counter()
    snaps = labkit.train(
        model, data, epochs=epochs, progress=False, precision=precision, cache=False
    )
    seconds = time.perf_counter() - t0
    return {
        "epochs": epochs,
        "seconds": seconds,
        "seconds_per_epoch": seconds / epochs,
        "ten_epochs_s": seconds / epochs * 10,
        "precision": snaps.meta["precision"],
        "n_train": snaps.meta["n_train"],
        "model_options": model_options or {},
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def digits_accuracy(epochs: int = 10, precision: str = "auto") -> dict:
    """The kit's CNNs on scikit-learn's digits: at 8x8, and at 28x28 (the MNIST CNN)."""
    d8 = labkit.load_dataset("digits")
    m8 = labkit.build_model("cnn", d8.input_shape, d8.n_classes)
    acc8 = labkit.train(m8, d8, epochs=epochs, progress=False, precision=precision)
    acc8 = acc8.history[-1]["test_acc"]

    # The same split, scaled to 28x28 and written as IDX: the MNIST code path and MNIST CNN.
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    img = (digits.images * 255 / 16).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(i).resize((28, 28), Image.BILINEAR)) for i in img])
    x_tr, x_te, y_tr, y_te = train_test_split(
        big, digits.target.astype(np.uint8), test_size=0.25, stratify=digits.target, random_state=0
    )
    root = WORK / "digits28"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, arr in (
        ("train-images-idx3-ubyte", x_tr),
        ("train-labels-idx1-ubyte", y_tr),
        ("t10k-images-idx3-ubyte", x_te),
        ("t10k-labels-idx1-ubyte", y_te),
    ):
        write_idx(raw / name, arr)
    d28 = labkit.load_dataset("mnist", data_dir=root)
    m28 = labkit.build_model("cnn", d28.input_shape, d28.n_classes)
    acc28 = labkit.train(m28, d28, epochs=epochs, progress=False, precision=precision)
    acc28 = acc28.history[-1]["test_acc"]
    return {"epochs": epochs, "digits_8x8_cnn": acc8, "digits_28x28_mnist_cnn": acc28}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--overhead-epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training.json"))
    parser.add_argument(
        "--capture-only", action="store_true", help="only the direct capture-cost measurement"
    )
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="only the side-by-side epochs (--repeats of each) and the arithmetic floor",
    )
    parser.add_argument(
        "--cifar-only", action="store_true", help="only the CIFAR-10 lab's training time"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="a git worktree of an earlier commit, to time its kit beside this one "
        "(git worktree add /tmp/before <commit>)",
    )
    args = parser.parse_args()
    if args.cifar_only:
        # after: today's default, all 10 epochs timed; before: the earlier kit, 2 epochs
        # timed (its 10 epochs would take about 8 minutes) and scaled to 10.
        after = cifar_run(10, "auto")
        print(f"CIFAR after: 10 epochs in {after['seconds']:.0f} s ({after['precision']})")
        result = {"after": after}
        if args.before:
            result["before"] = before(args.before, "cifar10", cifar_data(), 2)
            result["before"]["ten_epochs_s"] = result["before"]["seconds"] * 5
            print(f"CIFAR before: {result['before']['ten_epochs_s']:.0f} s per 10 epochs")
        out = ROOT / "benchmarks" / "results" / "cifar.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
        return

    root = WORK / f"mnist-{args.n_train}-{args.n_test}"  # one folder per size
    write_mnist_shaped(root, args.n_train, args.n_test)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor()}")
    direct = capture_cost_direct(root)
    print(
        f"evaluation pass (10000 test images): {direct['eval_with_capture_s']:.3f} s with the "
        f"2000-sample capture, {direct['eval_without_capture_s']:.3f} s without "
        f"(+{direct['extra_s'] * 1000:.0f} ms)"
    )
    if args.capture_only:
        return
    if args.speed_only:
        speed = side_by_side(root, max(args.repeats, 3))
        print(
            f"side by side, load included, median of {len(speed['kit_s'])}: seed-style "
            f"{speed['seed_style_median_s']:.1f} s, kit {speed['kit_median_s']:.1f} s -> "
            f"{speed['speedup']:.2f}x (goal >= 5x)"
        )
        precision = resolve_precision("auto", torch.device("cpu"))
        floor = arithmetic_floor(root, speed["kit_median_s"], precision)
        print(
            f"arithmetic floor of the kit's epoch ({floor['n_train']:,} training images, "
            f"{floor['train_flops_per_image'] / 1e6:.1f} MFLOP each to train, "
            f"{floor['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s {floor['matmul_dtype']} matmul): "
            f"{floor['floor_s']:.2f} s; the kit takes {floor['kit_over_floor']:.1f}x that"
        )
        result = {
            "side_by_side": speed,
            "floor": floor,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "n_train": args.n_train,
            "n_test": args.n_test,
            "command": " ".join(["python", *sys.argv]),
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
        return

    seed = seed_style_epoch(root)
    print(
        f"seed-style epoch (DataLoader, batch 64, example CNN): {seed['seconds']:.1f} s "
        f"(train {seed['train_seconds']:.1f} s)"
    )
    earlier = before(args.before, "mnist", root, 1) if args.before else None
    now = before(ROOT, "mnist", root, 1) if args.before else None
    if earlier:
        print(
            f"kit epoch in a fresh process: before ({earlier['checkout']}) "
            f"{earlier['seconds']:.1f} s, now {now['seconds']:.1f} s"
        )
    fp32 = kit_epoch(root, precision="fp32")
    print(f"kit epoch in fp32: {fp32['seconds']:.1f} s")
    kit = kit_epoch(root)
    print(
        f"kit epoch (tensor batches, kit CNN, 2 evals + capture, {kit['precision']}): "
        f"{kit['seconds']:.1f} s (one-off load {kit['load_seconds']:.1f} s)"
    )
    speedup = seed["seconds"] / kit["seconds"]
    print(
        f"  speed-up: {speedup:.2f}x (goal >= 5x); fp32: {seed['seconds'] / fp32['seconds']:.2f}x"
    )
    if earlier:
        print(f"  before: {seed['seconds'] / earlier['seconds']:.2f}x")
    compiled = compile_trial(root)
    print(f"torch.compile trial: {compiled}")

    over = capture_overhead(root, args.overhead_epochs, args.repeats)
    print(
        f"capture overhead over {over['epochs']} epochs: with {over['best']['capture']:.1f} s, "
        f"without {over['best']['no_capture']:.1f} s -> {over['overhead']:+.2%} (goal <= 3%)"
    )
    # The capture runs once per evaluation: epochs + 1 times in a run.
    ten = 11 * direct["extra_s"] / (10 * kit["seconds"])
    over["direct_10_epoch_overhead"] = ten
    print(
        f"  direct: +{direct['extra_s'] * 1000:.0f} ms per evaluation x 11 evaluations in a "
        f"10-epoch run = {ten:+.2%} of its time"
    )

    acc = {p: digits_accuracy(precision=p) for p in ("auto", "fp32")}
    for p, a in acc.items():
        print(
            f"10-epoch test accuracy on digits ({p}): 8x8 CNN {a['digits_8x8_cnn']:.2%}, "
            f"MNIST CNN at 28x28 {a['digits_28x28_mnist_cnn']:.2%}"
        )

    result = {
        "seed_style": seed,
        "kit": kit,
        "kit_fp32": fp32,
        "kit_before": earlier,
        "kit_now_fresh_process": now,
        "speedup": speedup,
        "speedup_fp32": seed["seconds"] / fp32["seconds"],
        "speedup_before": seed["seconds"] / earlier["seconds"] if earlier else None,
        "compile_trial": compiled,
        "capture": over,
        "capture_direct": direct,
        "accuracy": acc,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "n_train": args.n_train,
        "n_test": args.n_test,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
