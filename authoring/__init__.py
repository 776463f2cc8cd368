"""How the lab notebooks are built from their text sources (the instructor's side of the kit;
``python generate_notebooks.py`` at the repository's root runs it).

This package sits beside ``labkit/`` in the repository and is not installed with
``pip install labkit``: students' environments never import it. It needs the ``instructor``
extra (jupytext, nbgrader) and a checkout (it reads ``notebooks/source/`` and writes
``notebooks/``).

Each lab is one jupytext "percent" file, ``notebooks/source/NN_name.py``: Markdown cells are
comments, code is code, and a cell's header line carries its stable id and its role::

    # %% [markdown] id="projector"          prose (``{{name}}`` and the like: see FACTS)
    # %% id="parameters" tags=["parameters"]  the lab's typed parameters
    # %% id="hook" exercise                 code; the answer between ### BEGIN/END SOLUTION
    # %% id="hook-check" test points=2      a locked, graded test (### BEGIN/END HIDDEN TESTS)
    # %% [markdown] id="q-views" question    a question, numbered "Question <lab>.<k>" here
    # %% [markdown] id="a-views" answer points=2   its model answer, graded by hand
    # %% id="fetch" only="wikipedia"        a cell for some data sets only
    # %% [markdown] id="a-views-cifar10" answer points=2 only="cifar10"   ... and
    # %% [markdown] id="a-views" answer points=2 only="!cifar10"   for all but CIFAR-10

A question may be followed by several answer cells, one per data set (``only=``): each
notebook shows the one for its data set, the worksheet's solutions show them all.

**Core and optional.** Everything is on a lab's core path unless its header says
``optional``, which goes on one of two kinds of cell::

    # %% [markdown] id="your-turn" optional        a section's heading cell (## or ###): the
                                                    section, up to the next heading of its level
    # %% [markdown] id="q-high-lr" question optional   one question, and its answer cells

Students see "*(optional)*" after the section's heading and after the number of each optional
question; every cell off the core path carries the tag ``optional`` (nbgrader keeps tags),
and the instructor's guide lists each lab's points and hours for the core path and for
everything (``python worksheets/worksheet.py``). To make one exercise optional, give it a
``###`` heading cell of its own and mark that. A core cell must not need an optional
exercise's result: a student who skips it runs on from the next part.

The solution notebook is the nbgrader *source* notebook; the student notebook is made from it
by nbgrader's own preprocessors, in the order ``nbgrader generate_assignment`` runs them, so
it is exactly what nbgrader releases. A few notebooks are a source with other parameters
(``LABS``): Lab 3 is Lab 1 on CIFAR-10, Lab 2b is Lab 2 on BBC News. Variants of any lab:

    python generate_notebooks.py --lab 01_projector_mnist --variant fashion \\
        --set DATASET=fashion-mnist --set EPOCHS=5

The steps, one module each: :mod:`~authoring.source` reads a lab source,
:mod:`~authoring.solution` builds its solution (parameters, prose, nbgrader's metadata),
:mod:`~authoring.release` releases the student notebook, :mod:`~authoring.build`
writes or checks every notebook and variant; :mod:`~authoring.course` holds the labs
and their shared sentences, :mod:`~authoring.kit` where the kit is installed from, and
:mod:`~authoring.questions` the questions the worksheet prints.

Output is deterministic: the ids written in the sources, no timestamps, no outputs.
"""

from .build import check, committed_variants, main, notebooks
from .course import FACTS, HAND_IN, HOW_TO_RUN, LABS, NOTEBOOKS, ROOT, SOURCES, Lab
from .kit import KitSource, github_https, kit_source
from .questions import QuestionText, questions
from .release import release, render
from .solution import build_solution
from .source import (
    OPTIONAL_MARK,
    SourceError,
    optional_cells,
    read_source,
    set_params,
    source_params,
)

__all__ = [
    "FACTS",
    "HAND_IN",
    "HOW_TO_RUN",
    "LABS",
    "NOTEBOOKS",
    "OPTIONAL_MARK",
    "ROOT",
    "SOURCES",
    "KitSource",
    "Lab",
    "QuestionText",
    "SourceError",
    "build_solution",
    "check",
    "committed_variants",
    "github_https",
    "kit_source",
    "main",
    "notebooks",
    "optional_cells",
    "questions",
    "read_source",
    "release",
    "render",
    "set_params",
    "source_params",
]
