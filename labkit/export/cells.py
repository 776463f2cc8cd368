"""Text cells that a spreadsheet opens as text, not as a formula (CSV and TSV injection).

A spreadsheet reads a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and
some first drop a leading tab or carriage return: a probe title such as
``=HYPERLINK("http://...")`` in an exported file would be live when the file is opened.
OWASP's guidance on CSV injection is to start such a cell with a single quote, which
spreadsheets take as "text" and do not show. Only those cells get it; a plain number
(``-1.5``, ``+3``) is data, not a formula, and stays as it is.

:func:`quote_formula` and :func:`unquote_formula` undo each other exactly: a cell that
already starts with quotes before such a character gets one more, so a reader removes the
quote only where the writer added one (``'=x`` is written ``''=x`` and read back ``'=x``).
"""

from __future__ import annotations

import re

__all__ = ["quote_formula", "unquote_formula"]

_FORMULA = re.compile(r"'*[=+\-@\t\r]")  # leading quotes a reader removes, then the trigger
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _needs_quote(text: str) -> bool:
    return _FORMULA.match(text) is not None and _NUMBER.fullmatch(text) is None


def quote_formula(text: str) -> str:
    """``text`` as a cell a spreadsheet shows as text: a quote before a formula's start."""
    return "'" + text if _needs_quote(text) else text


def unquote_formula(cell: str) -> str:
    """The text :func:`quote_formula` wrote as ``cell``."""
    return cell[1:] if cell.startswith("'") and _needs_quote(cell[1:]) else cell
