"""RST building blocks of the accuracy reports: percentages, grid tables, section titles."""
from __future__ import annotations

from typing import Any

from tabulate import tabulate

from ..compare import METRICS
from ..report import rst_escape

LABELS = {"runtime_ms": "Runtime", "memory_gb": "Memory",
          "energy_j_per_token": "Energy", "throughput_tokens_per_s": "Throughput"}


def pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    text = f"{value * 100:{'+' if signed else ''}.1f}%"
    return text.replace("-0.0%", "+0.0%")


class Raw(str):
    """A table cell that already is RST markup (not escaped)."""


def grid(header: list[str], body: list[list[Any]]) -> list[str]:
    """A docutils-clean grid table: cells escaped unless Raw, strings kept as written."""
    cells = [[c if isinstance(c, Raw) else rst_escape(c) for c in row] for row in body]
    return tabulate(cells, [rst_escape(h) for h in header], tablefmt="grid",
                    disable_numparse=True).splitlines() + [""]


def section(title: str, char: str = "-") -> list[str]:
    return [title, char * len(title), ""]


def summary_table(lines: list[dict[str, Any]]) -> list[str]:
    """stats.summarize lines as a table: group, rows, mean and max |error| per metric."""
    header = ["Group", "Rows"] + [f"{LABELS[m]} {k}" for m in METRICS for k in ("mean", "max")]
    return grid(header, [[l["group"], l["rows"]] + [pct(l[k][m]) for m in METRICS for k in ("mean", "max")]
                         for l in lines])


def document(lines: list[str]) -> str:
    """The lines as one file's text, ending in exactly one newline."""
    return "\n".join(lines).rstrip("\n") + "\n"
