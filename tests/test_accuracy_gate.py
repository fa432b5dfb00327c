"""CI gate: the CURRENT estimator against every recorded GPU measurement (reports/measured/).

Every metric's |(estimated - measured) / measured| must stay within bench.accuracy.gate.GATE_BOUNDS
(the issue's targets), except today's known misses (reports/known_misses.json), which must not get
worse. Rows failing here are real model errors: fix the model, do not loosen the bounds.
"""
from __future__ import annotations

from typing import Any

import pytest

from bench.accuracy.gate import allowed_error, known_misses
from bench.accuracy.recorded import load_recorded, reestimate, row_id
from bench.compare import METRICS, relative_error

ROWS = load_recorded()
MISSES = known_misses()


def test_recorded_rows_found() -> None:
    assert len(ROWS) >= 40, f"only {len(ROWS)} recorded rows with a measured runtime"
    machines = {r["machine"] for r in ROWS}
    assert {"1 x H100 80GB HBM3 machine", "4 x H100 80GB HBM3 machine"} <= machines, machines


@pytest.mark.parametrize("row", ROWS, ids=[row_id(r) for r in ROWS])
def test_within_gate_bounds(row: dict[str, Any]) -> None:
    estimated = reestimate(row)
    outside = []
    for metric in METRICS:
        measured = row["measured"].get(metric)
        if measured is None:
            continue
        error = relative_error(estimated[metric], measured)
        assert error is not None, f"{metric}: no comparable estimate ({estimated[metric]!r} vs {measured!r})"
        bound = allowed_error(row_id(row), metric, MISSES)
        if abs(error) > bound + 1e-12:
            outside.append(f"{metric}: {error * 100:+.1f}% > {bound * 100:.1f}% "
                           f"(estimated {estimated[metric]:.4g}, measured {measured:.4g})")
    assert not outside, "; ".join(outside)


def test_known_misses_are_still_misses() -> None:
    """A known miss that now meets the target must leave the list (re-run --record-misses)."""
    ids = {row_id(r) for r in ROWS}
    assert set(MISSES) <= ids, f"known misses of rows that no longer exist: {set(MISSES) - ids}"
