"""Make the worksheet's figures with the kit, each from its lab's default run, offline or not.

    python worksheets/make_figures.py                 # the labs' own data sets (from --data-dir)
    python worksheets/make_figures.py --offline       # stand-ins where MNIST or Wikipedia is out
                                                      # of reach
    python worksheets/make_figures.py --text-csv data/bbc-text.csv   # the text figure from a
                                                                     # real corpus

Every figure is drawn as its lab draws it, from a run on that lab's parameters as the
parameters cell of its source (``notebooks/source/NN_*.py``) sets them: they are read from
there each time, so when a lab's defaults change, the next run of this script draws the
new run. ``FIGURES`` says which lab and which drawing each figure is. A parameter that a
figure does not know how to use (say a lab gains one) goes to ``labkit.load_dataset`` under
its lower-case name; if the kit refuses it there, this script stops and names it.

Two data sets cannot always be had: MNIST (Lab 1) and Wikipedia (Lab 2) are downloaded.
``--offline`` draws those figures from stand-ins instead (scikit-learn's digits; generated
news in three sections), everything else about the run unchanged, and the caption says so.

``figures.json`` beside the figures records, for each, the lab, its parameters, the data set
actually drawn, the precision the run trained in, and the numbers the caption quotes; the
worksheet's captions are written from it (``worksheet.py``), and the tests check it against
the labs' current defaults. After a lab's defaults change: run this script, then
``python worksheets/worksheet.py``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import authoring  # noqa: E402
import labkit  # noqa: E402
from labkit import align, metrics, plots  # noqa: E402

MANIFEST = "figures.json"
# figure: (the lab source it shows, the model that lab builds when it has no MODEL parameter)
FIGURES = {
    "methods.png": ("01_projector_mnist", "cnn"),
    "epoch_grid_text.png": ("02_wikipedia_topics", "mlp"),
    "metric_curves.png": ("04_layers_neural_collapse", "deep-mlp"),
    "agreement.png": ("06_working_with_embeddings", "cnn"),
}
# How a lab's parameters reach the kit; any other goes to load_dataset, lower-cased.
DATA_OPTIONS = {
    "PROBE_SIZE",
    "SEED",
    "CLASSES",
    "LABEL_NOISE",
    "PROBE_SPLIT",
    "TOPICS",
    "PER_TOPIC",
    "API_URL",
    "CSV",
}
NOT_FOR_THE_RUN = {"DATASET", "DATA_DIR", "OUT", "MODEL", "DEPTH", "EPOCHS", "LR", "PRECISION"}
# Parameters of other parts of a lab than the run a figure draws (Lab 1's hand-written loop and
# its BatchNorm comparison, Lab 4's probe target, Lab 5's baseline for CKA, Lab 6's mining,
# its repeats over seeds, its long run and cleaning, its groups inside a class and its
# threads), and so of no figure here.
OTHER_PARTS = {
    "HAND_EPOCHS",
    "HAND_TRAIN",
    "ABLATION_EPOCHS",
    "MINE_K",
    "PROBE_TARGET",
    "SEEDS",
    "DRAWS",
    "LONG_EPOCHS",
    "CLEAN_RULE",
    "SUB_CLASS",
    "SUB_K",
    "THREADS",
}
DRAWING = {"METHODS", "METHOD", "TOUR_DIMS", "TOUR_FRAMES"}  # how a lab draws, not trains
# What --offline draws in place of a data set that must be downloaded.
STANDINS = {"mnist": "digits", "wikipedia": "generated-news"}

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


def lab_defaults(stem: str) -> dict:
    """The parameters a lab's source sets (its first parameters cell)."""
    return authoring.source_params(authoring.read_source(stem))


