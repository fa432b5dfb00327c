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
from bench.compare import METRICS, errors

ROWS = load_recorded()
MISSES = known_misses()


def test_recorded_rows_found() -> None:
    assert len(ROWS) >= 40, f"only {len(ROWS)} recorded rows with a measured runtime"
    machines = {r["machine"] for r in ROWS}
    assert {"1 x H100 80GB HBM3 machine", "4 x H100 80GB HBM3 machine"} <= machines, machines


@pytest.mark.parametrize("row", ROWS, ids=[row_id(r) for r in ROWS])
def test_within_gate_bounds(row: dict[str, Any]) -> None:
    estimated = reestimate(row)
    judged = errors(dict(row, estimated=estimated))   # a row with rounds: on the paired basis (bench/compare.py)
    outside = []
    for metric in METRICS:
        measured = row["measured"].get(metric)
        if measured is None:
            continue
        error = judged[metric]
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


def test_energy_is_reestimated_at_the_host_speed_of_its_window() -> None:
    """A row that recorded the host beside its energy window (energy_host_us) is re-estimated
    for energy with it, for runtime with its rounds' host (bench/test_forward.py, test_generate.py)."""
    import copy
    from bench.row import Row
    fwd = next(r for r in ROWS if r["estimated"].get("host_us") and "ttft_ms" not in r["measured"]
               and r["batch"] == 1 and r["seq"] <= 128)
    slow = copy.deepcopy(fwd)
    slow["estimated"]["energy_host_us"] = {k: 1.5 * v for k, v in fwd["estimated"]["host_us"].items()
                                           if k in ("per_layer_us", "fixed_us")}
    assert Row.from_dict(slow).to_dict()["estimated"]["energy_host_us"] == slow["estimated"]["energy_host_us"]
    base, new = reestimate(fwd), reestimate(slow)
    assert new["runtime_ms"] == base["runtime_ms"] and new["energy_j_per_token"] > base["energy_j_per_token"] * 1.2
    gen = next(r for r in ROWS if r["estimated"].get("generate_host_us") and r["batch"] == 1)
    slow = copy.deepcopy(gen)
    slow["estimated"]["energy_host_us"] = {k: 1.5 * v for k, v in gen["estimated"]["generate_host_us"].items()}
    base, new = reestimate(gen), reestimate(slow)
    assert new["tpot_ms"] == base["tpot_ms"]
    assert new["generate_energy_j_per_token"] > 1.2 * base["generate_energy_j_per_token"]


def test_a_row_with_per_round_host_entries_is_re_estimated_round_by_round():
    """A generation row that recorded each round's generate host entry is re-estimated once per
    round with it (bench/accuracy/recorded.per_round_estimates), and judged on the paired basis:
    a round at twice the host entry is estimated slower, and the paired error follows the rounds."""
    import copy
    import json as _json
    from bench.accuracy.recorded import MEASURED, evaluate, reestimate
    doc = _json.loads((MEASURED / "h200x1-1203e-generate-64-b1.json").read_text())
    row = copy.deepcopy(next(c for c in doc["cases"] if c["case_id"].startswith("generate-AICrossSim/clm-60m-1x128")))
    row["source"] = "h200x1-1203e-generate-64-b1.json"
    entry = row["estimated"]["generate_host_us"]
    slow = {k: 2 * v for k, v in entry.items()}
    row["estimated"]["generate_host_us_rounds"] = [entry, slow, entry]
    got = reestimate(row)["per_round"]
    assert got["runtime_ms"][0] == pytest.approx(got["runtime_ms"][2]) and got["runtime_ms"][1] > 1.5 * got["runtime_ms"][0]
    meas = got["runtime_ms"][0] * 1.02
    row["measured"]["per_round"] = {"runtime_ms": [meas, 2 * meas, meas], "ttft_ms": got["ttft_ms"],
                                    "tpot_ms": got["tpot_ms"]}
    [judged] = evaluate([row])
    assert judged["error"]["runtime_ms"] == pytest.approx(1 / 1.02 - 1, abs=0.03)
