"""The simulated Colab runtime (tests/colab.py) holds what the environment running the tests
holds, whichever kind it is: a virtual environment, a conda environment, the system
interpreter. Here the running environment is a plain virtual environment the test makes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .colab import ROOT

MAKE = "import pathlib, sys, tests.colab; tests.colab.make_venv(pathlib.Path(sys.argv[1]))"
PROBE = (
    "import importlib.util, json, only_in_outer, shadowed\n"
    "print(json.dumps({'only_in_outer': only_in_outer.WHERE, 'shadowed': shadowed.WHERE,\n"
    "    'torch': importlib.util.find_spec('torch') is not None}))"
)


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


@pytest.mark.slow
def test_made_from_a_virtual_environment_the_runtime_sees_its_packages_not_the_base_ones(
    tmp_path,
):
    outer = tmp_path / "outer"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(outer)], check=True)
    (_site_packages(outer) / "only_in_outer.py").write_text("WHERE = 'outer'\n")
    (_site_packages(outer) / "shadowed.py").write_text("WHERE = 'outer'\n")
    runtime = tmp_path / "runtime"
    # make_venv run by the outer environment's interpreter, as the suite run inside it would.
    subprocess.run(
        [str(outer / "bin" / "python"), "-c", MAKE, str(runtime)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    # What the runtime installs itself comes before what it was given, as on Colab.
    (_site_packages(runtime) / "shadowed.py").write_text("WHERE = 'runtime'\n")
    seen = subprocess.run(
        [str(runtime / "bin" / "python"), "-c", PROBE],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    # torch is in the base interpreter, not in the plain outer environment: not seen either.
    assert json.loads(seen.stdout) == {
        "only_in_outer": "outer",
        "shadowed": "runtime",
        "torch": False,
    }
