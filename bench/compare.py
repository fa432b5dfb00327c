"""Relative error of the estimator against a measurement, and the bounds check.

Pure arithmetic: imported by the plugin (bounds) and by the report (error columns).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

METRICS = ("runtime_ms", "memory_gb", "energy_j_per_token", "throughput_tokens_per_s")
ERROR_BASIS = "(estimated - measured) / measured"
# rows of bench/test_generate.py (kind "generate") are gated on these as well
GENERATION_METRICS = ("ttft_ms", "tpot_ms", "generate_energy_j_per_token")


def _number(value: Any) -> float | None:
    """A finite float, or None for None / NaN / inf / anything that is not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def relative_error(estimated: Any, measured: Any) -> float | None:
    """(estimated - measured) / measured; positive means the estimator over-predicts.

    None when either side is unavailable or measured is 0 (no meaningful ratio).
    """
    est, meas = _number(estimated), _number(measured)
    if est is None or meas is None or meas == 0:
        return None
    return (est - meas) / meas


def errors(row: Mapping[str, Any]) -> dict[str, float | None]:
    """Relative error of every metric in METRICS for one result row."""
    measured = row.get("measured") or {}
    estimated = row.get("estimated") or {}
    keys = METRICS + (GENERATION_METRICS if row.get("kind") == "generate" else ())
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
