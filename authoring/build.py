"""The generator's steps, for every lab (or one, or a variant): build each notebook pair, then
write the files or check the committed ones against them. ``generate_notebooks.py`` at the
repository's root is this module's :func:`main`."""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

from .course import LABS, NOTEBOOKS, ROOT, Lab
from .kit import DEFAULT_REF, KitSource, kit_source
from .release import release, render
from .solution import build_solution
from .source import SourceError


def notebooks(
    lab: Lab,
    source: KitSource,
    out: Path,
    notebooks_dir: Path = NOTEBOOKS,
    *,
    variant: str | None = None,
    overrides: dict | None = None,
) -> dict[Path, str]:
    """The solution and student notebooks of one lab, by the path each is written to."""
    paths = {v: out / v / f"{lab.name}.ipynb" for v in ("solutions", "student")}
    where = {v: "notebooks/" + p.relative_to(notebooks_dir).as_posix() for v, p in paths.items()}
    solution = build_solution(lab, source, where["solutions"], variant=variant, overrides=overrides)
    # The student's badge opens the student's file: build it again with that path.
    student = release(
        build_solution(lab, source, where["student"], variant=variant, overrides=overrides)
    )
    return {paths["solutions"]: render(solution), paths["student"]: render(student)}


# Committed variants: notebooks/variants/<name>/variant.json says how each was made.


def remember_variant(out: Path, name: str, lab: str, overrides: dict) -> None:
    path = out / "variants" / name / "variant.json"
    path.write_text(
        json.dumps({"lab": lab, "set": overrides}, indent=1, sort_keys=True) + "\n",
        encoding="utf-8",
    )


def committed_variants(source: KitSource, out: Path) -> dict[Path, str]:
    files = {}
    for spec in sorted((out / "variants").glob("*/variant.json")):
        made = json.loads(spec.read_text(encoding="utf-8"))
        lab = next((x for x in LABS if x.name == made["lab"]), None)
        if lab is None:
            raise SourceError(f"{spec}: no lab {made['lab']!r}")
        files.update(
            notebooks(
                lab, source, spec.parent, out, variant=spec.parent.name, overrides=made["set"]
            )
        )
    return files


def parse_set(items: list[str]) -> dict:
    """``--set PARAM=VALUE`` items as parameter values (a bare word is a string)."""
    values = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            values[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[key.strip()] = text
    return values


def check(files: dict[Path, str]) -> int:
    """0 when the committed notebooks are ``files``; else 1, each difference printed."""
    stale = [p for p, text in files.items() if not p.exists() or p.read_text("utf-8") != text]
    known = {p.resolve() for p in files}
    folders = {p.parent for p in files}
    extra = [
        p for f in sorted(folders) for p in sorted(f.glob("*.ipynb")) if p.resolve() not in known
    ]
    for p in stale:
        print(f"out of date: {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")
    for p in extra:
        print(f"not generated from a source: {p}")
    if stale or extra:
        print("run: python generate_notebooks.py", file=sys.stderr)
        return 1
    print(f"{len(files)} notebooks up to date")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="generate_notebooks.py",
        description="Build every lab notebook from its text source in notebooks/source/.",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="compare notebooks/ with the sources; exit 1 on any difference",
    )
    p.add_argument("--lab", help="only this lab (a file stem, e.g. 04_layers_neural_collapse)")
    p.add_argument("--variant", help="write a variant into notebooks/variants/NAME/")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="override a parameter of the lab, e.g. DATASET=bbc or EPOCHS=20",
    )
    p.add_argument(
        "--repo",
        help="the git repository Colab installs the kit from and the "
        "badges open, e.g. https://github.com/you/labkit (default: the origin "
        "remote if on GitHub, else the Repository URL in pyproject.toml)",
    )
    p.add_argument("--ref", help=f"the branch, tag or commit (default: {DEFAULT_REF})")
    p.add_argument(
        "--out",
        type=Path,
        default=NOTEBOOKS,
        help="the notebooks/ folder to write (default: this repository's)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    source = kit_source(args.repo, args.ref)
    if source.github is None:
        print(
            f"note: {source.repo} is not a GitHub repository, so the notebooks get no "
            f"Colab badge (Colab opens notebooks from GitHub)",
            file=sys.stderr,
        )
    selected = [lab for lab in LABS if args.lab in (None, lab.name)]
    if not selected:
        cli.error(f"no lab {args.lab!r}; labs: {', '.join(lab.name for lab in LABS)}")
    if (args.set or args.variant) and not (args.lab and args.variant):
        cli.error("a variant needs --lab and --variant (and --set PARAM=VALUE ...)")
    if args.variant and not re.fullmatch(r"[A-Za-z0-9][\w-]*", args.variant):
        cli.error(f"--variant {args.variant!r}: use letters, digits, - and _")

    try:
        if args.variant:
            folder = args.out / "variants" / args.variant
            files = notebooks(
                selected[0],
                source,
                folder,
                args.out,
                variant=args.variant,
                overrides=parse_set(args.set),
            )
        else:
            files = {}
            for lab in selected:
                files.update(notebooks(lab, source, args.out, args.out))
            if args.lab is None:  # the committed variants are checked and rebuilt too
                files.update(committed_variants(source, args.out))
    except SourceError as e:
        cli.error(f"{args.lab or 'a lab'}: {e}")

    if args.check:
        return check(files)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if args.variant:
        remember_variant(args.out, args.variant, selected[0].name, parse_set(args.set))
    print(f"wrote {len(files)} notebooks under {args.out}")
    return 0