def lab_run(
    stem: str, model_name: str, data_dir: Path, *, offline: bool, text_csv: Path | None, tmp: Path
) -> tuple[labkit.Snapshots, dict]:
    """Train the lab's default run; the snapshots, and what the manifest records of it."""
    params = lab_defaults(stem)
    dataset = params["DATASET"]
    drawn = dataset
    options = {k.lower(): v for k, v in params.items() if k in DATA_OPTIONS}
    options.update(
        {
            k.lower(): v
            for k, v in params.items()
            if k not in DATA_OPTIONS | NOT_FOR_THE_RUN | DRAWING | OTHER_PARTS
        }
    )
    if dataset == "wikipedia" and (text_csv or offline):
        # A corpus in a CSV stands in: the bbc loader reads any category,text CSV.
        drawn = "csv" if text_csv else "generated-news"
        source = text_csv or write_generated_news(tmp / "news.csv")
        for key in ("topics", "per_topic", "api_url"):
            options.pop(key, None)
        loaded = ("bbc", {"csv": str(source)})
    elif offline and dataset in STANDINS:
        drawn = STANDINS[dataset]
        loaded = (drawn, {})
    else:
        loaded = (dataset, {})
    name, extra = loaded
    try:
        data = labkit.load_dataset(name, data_dir=data_dir, **options, **extra)
    except (TypeError, labkit.DataError) as err:
        raise SystemExit(
            f"{stem}: the kit does not take a parameter of this lab ({err}); say in "
            f"worksheets/make_figures.py how its run uses it"
        ) from None
    model_options = {"depth": params["DEPTH"]} if "DEPTH" in params else {}
    model = labkit.build_model(
        params.get("MODEL", model_name),
        data.input_shape,
        data.n_classes,
        seed=params.get("SEED", 0),
        **model_options,
    )
    snaps = labkit.train(
        model,
        data,
        epochs=params["EPOCHS"],
        lr=params.get("LR", 1e-3),
        seed=params.get("SEED", 0),
        # Lab 4 records from the input to the logits, as its training cell does.
        layers=["input", *labkit.embedding_layers(model), labkit.head_layer(model)]
        if stem.startswith("04_")
        else "penultimate",
        precision=params.get("PRECISION", "auto"),
        progress=False,
    )
    record = {
        "lab": stem,
        "params": params,
        "model": params.get("MODEL", model_name),
        "dataset": dataset,
        "drawn_from": drawn,
        "precision": snaps.meta.get("precision"),
        "n_probe": int(snaps.n_probe),
        "test_acc": round(float(snaps.history[-1]["test_acc"]), 4),
    }
    return snaps, record


def draw(figure: str, snaps, record: dict, out: Path, chosen: list[str] | None) -> dict:
    """Draw ``figure`` as its lab does; the numbers its caption quotes."""
    params = record["params"]
    path = out / figure
    if figure == "methods.png":  # Lab 1's exercise and the cell after it
        methods = chosen or params["METHODS"]
        last = snaps.layer()[-1]
        views = {m: labkit.reduce.project(last, m, seed=params["SEED"]) for m in methods}
        scores = {m: labkit.reduce.trustworthiness(last, v) for m, v in views.items()}
        plots.compare(views, snaps, scores=scores, path=path)
        return {"methods": methods, "trustworthiness": {m: round(s, 3) for m, s in scores.items()}}
    if figure == "epoch_grid_text.png":  # Lab 2's epoch-grid cell
        method = (chosen or [params["METHOD"]])[0]
        plots.epoch_grid(align.trajectory(snaps, method=method), snaps, method=method, path=path)
        return {"method": method, "classes": list(snaps.class_names)}
    if figure == "metric_curves.png":  # Lab 4's geometry cell
        plots.metric_curves(metrics.geometry(snaps), snaps, path=path)
        perfect = [e for e in range(snaps.epochs + 1) if snaps.correct(e).mean() == 1.0]
        return {
            "classes": list(snaps.class_names),
            "probe_perfect_from": perfect[0] if perfect else None,
        }
    if figure == "agreement.png":  # Lab 6's disagreement cell
        plots.agreement(align.trajectory(snaps, method="pca")[-1], snaps, path=path)
        wrong = snaps.predictions[-1] != snaps.labels
        changed = 0 if snaps.flipped is None else int((wrong & snaps.flipped).sum())
        return {"rings": int(wrong.sum()), "rings_on_changed_labels": changed}
    raise ValueError(f"no drawing for {figure}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "figures")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the labs' data sets are (default: data/ in labkit.home())",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="draw Lab 1 from scikit-learn's digits and Lab 2 from generated news "
        "instead of downloading MNIST and Wikipedia articles (the captions say so)",
    )
    parser.add_argument(
        "--text-csv",
        type=Path,
        default=None,
        help="draw the text figure from this CSV (category and text columns) instead of Wikipedia",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="projections in place of the labs' own (to be quick; the manifest says so)",
    )
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), help="only these figures")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    data_dir = args.data_dir or labkit.home("data")
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for figure, (stem, model_name) in FIGURES.items():
            if args.only and figure not in args.only:
                continue
            snaps, record = lab_run(
                stem,
                model_name,
                data_dir,
                offline=args.offline,
                text_csv=args.text_csv,
                tmp=Path(tmp),
            )
            record["shows"] = draw(figure, snaps, record, out, args.methods)
            record["methods_overridden"] = args.methods is not None
            manifest[figure] = record
            print(out / figure, flush=True)
    manifest = {k: manifest[k] for k in FIGURES if k in manifest}
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
