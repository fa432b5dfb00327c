"""Cell formats of the bench reports: one definition of "a finite number" and the number
formatters a metric names (bench/metrics.py). Pure functions, no imports from bench."""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

NA = "n/a"


def finite_number(value: Any) -> float | None:
    """A finite float, or None for None / NaN / inf / anything that is not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _or_na(render: Callable[[float], str]) -> Callable[[Any], str]:
    """A cell formatter: render(number) for a finite number, NA for anything else."""
    @functools.wraps(render)
    def fmt(value: Any) -> str:
        number = finite_number(value)
        return NA if number is None else render(number)
    return fmt


@_or_na
def fmt_fixed2(number: float) -> str:
    return f"{number:.2f}"


@_or_na
def fmt_sig3(number: float) -> str:
    """Three significant digits without exponent: 0.0102, 0.00213, 1.50, 123, 1230."""
    if number == 0:
        return "0.00"
    decimals = 2 - math.floor(math.log10(abs(number)))
    rounded = round(number, decimals)
    if rounded != 0:  # rounding may carry into the next digit (0.009996 -> 0.0100)
        decimals = 2 - math.floor(math.log10(abs(rounded)))
    return f"{number:.{decimals}f}" if decimals > 0 else f"{round(number, decimals):.0f}"


@_or_na
def fmt_int(number: float) -> str:
    return f"{number:.0f}"


@_or_na
def fmt_error(number: float) -> str:
    text = f"{number * 100:+.2f}%"
    return "+0.00%" if text == "-0.00%" else text
