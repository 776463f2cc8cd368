"""The course: where its notebooks live, its labs, and the sentences every lab says the same
way (what each data set is, how to run a lab, what to hand in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# The checkout this package sits in: the generator works on a checkout's notebooks/ folder
# (an installed copy of the kit has no lab sources).
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "source"


@dataclass(frozen=True)
class Lab:
    name: str  # the notebook's file stem, e.g. "03_projector_cifar10"
    source: str  # the stem of its source in notebooks/source/
    params: dict = field(default_factory=dict)  # what differs from the source's parameters

    @property
    def number(self) -> str:
        """The lab's number in titles: "3" for 03_projector_cifar10, "2b" for 02b_bbc_news."""
        return self.name.split("_")[0].lstrip("0")


LABS = [
    Lab("01_projector_mnist", "01_projector_mnist"),
    Lab("02_wikipedia_topics", "02_wikipedia_topics"),
    Lab("02b_bbc_news", "02_wikipedia_topics", {"DATASET": "bbc", "OUT": "runs/bbc"}),
    Lab(
        "03_projector_cifar10", "01_projector_mnist", {"DATASET": "cifar10", "OUT": "runs/cifar10"}
    ),
    Lab("04_layers_neural_collapse", "04_layers_neural_collapse"),
    Lab("05_grand_tour_alignment", "05_grand_tour_alignment"),
    Lab("06_working_with_embeddings", "06_working_with_embeddings"),
]


# What the prose says about each data set: ``{{name}}`` in a Markdown cell becomes the
# DATASET parameter's ``name``, so a variant on another data set reads right everywhere.
FACTS = {
    "digits": {
        "name": "scikit-learn's digits",
        "what": "1,797 handwritten digits of 8×8 pixels",
        "expected": "about 98-99 %",
        "chance": "about 10 %",
        "items": "images",
        "train_time": "training takes a few seconds",
    },
    "mnist": {
        "name": "MNIST",
        "what": "70,000 handwritten digits of 28×28 pixels",
        "expected": "about 99 %",
        "chance": "about 10 %",
        "items": "images",
        "train_time": "10 epochs take one to two minutes on a laptop CPU",
    },
    "fashion-mnist": {
        "name": "Fashion-MNIST",
        "what": "70,000 greyscale photographs of ten kinds of clothing, 28×28 pixels",
        "expected": "about 90 %",
        "chance": "about 10 %",
        "items": "images",
        "train_time": "10 epochs take one to two minutes on a laptop CPU",
    },
    "cifar10": {
        "name": "CIFAR-10",
        "what": "60,000 colour photographs of ten kinds of object, 32×32 pixels",
        "expected": "about 80 %",
        "chance": "about 10 %",
        "items": "images",
        "train_time": "10 epochs take 3 to 5 minutes on a laptop CPU (about 3 where the CPU "
        "computes bf16, see below)",
    },
    "wikipedia": {
        "name": "Wikipedia topics",
        "what": "Wikipedia articles on topics you choose",
        "expected": "above 90 %",
        "chance": "one over the number of topics",
        "items": "articles",
        "train_time": "training takes a few seconds",
    },
    "bbc": {
        "name": "BBC News",
        "what": "2,225 BBC News articles in five sections (business, entertainment, "
        "politics, sport, tech)",
        "expected": "about 95 %",
        "chance": "about 20 %",
        "items": "articles",
        "train_time": "training takes a few seconds",
    },
    "blobs": {
        "name": "Gaussian blobs",
        "what": "synthetic Gaussian clusters",
        "expected": "close to 100 %",
        "chance": "one over the number of blobs",
        "items": "points",
        "train_time": "training takes a few seconds",
    },
}

HOW_TO_RUN = (
    "Run the cells from the top (on Colab, *Runtime → Run all*; the first cell installs the "
    "kit). *Run all* stops with a `NotImplementedError` at the first exercise you have not "
    "done yet: that is expected. Write your code in that cell in place of "
    "`raise NotImplementedError()`, run it, then run the test cell after it, whose message "
    "tells you what to fix; once it passes, run the rest from there up to the next "
    "exercise (on Colab, with the test cell selected, *Runtime → Run after*; in JupyterLab, "
    "select the cell after it and choose *Run → Run Selected Cell and All Below*). "
    "Parts and questions marked *(optional)* are beyond the core path: to leave out an "
    "optional exercise, run on in the same way from the first cell after its part. "
    "Where files go: on Colab, `/content/data` and `/content/runs` (the Files panel on the "
    "left); in a checkout of the kit, `data/` and `runs/` at its root; set `LABKIT_HOME` to "
    "use another folder. The set-up cell prints both. "
    "The kit keeps each finished `labkit.train` run in a cache, the folder `.cache` in "
    "`runs`: run the notebook again with the same settings and the run is loaded in a "
    "second or two instead of trained again (the cell says so and where from), with the "
    "same result; t-SNE and UMAP pictures of the same embedding are kept there too. Any "
    "change (a parameter, your network, the data) trains again; `cache=False` in "
    "`labkit.train` always trains, and deleting `runs/.cache` clears it. Your own training "
    "loop is never cached."
)

# What students hand in, said in these words wherever it is said: every notebook's title
# cell and Lab 2's last section ({{hand_in}}), the worksheet, the README and the guide
# (tests/test_worksheets.py checks each).
HAND_IN = (
    "Hand in the notebook of each lab you do: its `.ipynb` file, under its own name, run from "
    "top to bottom with your code in the exercise cells and your answers in the answer cells "
    "(on Colab: *File → Download → Download .ipynb*). The notebook is what is graded. The "
    "worksheet is the printed form of the same questions, with the same numbers, to read and "
    "draft on; it is not handed in, and neither is `mantis.csv`."
)
