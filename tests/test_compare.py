"""bench.compare: relative error and bounds."""
import math

import pytest

from bench.compare import ERROR_BASIS, METRICS, errors, out_of_bounds, relative_error


def test_error_basis_and_metrics():
    assert ERROR_BASIS == "(estimated - measured) / measured"
    assert METRICS == ("runtime_ms", "memory_gb", "energy_j_per_token",
                       "throughput_tokens_per_s")


@pytest.mark.parametrize("estimated, measured, expected", [
    (110.0, 100.0, 0.10),     # over-estimate -> positive
    (90.0, 100.0, -0.10),     # under-estimate -> negative
    (100.0, 100.0, 0.0),
    (0.0, 50.0, -1.0),
    (3, 2, 0.5),              # ints are fine
])
def test_relative_error_sign_and_value(estimated, measured, expected):
    assert relative_error(estimated, measured) == pytest.approx(expected)


@pytest.mark.parametrize("estimated, measured", [
    (None, 1.0), (1.0, None), (None, None),
    (1.0, 0.0), (1.0, 0),                      # measured zero: no ratio
    (math.nan, 1.0), (1.0, math.inf), ("x", 1.0), (True, 1.0),
])
def test_relative_error_unavailable(estimated, measured):
    assert relative_error(estimated, measured) is None


def test_errors_of_row():
    row = {"measured": {"runtime_ms": 100.0, "memory_gb": 5.0, "energy_j_per_token": None,
                        "throughput_tokens_per_s": 1000.0, "extra": 1},
           "estimated": {"runtime_ms": 112.3, "memory_gb": 4.9,
                         "energy_j_per_token": 0.01}}
    errs = errors(row)
    assert list(errs) == list(METRICS)
    assert errs["runtime_ms"] == pytest.approx(0.123)
    assert errs["memory_gb"] == pytest.approx(-0.02)
    assert errs["energy_j_per_token"] is None          # measured missing
    assert errs["throughput_tokens_per_s"] is None     # estimated missing


def test_errors_of_row_without_values():
    assert errors({"case_id": "x"}) == dict.fromkeys(METRICS)


BOUNDS = {"runtime_ms": 0.10, "memory_gb": 0.05, "energy_j_per_token": 0.15,
          "throughput_tokens_per_s": 0.10}


def test_out_of_bounds_lines():
    errs = {"runtime_ms": 0.123, "memory_gb": -0.06, "energy_j_per_token": 0.149,
            "throughput_tokens_per_s": -0.0999}
    assert out_of_bounds(errs, BOUNDS) == ["runtime_ms: +12.3% > 10.0%",
                                           "memory_gb: -6.0% > 5.0%"]


def test_out_of_bounds_edges():
    # exactly at the bound (even with float noise) is inside; None never fails;
    # a metric without a bound is not checked
    assert out_of_bounds({"runtime_ms": relative_error(110.0, 100.0)}, BOUNDS) == []
    assert out_of_bounds({"runtime_ms": None, "memory_gb": None}, BOUNDS) == []
    assert out_of_bounds({"other": 5.0}, BOUNDS) == []
    assert out_of_bounds({"runtime_ms": 0.5}, {"runtime_ms": None}) == []
    assert out_of_bounds({"runtime_ms": -0.2}, {"runtime_ms": 0.0}) == [
        "runtime_ms: -20.0% > 0.0%"]


def test_a_generation_row_with_rounds_is_judged_round_by_round():
    """The host doubles its speed in rounds 3-5: the medians of the measurement (round 3's 1.0 s)
    and of the estimates (round 1's 2.0 s, at its slow probe) come from different moments, 100 %
    apart; each round's estimate at its own probe is within 5 % of that round."""
    meas_rt, est_rt = [2000.0, 2100.0, 1000.0, 1050.0, 980.0], [2040.0, 2000.0, 1030.0, 1000.0, 1000.0]
    row = {"kind": "generate",
           "measured": {"runtime_ms": 1050.0, "ttft_ms": 20.0, "tpot_ms": 16.0, "throughput_tokens_per_s": 61.0,
                        "per_round": {"runtime_ms": meas_rt, "ttft_ms": [30, 31, 15, 16, 15],
                                      "tpot_ms": [x / 64 for x in meas_rt]}},
           "estimated": {"runtime_ms": 2000.0, "ttft_ms": 30.0, "tpot_ms": 31.0, "throughput_tokens_per_s": 32.0,
                         "per_round": {"runtime_ms": est_rt, "ttft_ms": [31, 30, 15, 15, 16],
                                       "tpot_ms": [x / 64 for x in est_rt]}}}
    e = errors(row)
    ratios = sorted(a / b for a, b in zip(est_rt, meas_rt))
    assert e["runtime_ms"] == pytest.approx(ratios[2] - 1) and abs(e["runtime_ms"]) < 0.05
    assert e["tpot_ms"] == pytest.approx(e["runtime_ms"]) and abs(e["ttft_ms"]) < 0.05
    assert e["throughput_tokens_per_s"] == pytest.approx(sorted(b / a for a, b in zip(est_rt, meas_rt))[2] - 1)
    plain = {k: dict(v, per_round=None) for k, v in row.items() if k != "kind"} | {"kind": "generate"}
    assert errors(plain)["runtime_ms"] == pytest.approx(2000 / 1050 - 1)   # without rounds: the medians
    uneven = {**row, "estimated": {**row["estimated"], "per_round": {"runtime_ms": est_rt[:4]}}}
    assert errors(uneven)["runtime_ms"] == pytest.approx(2000 / 1050 - 1)  # rounds that do not pair: the medians
