"""Write every lab notebook in notebooks/ from this one source.

    python generate_notebooks.py            # notebooks/solutions/*.ipynb and notebooks/student/*.ipynb
    python generate_notebooks.py --check    # exit 1 if a committed notebook differs from this source
    python generate_notebooks.py --repo https://github.com/you/labkit --ref fall-2026

``--repo``/``--ref`` say where Colab installs the kit from and where the "Open in Colab" badges
point. Without ``--repo``: the ``origin`` remote when it is a GitHub repository, else the
``Repository`` URL in pyproject.toml (the committed value); without ``--ref``: ``main``.

A variant of one lab (another data set, model, reducer, topics) goes to notebooks/variants/:

    python generate_notebooks.py --lab 02_wikipedia_topics --variant music \\
        --set 'TOPICS=["Jazz", "Opera", "Hip hop"]' --set EPOCHS=15

Each lab exists twice: the solution, whose exercise cells hold the answer between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's convention, with nbgrader cell
metadata, so instructors can grade with nbgrader), and the student notebook, where each such
block is replaced by ``raise NotImplementedError()``. Output is deterministic: fixed cell ids,
no timestamps, no outputs.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent
NOTEBOOKS = ROOT / "notebooks"

DEFAULT_REF = "main"

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


# ---------------------------------------------------------------------------------------
# Where the kit comes from
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KitSource:
    """The git repository and ref the notebooks install the kit from (Colab) and link to."""

    repo: str  # e.g. https://github.com/you/labkit, or file:///path/to/a/clone
    ref: str = DEFAULT_REF
    version: str = ""  # labkit's version in this checkout: the set-up cell checks it

    @property
    def pip_url(self) -> str:
        return f"git+{self.repo}@{self.ref}"

    @property
    def github(self) -> str | None:
        """``owner/name`` when the repository is on GitHub (Colab opens notebooks from there)."""
        m = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", self.repo)
        return m.group(1) if m else None


def github_https(url: str) -> str | None:
    """``https://github.com/owner/name`` for any spelling of a GitHub remote, else None."""
    m = re.fullmatch(r"(?:https://|ssh://git@|git@)github\.com[:/]([^/]+)/([^/]+?)(?:\.git)?/?",
                     url.strip())
    return f"https://github.com/{m.group(1)}/{m.group(2)}" if m else None


