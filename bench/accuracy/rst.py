"""RST building blocks of the accuracy reports: percentages, grid tables, section titles."""
from __future__ import annotations

from typing import Any

from .. import metrics
from ..grid import grid_lines
from ..report import rst_escape

HEADER_PADDING = 2  # a column is at least its header plus two (the layout tabulate's grid had)


def __getattr__(name: str) -> dict[str, str]:
    """LABELS: metric key -> short label, of the gated metrics (bench/metrics.py), read afresh."""
    if name == "LABELS":
        return {m.key: m.label for m in metrics.gated()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def label(key: str) -> str:
    """A metric's short label: 'Runtime'."""
    return metrics.get(key).label


def pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    text = f"{value * 100:{'+' if signed else ''}.1f}%"
    return text.replace("-0.0%", "+0.0%")


class Raw(str):
    """A table cell that already is RST markup (not escaped)."""


def grid(header: list[str], body: list[list[Any]]) -> list[str]:
    """A docutils-clean grid table: cells escaped unless Raw, strings kept as written."""
    cells = [[(c if isinstance(c, Raw) else rst_escape(c), 1, "l") for c in row] for row in body]
    return grid_lines([[(rst_escape(h), 1, "l") for h in header]], cells, header_padding=HEADER_PADDING) + [""]


def section(title: str, char: str = "-") -> list[str]:
    return [title, char * len(title), ""]


def summary_table(lines: list[dict[str, Any]]) -> list[str]:
    """stats.summarize lines as a table: group, rows, mean and max |error| per metric."""
    gated = metrics.keys(metrics.gated())
    header = ["Group", "Rows"] + [f"{label(m)} {k}" for m in gated for k in ("mean", "max")]
    return grid(header, [[l["group"], l["rows"]] + [pct(l[k][m]) for m in gated for k in ("mean", "max")]
                         for l in lines])


def document(lines: list[str]) -> str:
    """The lines as one file's text, ending in exactly one newline."""
    return "\n".join(lines).rstrip("\n") + "\n"
