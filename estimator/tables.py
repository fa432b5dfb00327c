"""Text tables for the command line: tabulate's "simple" format, tabulate itself imported only
when a table is outside what ``simple_table`` reproduces.

Importing tabulate (0.10: wcwidth, importlib.metadata) costs about 55 ms on a 2-CPU machine, a
sixth of a one-shot ``python -m estimator estimate`` (issue 26). The tables the CLI prints are
plain: printable ASCII cells, words or decimal numbers, in the "simple" format. ``simple_table``
lays those out as tabulate 0.10 does (its column types, number formats, decimal alignment and
padding; tests/test_tables.py compares the two, cell for cell); anything else (other formats or
options, empty or ragged cells, non-ASCII text, strings tabulate might read as numbers in other
ways: "1e5", "1,000", "-3", "nan") goes to tabulate.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

_ASCII = re.compile(r"[ -~]+")               # printable ASCII, nothing tabulate measures otherwise
_NUMBERISH = re.compile(r"[0-9eE.,+\-_ ]+")  # the characters int(), float() and tabulate's readers take
_INT = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"[0-9]+\.[0-9]+")
_SIGNED_INT = re.compile(r"[+-]?[0-9]+")
_NOT_TEXT = ("inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan", "+nan", "-nan")
_BOOLS = ("True", "False")
_INT_MAX = 2 ** 53   # ints a float holds exactly (a float column formats float(value))
TEXT, INT, FLOAT = "str", "int", "float"   # tabulate's column types, as far as simple_table knows them


def tabulate(*args: Any, **kwargs: Any) -> str:
    """tabulate.tabulate(*args, **kwargs): simple_table's layout where it reproduces it, else tabulate's."""
    if len(args) == 1 and set(kwargs) <= {"headers", "tablefmt", "disable_numparse"} \
            and kwargs.get("tablefmt", "simple") == "simple" and isinstance(kwargs.get("disable_numparse", False), bool):
        text = simple_table(args[0], kwargs.get("headers", ()), kwargs.get("disable_numparse", False))
        if text is not None:
            return text
    from tabulate import tabulate as table
    return table(*args, **kwargs)


def _cell_type(value: Any, numparse: bool) -> str | None:
    """TEXT, INT or FLOAT as tabulate types the cell, None when simple_table does not know."""
    if type(value) is int:
        return (INT if numparse else TEXT) if -_INT_MAX <= value <= _INT_MAX else None
    if type(value) is not str or not _ASCII.fullmatch(value) or value != value.strip() or value in _BOOLS:
        return None
    if not numparse:
        return TEXT
    if _NUMBERISH.fullmatch(value):   # a number only when short: int() and float() refuse long ones
        if len(value) > 100:
            return None
        return INT if _INT.fullmatch(value) else FLOAT if _FLOAT.fullmatch(value) else None
    return None if value.lower() in _NOT_TEXT else TEXT


def _afterpoint(text: str) -> int:
    """tabulate's _afterpoint of a number it formatted: digits after the point (or the exponent's
    e), -1 for an integer."""
    if _SIGNED_INT.fullmatch(text):
        return -1
    pos = text.rfind(".")
    pos = text.lower().rfind("e") if pos < 0 else pos
    return len(text) - pos - 1 if pos >= 0 else -1


def simple_table(rows: Sequence[Sequence[Any]], headers: Sequence[Any] = (), disable_numparse: bool = False) -> str | None:
    """tabulate(rows, headers, tablefmt="simple", disable_numparse=...) for rows of equal length
    whose cells are printable ASCII strings (words, or digits with at most one decimal point) or
    ints; None for any other table (tabulate lays it out)."""
    if not isinstance(rows, (list, tuple)) or not rows or not isinstance(headers, (list, tuple)):
        return None
    rows = [list(r) if isinstance(r, (list, tuple)) else None for r in rows]
    width = len(rows[0]) if rows[0] is not None else 0
    if not width or any(r is None or len(r) != width for r in rows):
        return None
    if headers and (len(headers) != width or any(type(h) is not str or not _ASCII.fullmatch(h) for h in headers)):
        return None
    numparse = not disable_numparse
    cols = []
    for c in range(width):
        kinds = set()
        for r in rows:
            kind = _cell_type(r[c], numparse)
            if kind is None:
                return None
            kinds.add(kind)
        kind = TEXT if TEXT in kinds else FLOAT if FLOAT in kinds else INT
        minwidth = len(headers[c]) + 2 if headers else 0
        if kind == TEXT:
            cells = [f"{r[c]}".strip() for r in rows]
            w = max(minwidth, max(map(len, cells)))
            cells = [s.ljust(w) for s in cells]
        else:
            cells = [format(float(r[c]), "g") if kind == FLOAT else format(r[c], "") for r in rows]
            points = [_afterpoint(s) for s in cells]
            most = max(points)
            cells = [s + (most - p) * " " for s, p in zip(cells, points)]
            w = max(minwidth, max(map(len, cells)))
            cells = [s.rjust(w) for s in cells]
        cols.append((kind, w, cells))
    rule = "  ".join("-" * w for _, w, _ in cols).rstrip()
    lines = []
    if headers:
        lines.append("  ".join(h.ljust(w) if kind == TEXT else h.rjust(w)
                               for h, (kind, w, _) in zip(headers, cols)).rstrip())
        lines.append(rule)
    else:
        lines.append(rule)
    lines += ["  ".join(row).rstrip() for row in zip(*(cells for _, _, cells in cols))]
    if not headers:
        lines.append(rule)
    return "\n".join(lines)
