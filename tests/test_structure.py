"""The package's shape: no import cycles, data-set modules imported only when used, one
version, no private names imported across modules."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import labkit

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "labkit"
DATASET_MODULES = {
    "labkit.data.images",
    "labkit.data.synthetic",
    "labkit.data.wikipedia",
    "labkit.data.bbc",
    "labkit.data.features",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _top_level_imports(name: str, path: Path, modules: dict[str, Path]):
    """(imported module, imported names) for the imports that run when ``name`` is imported:
    module level only, not inside functions or ``if TYPE_CHECKING:``."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    body = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        body.append(node)
    for node in body:
        if isinstance(node, ast.ImportFrom) and node.level:
            target = ".".join(
                base[: len(base) - node.level + 1] + (node.module.split(".") if node.module else [])
            )
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub, []) if sub in modules else (target, [alias.name])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labkit"):
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("labkit"):
                    yield alias.name, []


def test_no_import_cycles():
    modules = _modules()
    graph = {
        m: {t for t, _ in _top_level_imports(m, p, modules) if t in modules and t != m}
        for m, p in modules.items()
    }
    # Depth-first search for a back edge; report the cycle it closes.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t) :] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert len(graph) > 20 and graph["labkit"]  # the scan saw the package


def test_no_private_name_is_imported_from_another_module():
    private = []
    for m, path in _modules().items():  # every import, at module level or in a function
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("labkit")
            ):
                private += [
                    f"{m} imports {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and a.name != "__version__"
                ]
    assert private == []


def test_import_labkit_reads_no_data_set_module_until_one_is_loaded():
    code = (
        "import sys, labkit; before = set(sys.modules); "
        "labkit.load_dataset('digits'); "
        "print(sorted(m for m in before if m.startswith(('labkit.data.', 'torchvision')))); "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith('labkit.')))"
    )
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    at_import, on_load = out.stdout.splitlines()
    # The Raw type and the annotator (numpy only): no loader, no torchvision.
    assert eval(at_import) == ["labkit.data.annotator", "labkit.data.raw"]
    assert eval(on_load) == ["labkit.data.images"]  # digits: its loader's module, nothing more
    timed = [line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line]
    assert "labkit" in timed and not DATASET_MODULES & set(timed[: timed.index("labkit") + 1])


def test_one_version():
    import importlib.metadata
    import re

    # pyproject.toml names no version of its own: it reads labkit/_version.py
    text = (ROOT / "pyproject.toml").read_text()
    project = text.split("[project]")[1].split("\n[")[0]
    assert not re.search(r"^version\s*=", project, re.M)
    assert 'dynamic = ["version"]' in project
    assert 'version = { attr = "labkit._version.__version__" }' in text
    assert importlib.metadata.version("labkit") == labkit.__version__


PUBLIC_MODULES = [
    "labkit",
    "labkit.analysis.align",
    "labkit.analysis.metrics",
    "labkit.plots",
    "labkit.analysis.reduce",
    "labkit.analysis.tour",
    "labkit.analysis.workflows",
    "labkit.hooks",
    "labkit.training.loop",
    "labkit.store",
    "labkit.models",
    "labkit.data",
    "labkit.export",
    "labkit.view",
    "labkit.experiment",
]


def _public_functions():
    import importlib
    import inspect

    seen = {}
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if inspect.isfunction(obj) and obj.__module__.startswith("labkit"):
                seen[f"{obj.__module__}.{obj.__name__}"] = obj
    return seen


def test_boolean_flags_are_keyword_only():
    import inspect

    functions = _public_functions()
    assert len(functions) > 40
    positional = [
        f"{name}({p.name}=...)"
        for name, fn in functions.items()
        for p in inspect.signature(fn).parameters.values()
        if isinstance(p.default, bool) and p.kind is not p.KEYWORD_ONLY
    ]
    assert positional == []