def committed_repo() -> str:
    """The repository URL committed in pyproject.toml (``[project.urls] Repository``)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^Repository = "([^"]+)"', text, re.M).group(1)


def origin_repo() -> str | None:
    """The ``origin`` remote of this checkout, when it is a GitHub repository."""
    try:
        url = subprocess.run(["git", "remote", "get-url", "origin"], cwd=ROOT, text=True,
                             capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return github_https(url)


def kit_version() -> str:
    text = (ROOT / "labkit" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def kit_source(repo: str | None = None, ref: str | None = None) -> KitSource:
    repo = (repo or origin_repo() or committed_repo()).rstrip("/")
    return KitSource(github_https(repo) or repo, ref or DEFAULT_REF, kit_version())


# ---------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------


@dataclass
class Cell:
    kind: str  # "markdown" | "code" | "exercise" | "parameters"
    source: str


def md(text: str) -> Cell:
    return Cell("markdown", _dedent(text))


def code(text: str) -> Cell:
    return Cell("code", _dedent(text))


def exercise(text: str) -> Cell:
    """A code cell whose answer sits between the solution markers."""
    text = _dedent(text)
    if BEGIN not in text or END not in text:
        raise ValueError(f"an exercise needs {BEGIN} ... {END}:\n{text}")
    return Cell("exercise", text)


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text).strip("\n")


@dataclass
class Lab:
    name: str  # file stem, e.g. "01_projector_mnist"
    title: str
    intro: str
    params: dict
    cells: list[Cell]
    outputs: list[str] = field(default_factory=list)  # files under OUT the lab must write


# ---------------------------------------------------------------------------------------
# What every lab shares
# ---------------------------------------------------------------------------------------


def badge(source: KitSource, path: str) -> str:
    """The "Open in Colab" badge for the notebook at ``path`` (relative to the repository)."""
    if source.github is None:
        return (f"*(No Colab badge: Colab opens notebooks from GitHub, and these were made "
                f"for {source.repo}.)*")
    url = (f"https://colab.research.google.com/github/{source.github}/blob/{source.ref}/"
           f"{path}")
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def _annotation(key: str, value) -> str:
    """The type a parameter takes (papermill's --help-notebook shows it)."""
    if key == "PROBE_SIZE":
        return "int | None"
    if isinstance(value, list):
        kinds = sorted({type(v).__name__ for v in value}) or ["str"]
        return f"list[{' | '.join(kinds)}]"
    return type(value).__name__


def parameters(params: dict) -> Cell:
    lines = ["# This lab's parameters: change them here, then run the notebook again."]
    for key, value in params.items():
        note = "  # the whole test split, at most 2000 points" \
            if key == "PROBE_SIZE" and value is None else ""
        lines.append(f"{key}: {_annotation(key, value)} = {value!r}{note}")
    return Cell("parameters", "\n".join(lines))


def install(source: KitSource) -> Cell:
    """Colab only: install the kit, and say in one sentence what to do if that fails."""
    return code(f"""
        # @title Install the kit (on Colab only; about a minute) {{ display-mode: "form" }}
        # Elsewhere, install it once from the repository's root:  pip install -r requirements.txt -e .
        import sys

        KIT = "{source.pip_url}"  # where the course keeps the kit
        KIT_VERSION = "{source.version}"

        if "google.colab" in sys.modules:
            import os
            import subprocess

            class SetupError(Exception):
                def _render_traceback_(self):  # Jupyter shows this message, no traceback
                    return [str(self)]

            # pip keeps what Colab already has (torch, torchvision, tensorboard, ...).
            pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-color",
                                  f"labkit @ {{KIT}}"], capture_output=True, text=True,
                                 env={{**os.environ, "GIT_TERMINAL_PROMPT": "0"}})
            if pip.returncode != 0:  # git's own words say best what went wrong
                said = [line.strip() for line in pip.stderr.splitlines() if line.strip()]
                why = next((line for line in said if line.startswith("fatal:")), said[-1] if said else "")
                if "could not read Username" in why:
                    why = "the repository does not exist, or is private"
                raise SetupError(f"Could not install labkit from {{KIT}} ({{why}}): students, send "
                                 f"this message to your instructor; instructors, regenerate the "
                                 f"notebooks with python generate_notebooks.py --repo URL --ref REF.")
    """)


SETUP = code("""
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from IPython.display import Image, display

    import labkit
    from labkit import align, metrics, plots, workflows

    if labkit.__version__ != KIT_VERSION:
        print(f"Warning: this notebook was written for labkit {KIT_VERSION}, but labkit "
              f"{labkit.__version__} is installed. On Colab: Runtime > Restart session, then run "
              f"all again; elsewhere: pip install -e . in the repository. If the warning stays, "
              f"tell your instructor.")

    # Data sets and runs go to one place, never beside the notebook: the repository's root
    # when you run from a checkout, /content on Colab, or LABKIT_HOME when you set it.
    DATA_DIR, OUT = labkit.home(DATA_DIR), labkit.home(OUT)
    (OUT / "figures").mkdir(parents=True, exist_ok=True)
    print(f"labkit {labkit.__version__}: data sets in {DATA_DIR}, this lab's run in {OUT}")
""")


TENSORBOARD = [
    md("""
        ## The Embedding Projector

        We write the projector logs (one tensor per epoch, with the titles and labels as
        metadata) and open TensorBoard, shown below the cell: locally from
        http://127.0.0.1:6006 (or the next free port), on Colab through Colab's own proxy.
        The projector does not load in Safari: use Chrome or Firefox, or the explorer in the
        next section.

        *Optional, on Colab:* for TensorBoard in a full browser window, the kit can open an
        ngrok tunnel (ngrok is a free service that gives TensorBoard its own
        password-protected web address). It needs your ngrok token as a Colab secret; the
        steps are printed under the cell. Never paste a token into a cell: notebooks get
        shared.
    """),
    code("""
        labkit.write_projector(snaps, f"{OUT}/tensorboard")
        tb = labkit.open_tensorboard(f"{OUT}/tensorboard")
    """),
]


def explorer(call: str = "labkit.explore(snaps)", *, preview: str = "picture",
             picture: str = "a PCA of each epoch, rotated to line up with the next; section "
                            "4 explains PCA") -> list[Cell]:
    """The in-notebook explorer: works on Colab, JupyterLab and VS Code, with no tunnel."""
    return [
        md(f"""
            ## The explorer: the same embeddings inside the notebook

            The explorer needs no TensorBoard and no tunnel. Drag the epoch slider (or press
            play) and watch every point travel from epoch 0 to the end; colour the points by
            `label`, `prediction` or `correct` (right/wrong); hover over a point for its
            title and {preview}; click one (shift-drag to lasso several) to list its nearest
            neighbours in the full embedding, not just in this 2-D picture ({picture}).
        """),
        code(call),
    ]


TRAIN_CNN = code("""
    data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED)
    model = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=SEED)
    snaps = labkit.train(model, data, epochs=EPOCHS, seed=SEED)
""")

CLEAN_UP = [
    md("""
        ## Clean up

        TensorBoard (and the tunnel, if you opened one) keeps running in the background until
        you stop it: when you are done with the projector, remove the `#` and run the cell.
    """),
    code("""
        # labkit.serve.stop_all(); labkit.stop_tunnels()
    """),
]


# ---------------------------------------------------------------------------------------
# The labs
# ---------------------------------------------------------------------------------------


def image_lab(number: str, dataset: str) -> Lab:
    """Labs 1 and 3: a CNN on images, the projector, and three projections compared."""
    names = {"mnist": ("MNIST", "handwritten digits", "about 99 %"),
             "cifar10": ("CIFAR-10", "small colour photographs of ten kinds of object",
                         "about 70-75 % in 10 epochs")}
    pretty, what, expected = names[dataset]
    name = f"{number}_projector_{dataset}"
    cells = [
        md(f"""
            ## 1. The data

            {pretty} holds {what}. The kit loads it whole into memory as tensors (the
            training loop then batches by indexing, no per-image work) and picks the **probe
            set**: a fixed, stratified sample of the test split. The probe set is what we
            embed at every epoch, so the same images can be followed through training.
        """),
        code("""
            data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED)
            data
        """),
        md("""
            ## 2. The model and its layers

            Every layer has a name. The embedding we watch is the output of the
            **penultimate** layer, the last representation before the classifier head.
        """),
        code("""
            model = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=SEED)
            print(labkit.layer_names(model))
            print("penultimate layer:", labkit.penultimate_layer(model))
        """),
        md("""
            ## 3. Train, recording the embeddings

            `labkit.train` puts a forward hook on the penultimate layer and records the probe
            set at **epoch 0, before any update**, and after every epoch. The hook is removed
            when training ends, even if it fails.
        """),
        code("""
            snaps = labkit.train(model, data, epochs=EPOCHS, seed=SEED)
            pd.DataFrame(snaps.history).set_index("epoch").round(4)
        """),
        md(f"""
            **Look for:** at epoch 0 the test accuracy is chance (about 10 %): the untrained
            network already maps images to vectors, but not usefully. Expect {expected} at
            the end.
        """),
        *TENSORBOARD,
        md("""
            In the Projector tab, pick `01_embed/epoch_00`, colour by `label`, and look at
            the PCA view; then pick the last epoch. Switch to T-SNE and UMAP.

            **Question 1.** How does the picture change from epoch 0 to the last epoch? Which
            classes separate first?
        """),
        *explorer(),
        md("""
            ## 4. PCA, t-SNE and UMAP on the same embedding

            PCA is a rotation followed by dropping the dimensions of least variance: it keeps
            the global geometry, and distances in the picture are never larger than in the
            embedding. t-SNE and UMAP keep *neighbourhoods*, and bend distances freely to do
            it. *Trustworthiness* measures how well a view keeps neighbourhoods (1 = no
            false neighbours).

            **Exercise 1.** Project the last epoch's embeddings with every method in
            `REDUCERS` (`labkit.reduce.reduce(last, method, seed=SEED)`) into a dict `views`,
            and score each with `labkit.reduce.trustworthiness(last, view)` into a dict
            `scores`.
        """),
        exercise(f"""
            last = snaps.layer()[-1]  # [probe size, embedding dim] at the last epoch
            {BEGIN}
            views = {{m: labkit.reduce.reduce(last, m, seed=SEED) for m in REDUCERS}}
            scores = {{m: labkit.reduce.trustworthiness(last, xy) for m, xy in views.items()}}
            {END}
        """),
        code("""
            plots.compare(views, snaps, scores, path=f"{OUT}/figures/reducers.png");
        """),
        md("""
            **Question 2.** Which view would you use to judge how far apart two classes are?
            Which to see which images are confused with which? Why?
        """),
        md("""
            ## 5. From epoch 0 to the end, in one frame

            Each epoch gets its own PCA; Orthogonal Procrustes rotates each into the frame of
            the one before, so points do not jump between panels.
        """),
        code("""
            traj = align.trajectory(snaps, method="pca")
            plots.epoch_grid(traj, snaps, method="pca", path=f"{OUT}/figures/epoch_grid.png");
        """),
        md("""
            **Question 3.** Find two classes that overlap at the last epoch. Look at their
            thumbnails in the projector (search by label): what do the overlapping images
            have in common?
        """),
        code("""
            labkit.write_mantis_csv(snaps, f"{OUT}/mantis.csv")
            print("Mantis CSV:", f"{OUT}/mantis.csv")
        """),
        *CLEAN_UP,
    ]
    return Lab(
        name=name,
        title=f"Lab {int(number)}: watching a CNN learn {pretty} in the Embedding Projector",
        intro=(f"A classifier turns each image into a vector, its *embedding*, one layer "
               f"before the output. We train a small CNN on {pretty}, record the embeddings "
               f"of a fixed set of test images before training and after every epoch, and "
               f"look at them: in TensorBoard's Embedding Projector, in an explorer inside "
               f"the notebook, and with PCA, t-SNE and UMAP side by side."),
        params={"DATASET": dataset, "DATA_DIR": "data", "EPOCHS": 10, "PROBE_SIZE": 2000,
                "SEED": 0, "REDUCERS": ["pca", "tsne", "umap"], "OUT": f"runs/{dataset}"},
        cells=cells,
        outputs=["mantis.csv", "tensorboard/projector_config.pbtxt",
                 "figures/reducers.png", "figures/epoch_grid.png"],
    )


def text_lab(number: str, dataset: str) -> Lab:
    """Lab 2 (the primary lab): Wikipedia topics; its BBC News variant."""
    wiki = dataset == "wikipedia"
    if wiki:
        params = {"DATASET": "wikipedia",
                  "TOPICS": ["Machine learning", "Renaissance art", "Basketball"],
                  "API_URL": "https://en.wikipedia.org/w/api.php", "DATA_DIR": "data",
                  "EPOCHS": 10, "PROBE_SIZE": None, "SEED": 0, "REDUCER": "umap",
                  "OUT": "runs/wikipedia"}
        load = ("data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, "
                "seed=SEED,\n                           topics=TOPICS, api_url=API_URL)")
        fetch = md("""
            ## 1. Fetch the articles

            For each topic the kit searches Wikipedia and downloads the plain-text intro of
            each article, politely: one request at a time, waiting when the servers ask it
            to. Every article is cached under `data/wikipedia_articles/`, so running this
            again (or on a classmate's machine with that folder) needs no network. The table
            shows how many articles each topic kept; an article two topics both find goes to
            the topic whose search ranked it higher.
        """)
    else:
        params = {"DATASET": "bbc", "CSV": "https://storage.googleapis.com/dataset-uploaded/bbc/bbc-text.csv",
                  "DATA_DIR": "data", "EPOCHS": 10, "PROBE_SIZE": None, "SEED": 0,
                  "REDUCER": "umap", "OUT": "runs/bbc"}
        load = ("data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, "
                "seed=SEED, csv=CSV)")
        fetch = md("""
            ## 1. Load the articles

            The BBC News data set: 2225 articles in five sections (business, entertainment,
            politics, sport, tech). The CSV is downloaded once into `data/`.
        """)
    cells = [
        fetch,
        code(load),
        code("""
            pd.DataFrame({"title": data.titles,
                          "topic": [data.class_names[i] for i in data.y_probe],
                          "snippet": data.snippets}).head(8)
        """),
        md("""
            ## 2. From text to vectors

            Each article becomes a TF-IDF vector: one number per word of the vocabulary,
            large when the word is frequent in this article and rare elsewhere. The
            vocabulary is learnt from the training split only, so the test articles stay
            unseen.
        """),
        code("""
            print("training matrix:", tuple(data.x_train.shape), " vocabulary:", data.info["vocabulary"])
        """),
        md("""
            ## 3. Train an MLP, recording every epoch

            The embedding is the output of the MLP's last hidden layer, recorded for the
            probe articles at epoch 0 (before any update) and after each epoch.
        """),
        code("""
            model = labkit.build_model("mlp", data.input_shape, data.n_classes, seed=SEED)
            snaps = labkit.train(model, data, epochs=EPOCHS, seed=SEED)
            pd.DataFrame(snaps.history).set_index("epoch").round(4)
        """),
        md("""
            ## 4. The Mantis CSV

            One row per article: `title`, `categoric` (its topic), the snippet, the model's
            prediction, and one column `embedding_epoch_k` per epoch, each a list of numbers.
            `coordinate1`/`coordinate2` give Mantis a ready projection of the last epoch.
        """),
        code("""
            labkit.write_mantis_csv(snaps, f"{OUT}/mantis.csv", coordinates=2)
            pd.read_csv(f"{OUT}/mantis.csv").iloc[:3, :6]
        """),
        md("""
            ## 5. Epoch 0 to the end, aligned

            Each epoch is projected (UMAP starts from the previous epoch's layout) and
            rotated into one frame, so you can follow each article.
        """),
        code("""
            traj = align.trajectory(snaps, method=REDUCER)
            plots.epoch_grid(traj, snaps, method=REDUCER, path=f"{OUT}/figures/epoch_grid.png");
        """),
        code("""
            # Hover over a point for its title; drag the slider through the epochs. Saved as
            # a web page too (figures/epochs.html), to open in a browser or hand in.
            plots.interactive(traj, snaps, path=f"{OUT}/figures/epochs.html")
        """),
        *TENSORBOARD,
        *explorer("labkit.explore(snaps, traj)  # the aligned trajectory of section 5",
                  preview="the start of the article",
                  picture="the trajectory of section 5; unlike the figure above, it finds "
                          "neighbours"),
        md("""
            **Question 1.** At which epoch do the topics separate? Are some articles still
            between two clusters at the end?

            **Exercise 1.** Make a DataFrame `mistakes` of the probe articles the model gets
            wrong at the last epoch, with their `title`, `topic`, `prediction` and `snippet`.
        """),
        exercise(f"""
            {BEGIN}
            wrong = ~snaps.correct(-1)
            mistakes = pd.DataFrame({{
                "title": np.array(snaps.titles)[wrong],
                "topic": np.array(snaps.label_names)[wrong],
                "prediction": [snaps.class_names[p] for p in snaps.predictions[-1][wrong]],
                "snippet": np.array(snaps.snippets)[wrong],
            }})
            {END}
            mistakes
        """),
        md("""
            **Question 2.** Read the snippets of the mistakes. Is the model wrong, or is the
            article really about two topics? What does that say about the overlapping points
            in the picture?
        """),
        *CLEAN_UP,
    ]
    source = "Wikipedia articles on topics you choose" if wiki else "BBC News articles"
    return Lab(
        name=f"{number}_{'wikipedia_topics' if wiki else 'bbc_news'}",
        title=(f"Lab {int(number[:2])}: how a text classifier organises "
               f"{'Wikipedia topics' if wiki else 'BBC News'}"),
        intro=(f"We turn {source} into TF-IDF vectors, train a small MLP to tell the topics "
               f"apart, and watch the embedding of each article from epoch 0 to the end: in "
               f"an aligned epoch grid, in the Embedding Projector, in an explorer inside the "
               f"notebook, and in Mantis (a CSV the kit writes for it)."),
        params=params,
        cells=cells,
        outputs=["mantis.csv", "tensorboard/projector_config.pbtxt",
                 "figures/epoch_grid.png", "figures/epochs.html"],
    )


def layers_lab() -> Lab:
    cells = [
        md("""
            ## 1. A deep MLP, every layer recorded

            We train an MLP with `DEPTH` hidden layers until it classifies every training
            image correctly, recording the embedding of **every** layer at every epoch.
        """),
        code("""
            data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED)
            model = labkit.build_model("deep-mlp", data.input_shape, data.n_classes, seed=SEED, depth=DEPTH)
            snaps = labkit.train(model, data, epochs=EPOCHS, layers="all", seed=SEED)
            snaps
        """),
        md("""
            ## 2. SVD projections, layer by layer

            The same test images at the last epoch, seen through each layer (PCA computed by
            the SVD, each layer rotated into the frame of the one before).
        """),
        code("""
            lt = align.layer_trajectory(snaps, method="pca")
            plots.layer_grid(lt, snaps, method="pca (SVD)", path=f"{OUT}/figures/layer_grid.png");
        """),
        md("""
            ## 3. Measuring the clusters

            For every layer and epoch: **NC1** (within-class spread relative to the spread of
            the class means; 0 = every image on its class mean), the **silhouette** of the
            classes, and the accuracy of a k-nearest-neighbour and a linear probe trained on
            half of the probe set.
        """),
        code("""
            table = metrics.geometry(snaps)
            plots.metric_curves(table, snaps, path=f"{OUT}/figures/metric_curves.png");
        """),
        md("""
            **Exercise 1.** From `table`, make `last`: the rows of the last epoch indexed by
            layer, with columns `nc1`, `silhouette` and `knn_acc`. Set `better_with_depth` to
            whether the silhouette grows from each layer to the next.
        """),
        exercise(f"""
            {BEGIN}
            last = table[table.epoch == table.epoch.max()].set_index("layer")[["nc1", "silhouette", "knn_acc"]]
            better_with_depth = bool((last["silhouette"].diff().dropna() > 0).all())
            {END}
            print(last.round(3))
            print("better clusters with depth:", better_with_depth)
        """),
        md("""
            **Question 1.** Is "better clusters with depth" true here? Is the kNN accuracy
            better with depth too, and by as much?

            ## 4. Does the penultimate layer collapse to k points?

            Neural collapse predicts that at the end of training the class means of the
            penultimate layer form a *simplex*: equal lengths, and every pair at the same
            angle, with cosine -1/(C-1).
        """),
        code("""
            nc = metrics.neural_collapse(snaps.layer()[-1], snaps.labels, snaps.head_weights[-1],
                                         snaps.predictions[-1])
            c = len(snaps.class_names)
            print(f"NC1 at epoch 0: {table.query('epoch == 0').nc1.iloc[-1]:.3f}, at the end: {nc['nc1']:.3f}")
            print(f"mean cosine between class means: {nc['nc2_mean_cosine']:.3f} (simplex: {-1 / (c - 1):.3f})")
            print(f"classifier vs class means (NC3, 0 = aligned): {nc['nc3']:.3f}")
            print(f"nearest-class-mean agrees with the model (NC4): {nc['nc4_agreement']:.1%}")
        """),
        code("""
            reps = [snaps.layer(name)[-1] for name in snaps.layers]
            plots.cka_heatmap(metrics.cka_matrix(reps), snaps.layers,
                              path=f"{OUT}/figures/cka_layers.png", title="linear CKA between layers");
        """),
        md("""
            **Question 2.** How close is the penultimate layer to the simplex? Which layers
            are most alike according to CKA, and does that match the pictures in section 2?
        """),
    ]
    return Lab(
        name="04_layers_neural_collapse",
        title="Lab 4: layer by layer, and neural collapse",
        intro=("Do deeper layers give better clusters? We train a deep MLP to 100 % training "
               "accuracy, record every layer, and measure: projections per layer, cluster "
               "metrics, and neural collapse of the penultimate layer."),
        params={"DATASET": "digits", "DATA_DIR": "data", "EPOCHS": 30, "DEPTH": 5,
                "PROBE_SIZE": None, "SEED": 0, "OUT": "runs/layers"},
        cells=cells,
        outputs=["figures/layer_grid.png", "figures/metric_curves.png",
                 "figures/cka_layers.png"],
    )


def tour_lab() -> Lab:
    cells = [
        TRAIN_CNN,
        md("""
            ## 1. The Grand Tour

            A 2-D picture must drop dimensions. The Grand Tour shows *many* 2-D linear views
            in a smooth sequence, rotating the data in every plane at once. Every view is a
            plain projection, so what you see is really in the data. We first reduce to
            `TOUR_DIMS` dimensions with UMAP, then tour them.
        """),
        code("""
            x = labkit.reduce.reduce(snaps.layer()[-1], "umap", n_components=TOUR_DIMS, seed=SEED)
            frames = labkit.tour.grand_tour(x, n_frames=TOUR_FRAMES, seed=SEED)
            plots.tour_animation(frames, snaps, path=f"{OUT}/figures/tour.gif")
            display(Image(filename=f"{OUT}/figures/tour.gif"))
        """),
        md("""
            **Question 1.** Some classes stay apart in every view; others only in some. What
            does that tell you about how many dimensions separate them?

            ## 2. Aligned across epochs

            UMAP per epoch, each started from the previous layout and rotated into one frame
            (Orthogonal Procrustes), played as an animation.
        """),
        code("""
            traj = align.trajectory(snaps, method="umap", seed=SEED)
            plots.animate(traj, snaps, path=f"{OUT}/figures/epochs.gif")
            display(Image(filename=f"{OUT}/figures/epochs.gif"))
        """),
        md("""
            ## 3. Two models, one frame

            A second model, an MLP that sees the pixels as a flat vector, learns from the
            same data. Its pictures come out in an arbitrary orientation; Procrustes fitted
            on the whole trajectory brings them into the CNN's frame without changing them.

            **Exercise 1.** Put the MLP's trajectory into the CNN's frame with
            `align.align_runs` (call it `mlp_in_cnn_frame`), and compute the linear CKA
            between the two models' last-epoch embeddings (`cka`).
        """),
        code("""
            mlp = labkit.build_model("mlp", data.input_shape, data.n_classes, seed=SEED)
            snaps_mlp = labkit.train(mlp, data, epochs=EPOCHS, seed=SEED)
            traj_cnn = align.trajectory(snaps, method="pca")
            traj_mlp = align.trajectory(snaps_mlp, method="pca")
        """),
        exercise(f"""
            {BEGIN}
            mlp_in_cnn_frame = align.align_runs(traj_cnn, traj_mlp)
            cka = metrics.linear_cka(snaps.layer()[-1], snaps_mlp.layer()[-1])
            {END}
            plots.compare({{"CNN": traj_cnn[-1], "MLP, in the CNN's frame": mlp_in_cnn_frame[-1]}},
                          snaps, path=f"{{OUT}}/figures/two_models.png")
            print(f"linear CKA between the two models' embeddings: {{cka:.3f}}")
        """),
        md("""
            **Question 2.** Do the two models put the same classes next to each other? Does
            the CKA value agree with what you see?
        """),
    ]
    return Lab(
        name="05_grand_tour_alignment",
        title="Lab 5: the Grand Tour, and alignment across epochs and models",
        intro=("Projections of one embedding differ from run to run and epoch to epoch by "
               "rotations and flips. We take them out with Orthogonal Procrustes, tour a "
               "15-dimensional view smoothly, and compare two different models in one frame."),
        params={"DATASET": "digits", "DATA_DIR": "data", "EPOCHS": 10, "PROBE_SIZE": None,
                "TOUR_DIMS": 15,
                "TOUR_FRAMES": 90, "SEED": 0, "OUT": "runs/tour"},
        cells=cells,
        outputs=["figures/tour.gif", "figures/epochs.gif", "figures/two_models.png"],
    )


def workflows_lab() -> Lab:
    cells = [
        TRAIN_CNN,
        md("""
            ## 1. Where the model disagrees with the labels

            Coloured by label, with a black ring where the model's prediction differs.
        """),
        code("""
            xy = align.trajectory(snaps, method="pca")[-1]
            plots.agreement(xy, snaps, path=f"{OUT}/figures/agreement.png")
            workflows.disagreement(snaps).set_index("epoch").T
        """),
        md("""
            ## 2. Similarity search

            The nearest neighbours of a point by cosine similarity of the embeddings: the
            images the model considers most alike.
        """),
        code("""
            table = workflows.similar(snaps, 0, k=8)
            plots.neighbours(snaps, table, path=f"{OUT}/figures/neighbours.png")
            table
        """),
        md("""
            The same search in the explorer: it opens on point 0's neighbours (the table
            above) and coloured by `correct` (red = wrong). Click a red point, or shift-drag
            to lasso several, and the neighbours of your selection in the full embedding are
            listed under the plot.
        """),
        code("""
            labkit.explore(snaps, colour="correct").select([0])
        """),
        md("""
            ## 3. Label-error candidates

            A point is a candidate when the model *and* most of its neighbours agree on a
            class other than its label. Candidates are not proof: look before relabelling.
        """),
        code("""
            candidates = workflows.label_error_candidates(snaps)
            candidates.head(10)
        """),
        md("""
            ## 4. Clusters of failures

            The misclassified points grouped by where they sit in the embedding: each group
            is a failure pattern, named by its most common confusion.
        """),
        code("""
            workflows.error_clusters(snaps)
        """),
        md("""
            **Exercise 1.** Take the model's most confident *wrong* prediction (`query`, its
            index in the probe set) and the class name it predicted (`predicted`), find its 8
            nearest neighbours (`nbrs`, with `workflows.similar`), and compute the share of
            them whose label is `predicted` (`share_predicted`). The next lines use all four.
        """),
        exercise(f"""
            {BEGIN}
            wrong = np.flatnonzero(~snaps.correct(-1))
            confidence = snaps.probabilities[-1][wrong, snaps.predictions[-1][wrong]]
            query = int(wrong[confidence.argmax()])
            nbrs = workflows.similar(snaps, query, k=8)
            predicted = snaps.class_names[snaps.predictions[-1][query]]
            share_predicted = float((nbrs["label"] == predicted).mean())
            {END}
            plots.neighbours(snaps, nbrs, path=f"{{OUT}}/figures/confident_mistake.png")
            print(f"{{snaps.titles[query]}}: label {{snaps.label_names[query]}}, "
                  f"predicted {{predicted}}; {{share_predicted:.0%}} of its neighbours carry the prediction")
        """),
        md("""
            **Question 1.** Is the most confident mistake a mistake of the model or of the
            label? What would you check before deciding?
        """),
    ]
    return Lab(
        name="06_working_with_embeddings",
        title="Lab 6: working with embeddings",
        intro=("What practitioners do with embeddings once they have them: find where the "
               "model and the labels disagree, search for similar items, flag labels that may "
               "be wrong, and group failures into patterns."),
        params={"DATASET": "digits", "DATA_DIR": "data", "EPOCHS": 10, "PROBE_SIZE": None,
                "SEED": 0, "OUT": "runs/workflows"},
        cells=cells,
        outputs=["figures/agreement.png", "figures/neighbours.png",
                 "figures/confident_mistake.png"],
    )


def labs() -> list[Lab]:
    return [image_lab("01", "mnist"), text_lab("02", "wikipedia"), text_lab("02b", "bbc"),
            image_lab("03", "cifar10"), layers_lab(), tour_lab(), workflows_lab()]


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


def _blank(source: str) -> str:
    """The student version of an exercise: each solution block becomes a NotImplementedError."""
    pattern = re.compile(rf"^([ \t]*){re.escape(BEGIN)}\n.*?^[ \t]*{re.escape(END)}[ \t]*$",
                         re.S | re.M)
    return pattern.sub(lambda m: f"{m.group(1)}raise NotImplementedError()", source)


HOW_TO_RUN = (
    "Run the cells from the top (on Colab, *Runtime → Run all* runs everything up to the "
    "first exercise, which waits for your code; the first cell installs the kit). Where "
    "files go: on Colab, `/content/data` and `/content/runs` (the Files panel on the left); "
    "in a checkout of the kit, `data/` and `runs/` at its root; set `LABKIT_HOME` to use "
    "another folder. The set-up cell prints both.")


def build(lab: Lab, student: bool, source: KitSource, path: str) -> nbformat.NotebookNode:
    """One notebook; ``path`` is where it lives in the repository (for its Colab badge)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        # In full, so `jupyter nbconvert --to script` writes a .py file.
        "language_info": {"name": "python", "file_extension": ".py",
                          "mimetype": "text/x-python", "pygments_lexer": "ipython3",
                          "codemirror_mode": {"name": "ipython", "version": 3},
                          "nbconvert_exporter": "python"},
        "colab": {"provenance": []},
        "labkit": {"lab": lab.name, "version": "student" if student else "solution",
                   "outputs": lab.outputs},
    }
    title = f"# {lab.title}\n\n{badge(source, path)}\n\n{lab.intro}\n\n{HOW_TO_RUN}"
    cells = [md(title), parameters(lab.params), install(source), SETUP, *lab.cells]
    n_ex = 0
    for k, cell in enumerate(cells):
        cid = f"{lab.name.replace('_', '-')}-{k:02d}"
        if cell.kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(cell.source, id=cid))
            continue
        source = cell.source
        out = nbformat.v4.new_code_cell(source, id=cid)
        if cell.kind == "parameters":
            out.metadata["tags"] = ["parameters"]
        if cell.kind == "exercise":
            n_ex += 1
            out.metadata["nbgrader"] = {"grade": False, "grade_id": f"exercise-{n_ex}",
                                        "locked": False, "schema_version": 3,
                                        "solution": True, "task": False}
            out.metadata["tags"] = ["exercise"]
            if student:
                out.source = _blank(source)
        nb.cells.append(out)
    nbformat.validate(nb)
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def targets(selected: list[Lab], out: Path, source: KitSource,
            notebooks: Path = NOTEBOOKS) -> dict[Path, str]:
    """Every file to write: ``out`` is under ``notebooks``, the repository's notebooks/."""
    files = {}
    for lab in selected:
        for version in ("solutions", "student"):
            path = out / version / f"{lab.name}.ipynb"
            where = "notebooks/" + path.relative_to(notebooks).as_posix()
            files[path] = render(build(lab, version == "student", source, where))
    return files


def _parse_set(items: list[str]) -> dict:
    values = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            values[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[key.strip()] = text  # a bare word: a string
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare notebooks/ with this source; exit 1 on any difference")
    parser.add_argument("--lab", help="only this lab (a file stem, e.g. 04_layers_neural_collapse)")
    parser.add_argument("--variant", help="write a variant into notebooks/variants/NAME/")
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                        help="override a parameter of the lab, e.g. DATASET=\"bbc\" or EPOCHS=20")
    parser.add_argument("--repo", help="the git repository Colab installs the kit from and the "
                        "badges open, e.g. https://github.com/you/labkit (default: the origin "
                        "remote if on GitHub, else the Repository URL in pyproject.toml)")
    parser.add_argument("--ref", help=f"the branch, tag or commit (default: {DEFAULT_REF})")
    parser.add_argument("--out", type=Path, default=NOTEBOOKS,
                        help="the notebooks/ folder to write (default: this repository's)")
    args = parser.parse_args(argv)
    source = kit_source(args.repo, args.ref)
    if source.github is None:
        print(f"note: {source.repo} is not a GitHub repository, so the notebooks get no "
              f"Colab badge (Colab opens notebooks from GitHub)", file=sys.stderr)

    all_labs = labs()
    selected = [lab for lab in all_labs if args.lab in (None, lab.name)]
    if not selected:
        parser.error(f"no lab {args.lab!r}; labs: {', '.join(lab.name for lab in all_labs)}")
    out = args.out
    if args.set or args.variant:
        if not args.lab or not args.variant:
            parser.error("a variant needs --lab and --variant (and --set PARAM=VALUE ...)")
        overrides = _parse_set(args.set)
        unknown = set(overrides) - set(selected[0].params)
        if unknown:
            parser.error(f"{args.lab} has no parameter {', '.join(sorted(unknown))}; it has "
                         f"{', '.join(selected[0].params)}")
        selected[0].params = {**selected[0].params, **overrides}
        out = args.out / "variants" / args.variant

    files = targets(selected, out, source, args.out)
    if args.check:
        stale = [p for p, text in files.items()
                 if not p.exists() or p.read_text(encoding="utf-8") != text]
        known = {p.resolve() for p in files}
        extra = [p for p in sorted((out / "solutions").glob("*.ipynb")) +
                 sorted((out / "student").glob("*.ipynb")) if p.resolve() not in known]
        for p in stale:
            print(f"out of date: {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
        for p in extra:
            print(f"not generated by this source: {p}")
        if stale or extra:
            print("run: python generate_notebooks.py", file=sys.stderr)
            return 1
        print(f"{len(files)} notebooks up to date")
        return 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} notebooks under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
