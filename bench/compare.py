"""Relative error of the estimator against a measurement, and the bounds check.

Pure arithmetic: imported by the plugin (bounds) and by the report (error columns).
``METRICS`` (forward metrics, every row) and ``GENERATION_METRICS`` (rows of
bench/test_generate.py, kind "generate", are gated on these as well) are tuples of keys derived
from the registry in bench/metrics.py, read afresh on each access of ``compare.METRICS``.
"""
from __future__ import annotations

import statistics
from typing import Any, Mapping

from . import metrics
from .formats import finite_number as _number

ERROR_BASIS = "(estimated - measured) / measured"
# A generation row measured with the host probe holds each timed round's measurement and the
# estimate of that round at the host speed its probe measured (``per_round`` in both blocks): its
# runtime, TTFT, TPOT (and throughput) are judged round by round, the median taken. The host of a
# lent H200 moved 1.5-2x within seconds, so the median round of the measurement and the median
# probe could come from different moments (2026-12-03 loan 6: paired, batch 1 runtime within 10 %
# on 12 of 12 cases; the medians compared apart, 8 of 12).
PAIRED_BASIS = ("the median over the timed rounds of (the round's estimate, at the host speed its probe "
                "measured - the round's measurement) / the round's measurement")
PER_ROUND_KEYS = ("runtime_ms", "ttft_ms", "tpot_ms")   # what a row's ``per_round`` blocks hold
PAIRED_METRICS = {"runtime_ms": "runtime_ms", "generate_ms": "runtime_ms", "throughput_tokens_per_s": "runtime_ms",
                  "ttft_ms": "ttft_ms", "tpot_ms": "tpot_ms"}


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


def paired_error(estimated: Mapping[str, Any], measured: Mapping[str, Any], metric: str) -> float | None:
    """PAIRED_BASIS's error of `metric`, or None when the row has no per-round values for it."""
    key = PAIRED_METRICS.get(metric)
    est = (estimated.get("per_round") or {}).get(key) if key else None
    meas = (measured.get("per_round") or {}).get(key) if key else None
    if not est or not meas or len(est) != len(meas):
        return None
    pairs = [(_number(e), _number(m)) for e, m in zip(est, meas)]
    if any(e is None or m is None or e <= 0 or m <= 0 for e, m in pairs):
        return None
    # throughput is tokens / runtime: its ratio is the runtime's, inverted
    ratios = [m / e if metric == "throughput_tokens_per_s" else e / m for e, m in pairs]
    return statistics.median(ratios) - 1


def paired(row: Mapping[str, Any]) -> bool:
    """Whether `row` is judged on PAIRED_BASIS (a generation row with per-round values)."""
    return paired_error(row.get("estimated") or {}, row.get("measured") or {}, "runtime_ms") is not None


def errors(row: Mapping[str, Any]) -> dict[str, float | None]:
    """Relative error of every metric in METRICS (and GENERATION_METRICS for a generation row);
    a generation row with per-round values: its timing metrics on PAIRED_BASIS."""
    measured = row.get("measured") or {}
    estimated = row.get("estimated") or {}
    generate = row.get("kind") == "generate"
    keys = metrics.keys(metrics.forward() + (metrics.generate_only() if generate else ()))
    out = {}
    for m in keys:
        e = paired_error(estimated, measured, m) if generate else None
        out[m] = e if e is not None else relative_error(estimated.get(m), measured.get(m))
    return out


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