def test_every_public_function_has_type_hints():
    import inspect

    missing = []
    for name, fn in _public_functions().items():
        sig = inspect.signature(fn)
        missing += [
            f"{name}({p.name})"
            for p in sig.parameters.values()
            if p.annotation is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if sig.return_annotation is sig.empty:
            missing.append(f"{name} -> ?")
    assert missing == []


def test_the_requirement_files_say_what_pyproject_says():
    """pyproject.toml is the source; requirements.txt (what a student installs) and
    requirements-test.txt (what the suite needs) are the same lists, for pip -r."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def listed(name: str) -> set[str]:
        lines = (ROOT / name).read_text().splitlines()
        return {line.strip() for line in lines if line.strip() and not line.startswith(("#", "-r"))}

    assert listed("requirements.txt") == set(project["dependencies"])
    assert listed("requirements-test.txt") == set(project["optional-dependencies"]["test"])


def test_every_package_the_kit_imports_is_declared():
    """A package the kit imports by name is one of its dependencies (or the instructor's
    extra, for the course builder), not something another package happens to bring."""
    import importlib.metadata

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def name(requirement: str) -> str:
        return re.sub(r"[-_.]+", "-", re.split(r"[<>=\[ ;]", requirement)[0]).lower()

    declared = {name(d) for d in project["dependencies"]}
    declared |= {name(d) for d in project["optional-dependencies"]["instructor"]}
    imported = set()
    for path in (ROOT / "labkit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                imported.add(node.module.split(".")[0])
    imported -= set(sys.stdlib_module_names) | {"labkit"}
    imported.discard("google")  # google.colab is Colab's own; google.protobuf is checked below
    distributions = importlib.metadata.packages_distributions()
    missing = {
        module: distributions.get(module)
        for module in imported
        if not any(name(d) in declared for d in distributions.get(module, []))
    }
    assert missing == {}
    assert "protobuf" in declared  # google.protobuf: the projector's config


def _every_import(name: str, path: Path) -> set[str]:
    """Every labkit module ``name`` imports, wherever the import sits (in a function, too)."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            target = base[: len(base) - node.level + 1] + (node.module or "").split(".")
            found.add(".".join(p for p in target if p))
            found.update(f"{'.'.join(p for p in target if p)}.{a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labkit"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("labkit"))
    return found


def test_training_and_analysis_are_folders_and_analysis_never_imports_training():
    modules = _modules()
    training = {m for m in modules if m.startswith("labkit.training")}
    analysis = {m for m in modules if m.startswith("labkit.analysis")}
    assert {m.rsplit(".", 1)[-1] for m in training} == {
        "training",
        "loop",
        "settings",
        "device",
        "batches",
        "record",
        "runcache",
    }
    assert {m.rsplit(".", 1)[-1] for m in analysis} == {
        "analysis",
        "reduce",
        "neighbours",
        "align",
        "tour",
        "metrics",
        "workflows",
    }
    for m in [*training, *analysis]:
        assert modules[m].is_file() and ast.get_docstring(ast.parse(modules[m].read_text()))
    crossing = {
        m: sorted(t for t in _every_import(m, modules[m]) if t.startswith("labkit.training"))
        for m in analysis
    }
    assert {m: t for m, t in crossing.items() if t} == {}
    # ... and the scan sees imports: analysis uses the snapshots and the disk store
    assert "labkit.store" in _every_import(
        "labkit.analysis.reduce", modules["labkit.analysis.reduce"]
    )


def test_the_readme_layout_names_every_module_where_it_is():
    """Each module of the package is named in the README's layout, under its folder."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Repository layout", 1)[1].split("\n## ", 1)[0]
    entries = re.split(r"\n  - ", layout.split("- `tests/`", 1)[0])
    named = {}
    for entry in entries:
        folder = re.match(r"`(\w+)/`", entry)
        for word in re.findall(r"`(\w+)`", entry):
            named.setdefault(word, set()).add(folder.group(1) if folder else "")
    for m, path in _modules().items():
        parts = m.split(".")[1:]
        if not parts or parts[-1] in ("__main__",):
            continue
        if path.name == "__init__.py" and len(parts) == 1:
            assert f"`{parts[0]}/`" in layout, m
            continue
        folder, stem = ("" if len(parts) == 1 else parts[0]), parts[-1]
        if stem == parts[0] and len(parts) == 2:  # a folder's __init__ named by its folder
            continue
        assert folder in named.get(stem, set()), f"README's layout does not name {m}"
    assert "\n- `authoring/`" in layout  # beside the package, not in it


def test_the_course_builder_is_not_in_the_package_students_install(tmp_path):
    """A wheel of the checkout (what ``pip install`` of the repository builds) holds the
    training and analysis folders and no course builder; the kit never imports it."""
    import zipfile

    from tests.colab import copy_checkout

    checkout = copy_checkout(tmp_path / "checkout")  # a build writes build/ in its source
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(checkout),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("labkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "labkit/training/loop.py" in names and "labkit/analysis/reduce.py" in names
    assert "labkit/store.py" in names
    assert not [n for n in names if "authoring" in n or n.startswith("tests/")]
    for m, path in _modules().items():
        assert not {t for t in _every_import(m, path) if "authoring" in t}, m
        assert "jupytext" not in path.read_text(encoding="utf-8"), m


def test_generate_notebooks_without_the_instructor_extra_names_it(tmp_path):
    """Run where jupytext cannot be imported, the script says which extra to install."""
    blocker = tmp_path / "jupytext.py"
    blocker.write_text("raise ImportError('not installed')\n")
    code = (
        "import importlib.util, runpy, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'jupytext' else real(n, *a)\n"
        f"sys.argv = ['generate_notebooks.py', '--check']\n"
        f"runpy.run_path({str(ROOT / 'generate_notebooks.py')!r}, run_name='__main__')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'generate_notebooks.py needs jupytext: pip install -e ".[instructor]" in this checkout'
    )


# The data a function reads are positional; every knob is a keyword. These take more than
# two data arguments, or a positional knob students pass positionally everywhere.
MORE_POSITIONAL = {
    "labkit.analysis.metrics.neural_collapse": 4,  # features, labels, head weights, predictions
    "labkit.analysis.reduce.project": 2,  # project(x, "umap")
}


def test_knobs_are_keyword_only_and_plots_take_their_arguments_in_one_order():
    import importlib
    import inspect

    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    checked = 0
    for name in ("align", "workflows", "metrics", "reduce", "tour"):
        module = importlib.import_module(f"labkit.analysis.{name}")
        for attr in module.__all__:
            fn = getattr(module, attr)
            if not inspect.isfunction(fn):
                continue
            params = [p for p in inspect.signature(fn).parameters.values() if p.kind in positional]
            with_default = [p.name for p in params if p.default is not p.empty]
            allowed = MORE_POSITIONAL.get(f"{module.__name__}.{attr}")
            if allowed is None:
                assert not with_default, f"{module.__name__}.{attr}: {with_default} keyword-only"
            else:
                assert len(params) <= allowed, f"{module.__name__}.{attr}"
            checked += 1
    from labkit import plots

    for attr in plots.__all__:
        fn = getattr(plots, attr)
        if not inspect.isfunction(fn):
            continue
        params = [p.name for p in inspect.signature(fn).parameters.values() if p.kind in positional]
        # What is drawn first, then the snapshots it belongs to; nothing else positional.
        assert len(params) <= 2 and "path" not in params, (attr, params)
        if "snaps" in params and len(params) == 2:  # alone, the snapshots are what is drawn
            assert params.index("snaps") == 1, (attr, params)
        checked += 1
    assert checked > 30


def test_the_design_document_names_only_what_exists():
    """docs/design.md is kept true by the change that makes it untrue: each file, module
    attribute and environment variable it names is there."""
    import importlib

    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    names = set(re.findall(r"`([^`\s]+)`", text))
    made_when_run = {"runs/", "data/"}  # the kit makes these in home(); a checkout has none
    files = {n for n in names if n.endswith((".py", ".md", "/")) and "(" not in n} - made_when_run
    for name in files:
        path = name.rstrip("/")
        assert any((base / path).exists() for base in (ROOT, PACKAGE, PACKAGE / "view")), name
    extensions = ("json", "npz", "npy", "csv", "gif", "html", "png", "md", "py")
    dotted = {
        n
        for n in names
        if re.fullmatch(r"[a-z_]+(\.[A-Za-z_]+)+", n) and n.rsplit(".", 1)[1] not in extensions
    }
    assert len(dotted) > 8
    for name in dotted:
        found = False
        for prefix in ("labkit.", "labkit.analysis.", "labkit.training.", "labkit.view.", ""):
            parts = (prefix + name).split(".")
            for cut in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                except ImportError:
                    continue
                try:
                    for attr in parts[cut:]:
                        obj = getattr(obj, attr)
                except AttributeError:
                    break
                found = True
                break
            if found:
                break
        assert found, f"docs/design.md names {name}, which is not there"
    source = "".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    for var in set(re.findall(r"\bLABKIT_[A-Z_]+\b", text)):
        assert var in source, var
    for code in ("return 2", "return 130", "return 128 + stop.signum"):
        assert code in (PACKAGE / "cli.py").read_text(encoding="utf-8")
