"""Relative error of the estimator against a measurement, and the bounds check.

Pure arithmetic: imported by the plugin (bounds) and by the report (error columns).
``METRICS`` (forward metrics, every row) and ``GENERATION_METRICS`` (rows of
bench/test_generate.py, kind "generate", are gated on these as well) are tuples of keys derived
from the registry in bench/metrics.py, read afresh on each access of ``compare.METRICS``.
"""
from __future__ import annotations

from typing import Any, Mapping

from . import metrics
from .formats import finite_number as _number

ERROR_BASIS = "(estimated - measured) / measured"


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "METRICS":
        return metrics.keys(metrics.forward())
    if name == "GENERATION_METRICS":
        return metrics.keys(metrics.generate_only())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def relative_error(estimated: Any, measured: Any) -> float | None:
    """(estimated - measured) / measured; positive means the estimator over-predicts.

    None when either side is unavailable or measured is 0 (no meaningful ratio).
    """
    est, meas = _number(estimated), _number(measured)
    if est is None or meas is None or meas == 0:
        return None
    return (est - meas) / meas


def errors(row: Mapping[str, Any]) -> dict[str, float | None]:
    """Relative error of every metric in METRICS (and GENERATION_METRICS for a generation row)."""
    measured = row.get("measured") or {}
    estimated = row.get("estimated") or {}
    keys = metrics.keys(metrics.forward() + (metrics.generate_only() if row.get("kind") == "generate" else ()))
    return {m: relative_error(estimated.get(m), measured.get(m)) for m in keys}


def out_of_bounds(row_errors: Mapping[str, float | None],
                  bounds: Mapping[str, float | None]) -> list[str]:
    """One line per metric whose |error| exceeds its bound, e.g. 'runtime_ms: +12.3% > 10.0%'.

    A None error (value unavailable) and a metric without a bound are never out of bounds;
    an error exactly at the bound is inside.
    """
    bad = []
    for metric, error in row_errors.items():
        bound = bounds.get(metric)
        if error is None or bound is None or abs(error) <= bound + 1e-12:  # float noise
            continue
        bad.append(f"{metric}: {error * 100:+.1f}% > {bound * 100:.1f}%")
    return bad
