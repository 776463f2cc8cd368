"""Make the worksheet's figures with the kit, offline.

    python worksheets/make_figures.py [--out worksheets/figures]
    python worksheets/make_figures.py --text-csv data/bbc-text.csv   # the text figure from BBC News

The same calls as the labs: for the text section, the text lab's run (TF-IDF, the MLP,
the UMAP epoch grid); on scikit-learn's digits, a CNN run (three projections, agreement)
and the deep MLP with every layer recorded (metric curves). Real articles cannot be
fetched offline, so the text figure is made by default from generated news articles in
three sections, two of which share part of their vocabulary; ``--text-csv`` draws it from a
real corpus (a CSV with ``category`` and ``text`` columns, such as the BBC News CSV that
Lab 2b downloads).
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import labkit  # noqa: E402
from labkit import align, metrics, plots  # noqa: E402

FIGURES = ("epoch_grid_text.png", "reducers.png", "metric_curves.png", "agreement.png")

# Generated news: each section has words of its own; "science" and "technology" share some,
# so they are harder to tell apart, as related topics are. Most words are common to all.
SECTION_WORDS = {
    "science": "research study scientists experiment data species climate telescope energy "
    "physics laboratory discovery theory".split(),
    "technology": "software data computer users internet device energy research network "
    "digital chip online laboratory".split(),
    "sport": "match team season goal coach league players championship win score final "
    "tournament referee".split(),
}
COMMON_WORDS = (
    "the of and in a is was to for with as by on that from its it are were an "
    "this has which also first new year said people after time more other "
    "report week last".split()
)


def write_generated_news(path: Path, per_section: int = 150, seed: int = 0) -> Path:
    """A CSV (``category,text``) of short generated articles; 5 % of their words are the
    section's own."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["category", "text"])
        for section, words in SECTION_WORDS.items():
            for _ in range(per_section):
                text = " ".join(
                    rng.choice(words) if rng.random() < 0.05 else rng.choice(COMMON_WORDS)
                    for _ in range(rng.randint(30, 70))
                )
                writer.writerow([section, text])
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "figures")
    parser.add_argument("--reducers", nargs="+", default=["pca", "tsne", "umap"])
    parser.add_argument(
        "--text-csv",
        type=Path,
        default=None,
        help="articles for the text figure: a CSV with category and text "
        "columns (default: generated news)",
    )
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    # The text lab's run, as Lab 2 makes it: TF-IDF, the MLP, 10 epochs, the epoch grid.
    with tempfile.TemporaryDirectory() as tmp:
        articles = args.text_csv or write_generated_news(Path(tmp) / "news.csv")
        text = labkit.load_dataset("bbc", csv=articles, data_dir=tmp)
    mlp = labkit.build_model("mlp", text.input_shape, text.n_classes, seed=0)
    text_snaps = labkit.train(mlp, text, epochs=10, seed=0, progress=False)
    method = "umap" if "umap" in args.reducers else args.reducers[0]
    plots.epoch_grid(
        align.trajectory(text_snaps, method=method),
        text_snaps,
        method=method,
        path=out / "epoch_grid_text.png",
    )

    data = labkit.load_dataset("digits")
    cnn = labkit.build_model("cnn", data.input_shape, data.n_classes)
    snaps = labkit.train(cnn, data, epochs=10, progress=False)
    traj = align.trajectory(snaps, method="pca")
    last = snaps.layer()[-1]
    views = {m: labkit.reduce.project(last, m) for m in args.reducers}
    scores = {m: labkit.reduce.trustworthiness(last, v) for m, v in views.items()}
    plots.compare(views, snaps, scores, path=out / "reducers.png")
    plots.agreement(traj[-1], snaps, path=out / "agreement.png")

    deep = labkit.build_model("deep-mlp", data.input_shape, data.n_classes)
    deep_snaps = labkit.train(deep, data, epochs=30, layers="all", progress=False)
    plots.metric_curves(metrics.geometry(deep_snaps), deep_snaps, path=out / "metric_curves.png")
    for name in FIGURES:
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
