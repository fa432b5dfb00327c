"""The one reStructuredText grid-table writer, for the bench report (bench/report.py: two header
rows, metric names spanning Measured | Estimated | Error) and the accuracy reports
(bench/accuracy/rst.py: one header row). Cells arrive as final text; escaping is the caller's.
"""
from __future__ import annotations

from typing import Sequence

Cell = tuple[str, int, str]  # (text, columns it spans, alignment: "l" | "r" | "c")


def fit_widths(header: Sequence[Sequence[Cell]], body: Sequence[Sequence[Cell]],
               header_padding: int = 0) -> list[int]:
    """Column text widths from the content: each one-column cell sets a minimum (header cells
    plus `header_padding`); a spanning cell too wide for its columns widens the last of them."""
    rows = [(row, header_padding) for row in header] + [(row, 0) for row in body]
    ncols = sum(span for _, span, _ in (header or body)[0])
    widths = [0] * ncols
    for row, pad in rows:
        col = 0
        for text, span, _ in row:
            if span == 1:
                widths[col] = max(widths[col], len(text) + pad)
            col += span
    for row, pad in rows:
        col = 0
        for text, span, _ in row:
            if span > 1:
                room = sum(widths[col:col + span]) + 3 * (span - 1)  # text width of merged cells
                widths[col + span - 1] += max(0, len(text) + pad - room)
            col += span
    return widths


def grid_lines(header: Sequence[Sequence[Cell]], body: Sequence[Sequence[Cell]],
               widths: Sequence[int] | None = None, header_padding: int = 0) -> list[str]:
    """The table's lines: '-' rules between header rows, '=' under the header, '-' under each
    body row (and under the header when there is no body, so the table stays valid)."""
    widths = list(widths) if widths is not None else fit_widths(header, body, header_padding)

    def line(cells: Sequence[Cell]) -> str:
        out, col = "|", 0
        for text, span, align in cells:
            width = sum(widths[col:col + span]) + 3 * (span - 1)
            if align == "r":
                text = text.rjust(width)
            elif align == "c":
                text = (" " * ((width - len(text)) // 2) + text).ljust(width)
            out += f" {text.ljust(width)} |"
            col += span
        return out

    def rule(char: str) -> str:
        return "+" + "+".join(char * (w + 2) for w in widths) + "+"

    lines = [rule("-")]
    for k, row in enumerate(header):
        lines += [line(row), rule("=" if k == len(header) - 1 else "-")]
    for row in body:
        lines += [line(row), rule("-")]
    if not body:
        lines.append(rule("-"))
    return lines
