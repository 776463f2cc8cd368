"""An annotator with a budget: the true labels of the pool items you ask for, and no more.

Labelling costs money, so a team that mines its pool decides *which* items to pay for. The
``Annotator`` holds the budget (a number of labels) and counts every distinct pool item it
labels; asking again for an item it already labelled costs nothing. A request that would go
over the budget raises :class:`BudgetExceeded` and labels none of its items, so a strategy can
spend its budget in rounds (ask, look, ask again) and never overspends by accident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..checks import is_whole
from .raw import DataError

if TYPE_CHECKING:
    from . import LabData

__all__ = ["Annotator", "BudgetExceeded"]


class BudgetExceeded(DataError):
    """A request for more labels than the annotator's budget has left; none was labelled."""


class Annotator:
    """The labels of ``data``'s pool items, at most ``budget`` distinct ones.

    ``reveal(indices)`` labels them, ``revealed`` and ``labels`` are what was labelled so far
    (in the order first asked for), ``spent`` and ``left`` the budget, and ``labelled_data()``
    the data with those items moved into its training split.
    """

    def __init__(self, data: LabData, *, budget: int):
        if data.x_pool is None:
            raise DataError(
                "this data has no unlabelled pool; load it with load_dataset(..., pool=0.7)"
            )
        if not is_whole(budget) or budget < 0:
            raise DataError(f"budget is a whole number of labels, at least 0, got {budget!r}")
        self._data = data
        self.budget = int(budget)
        self._revealed: list[int] = []

    @property
    def spent(self) -> int:
        """How many distinct pool items have been labelled."""
        return len(self._revealed)

    @property
    def left(self) -> int:
        return self.budget - self.spent

    @property
    def revealed(self) -> np.ndarray:
        """The pool positions labelled so far, in the order they were first asked for."""
        return np.array(self._revealed, dtype=np.int64)

    @property
    def labels(self) -> np.ndarray:
        """The labels of ``revealed``, in its order."""
        return self._data.pool_truth(self.revealed)

    def reveal(self, indices) -> np.ndarray:
        """The true labels of the pool items at ``indices``; each new item costs one label."""
        idx = self._data._pool_index(indices)  # integers, in the pool, each once
        known = set(self._revealed)
        new = [int(i) for i in idx if int(i) not in known]
        if len(new) > self.left:
            raise BudgetExceeded(
                f"the budget is {self.budget} labels and {self.spent} are spent: "
                f"{len(new)} new items asked for, {self.left} left; ask for fewer, "
                f"or choose which ones matter most"
            )
        self._revealed += new
        return self._data.pool_truth(idx)

    def labelled_data(self) -> LabData:
        """The data with every labelled pool item added to its training split."""
        return self._data.add_from_pool(self.revealed)

    def __repr__(self) -> str:
        return f"Annotator(budget {self.budget}: {self.spent} spent, {self.left} left)"
