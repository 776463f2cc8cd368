"""GIF animations: matplotlib's animation writer against the kit's blitted drawing.

    python benchmarks/bench_gif.py        # about a minute on 2 CPU cores

The same frames, in one process, alternately, three times each:

* matplotlib: ``FuncAnimation(...).save(path, writer=PillowWriter(fps))``, how the kit drew its
  GIFs before: the whole figure (axes, the class legend's layout, the title) redrawn per frame;
* the kit: ``labkit.plots.animate`` / ``tour_animation``: the still parts drawn once, each
  frame drawing its points and its title over them.

The frames are those the labs draw, on digits (450 probe points): Lab 5's Grand Tour (90
frames) and its epoch animation (10 epochs, 6 steps each, the last held 1 s: 71 frames), and
the epoch animation ``python -m labkit run`` writes (4 steps: 51 frames). The two GIFs are
compared frame by frame: same size, frame count and durations, and the share of pixels that
differ by more than a faint anti-aliasing shade. Results: benchmarks/results/gif.json.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import labkit  # noqa: E402
from labkit import align, plots  # noqa: E402


def matplotlib_gif(frames: np.ndarray, titles: list[str], snaps, path: Path, fps: int) -> None:
    """The figure the kit draws, saved the way matplotlib saves animations."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    fig, ax = plt.subplots(figsize=(5.0, 5.6), layout="constrained")
    colours = plots._colours(len(snaps.class_names))
    scat = ax.scatter(
        frames[0][:, 0], frames[0][:, 1], s=6, linewidths=0, c=[colours[c] for c in snaps.labels]
    )
    plots._class_legend(fig, snaps.class_names, colours, ncol=5, fontsize=7)
    xlim, ylim = plots._limits(frames)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_xticks([])
    ax.set_yticks([])
    title = ax.set_title(titles[0], fontsize=10)

    def update(k):
        scat.set_offsets(frames[k])
        title.set_text(titles[k])
        return scat, title

    FuncAnimation(fig, update, frames=len(frames)).save(
        str(path), writer=PillowWriter(fps=fps), dpi=plots.DPI
    )
    plt.close(fig)


def compare(a: Path, b: Path) -> dict:
    from PIL import Image

    one, two = Image.open(a), Image.open(b)
    same = one.size == two.size and one.n_frames == two.n_frames
    differing, durations = [], []
    for k in range(min(one.n_frames, two.n_frames)):
        one.seek(k)
        two.seek(k)
        durations.append(one.info["duration"] == two.info["duration"])
        x = np.asarray(one.convert("RGB"), float)
        y = np.asarray(two.convert("RGB"), float)
        differing.append(float((np.abs(x - y).sum(-1) > 30).mean()))
    return {
        "same_size_and_frames": same,
        "same_durations": all(durations),
        "pixels_differing_max": max(differing),
    }


def main() -> None:
    data = labkit.load_dataset("digits")
    model = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=0)
    snaps = labkit.train(model, data, epochs=10, seed=0, progress=False)
    traj = align.trajectory(snaps, method="pca")
    tour = labkit.tour.grand_tour(snaps.layer()[-1], n_frames=90, seed=0)
    cases = {
        "Lab 5 Grand Tour, 90 frames": (
            tour,
            [f"Grand Tour, view {k}" for k in range(len(tour))],
            15,
            lambda path: plots.tour_animation(tour, snaps, path=path),
        ),
        "Lab 5 epochs, steps 6": (
            *plots._epoch_frames(traj, 6, hold=10),
            10,
            lambda path: plots.animate(traj, snaps, path=path, steps=6),
        ),
        "labkit run epochs, steps 4": (
            *plots._epoch_frames(traj, 4, hold=10),
            10,
            lambda path: plots.animate(traj, snaps, path=path, steps=4),
        ),
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (frames, titles, fps, kit) in cases.items():
            before, after = [], []
            for _ in range(3):
                t = time.perf_counter()
                matplotlib_gif(frames, titles, snaps, Path(tmp) / "before.gif", fps)
                before.append(time.perf_counter() - t)
                t = time.perf_counter()
                kit(Path(tmp) / "after.gif")
                after.append(time.perf_counter() - t)
            row = {
                "frames": len(frames),
                "matplotlib_s": statistics.median(before),
                "kit_s": statistics.median(after),
                **compare(Path(tmp) / "before.gif", Path(tmp) / "after.gif"),
            }
            row["speed_up"] = row["matplotlib_s"] / row["kit_s"]
            results[name] = row
            print(
                f"{name}: {row['frames']} frames, matplotlib {row['matplotlib_s']:.2f} s, "
                f"kit {row['kit_s']:.2f} s, {row['speed_up']:.1f}x; same size and frames "
                f"{row['same_size_and_frames']}, same durations {row['same_durations']}, "
                f"pixels differing at most {row['pixels_differing_max']:.1%}"
            )
    out = ROOT / "benchmarks" / "results" / "gif.json"
    out.write_text(
        json.dumps(
            {
                "command": "python benchmarks/bench_gif.py",
                "machine": f"{platform.processor() or platform.machine()}, "
                f"{__import__('os').cpu_count()} cores",
                "medians_of": 3,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
