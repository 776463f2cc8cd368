"""The same measurement over several seeds: one run is a sample, not the answer.

``labkit.repeat(measure, seeds=range(5))`` calls ``measure(seed)`` once per seed and keeps what
each call returns (a number, or a dict of named numbers) as one row of a table. Its summary is
the mean, the standard deviation (over seeds, with N - 1) and the range of every column, and
``paired(a, b)`` summarises the per-seed difference of two columns measured under the same seed:
the spread of a difference is smaller than either column's when both move with the seed, which
is why a comparison runs both arms with the same seeds.

The run cache makes a repeat cheap to run twice: a ``labkit.train`` that was run before, with the
same data, model, seed and settings, is loaded rather than trained again; inside a repeat those
loads are counted and reported in one line at the end rather than one line each.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .checks import check_seed
from .errors import ConfigError

__all__ = ["Repeats", "repeat"]


@dataclass(frozen=True)
class Repeats:
    """What ``repeat`` measured: ``runs`` has one row per seed (index ``seed``) and one column
    per measured number."""

    runs: pd.DataFrame

    @property
    def summary(self) -> pd.DataFrame:
        """Per column: the mean, the standard deviation over seeds (N - 1; NaN for one seed),
        the smallest and largest value, and the number of seeds."""
        return pd.DataFrame(
            {
                "mean": self.runs.mean(),
                "std": self.runs.std(ddof=1),
                "min": self.runs.min(),
                "max": self.runs.max(),
                "seeds": self.runs.count(),
            }
        )

    def paired(self, a: str, b: str) -> pd.Series:
        """The per-seed difference ``a - b`` of two columns: its mean, standard deviation,
        range, and in how many seeds ``a`` came out above ``b`` (``seeds above``)."""
        for name in (a, b):
            if name not in self.runs.columns:
                raise ConfigError(f"no column {name!r}; the columns are {list(self.runs.columns)}")
        diff = self.runs[a] - self.runs[b]
        return pd.Series(
            {
                "mean": diff.mean(),
                "std": diff.std(ddof=1),
                "min": diff.min(),
                "max": diff.max(),
                "seeds above": int((diff > 0).sum()),
                "seeds": int(diff.count()),
            },
            name=f"{a} - {b}",
        )

    def _repr_html_(self) -> str:
        return self.summary._repr_html_()

    def __repr__(self) -> str:
        lines = [f"Repeats over {len(self.runs)} seeds {list(self.runs.index)}:"]
        for name, row in self.summary.iterrows():
            lines.append(f"  {name}: {row['mean']:.4g} ± {row['std']:.2g}")
        return "\n".join(lines)


def _row(seed: int, value) -> dict[str, float]:
    """What one call returned, as named numbers; one sentence if it is something else."""
    if isinstance(value, pd.Series):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        value = {"value": value}
    row = {}
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, numbers.Real):
            raise ConfigError(
                f"the measurement for seed {seed} returned {name!r}: {number!r}, not a number; "
                f"return a number, or a dict of names to numbers"
            )
        if not math.isfinite(number):
            raise ConfigError(
                f"the measurement for seed {seed} returned {name!r}: {number!r}, not finite; "
                f"a diverged run or an empty average, look at that seed alone"
            )
        row[str(name)] = float(number)
    if not row:
        raise ConfigError(f"the measurement for seed {seed} returned nothing to keep")
    return row


def repeat(
    measure: Callable[[int], object],
    *,
    seeds: Iterable[int],
    progress: bool = True,
) -> Repeats:
    """``measure(seed)`` for every seed, one row each: the spread of a result over seeds.

    ``measure`` returns a number or a dict of named numbers (every seed the same names).
    A progress bar counts the seeds unless ``progress=False``.
    """
    seeds = list(seeds)
    for seed in seeds:
        check_seed(seed, ConfigError)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("repeat needs at least one seed, e.g. seeds=range(5)")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"the seeds {seeds} repeat one: each seed is one run, give it once")
    from tqdm.auto import tqdm

    from .training import runcache

    rows = []
    with runcache.tallied() as loaded:  # one line for the cached runs, not one per run
        for seed in tqdm(seeds, desc="seeds", unit="seed", disable=not progress, leave=False):
            row = _row(seed, measure(seed))
            if rows and row.keys() != rows[0].keys():
                raise ConfigError(
                    f"seed {seed} measured {sorted(row)}, seed {seeds[0]} {sorted(rows[0])}: "
                    f"return the same names for every seed"
                )
            rows.append(row)
    if loaded:
        print(
            f"{len(loaded)} of the trainings were loaded from the run cache "
            f"({Path(loaded[0]).parent}): trained before with the same data, model, seed and "
            f"settings; cache=False in labkit.train to train them again"
        )
    return Repeats(pd.DataFrame(rows, index=pd.Index(seeds, name="seed")))
