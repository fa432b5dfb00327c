"""10-90 % ranges: estimator/ranges.json and its loader, the regime and its fallbacks, the ranges
an estimate carries (library, --json, CLI text, bench rows and RST), and the command writing them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.accuracy import ranges as cmd
from bench.row import Estimated
from estimator import EstimatorError, Workload, estimate, get_device
from estimator import ranges
from estimator.profile import profile_for

ROOT = Path(__file__).resolve().parents[1]


def _table(regimes: dict, min_rows: int = 10) -> ranges.RangeTable:
    return ranges.parse_ranges({"regimes": regimes, "min_rows": min_rows, "date": "d", "source": {},
                                "metric_fallback": {"ttft_ms": "runtime_ms", "tpot_ms": "runtime_ms"}})


def q(low: float, high: float, rows: int) -> dict:
    return {"low": low, "high": high, "rows": rows}


# -- the data file and its loader -------------------------------------------------------------------

def test_shipped_file_has_its_source_and_every_regime_key_parses() -> None:
    doc = json.loads(ranges.RANGES_FILE.read_text())
    assert doc["source"]["command"] == cmd.COMMAND and doc["percentiles"] == [10, 90]
    assert doc["source"]["files"] and all((ROOT / f).is_file() for f in doc["source"]["files"])
    table = ranges.load_ranges()
    assert table is not None and table.min_rows == doc["min_rows"]
    assert {"gpu/calibrated/shipped", "host/calibrated/shipped", "gpu/any/any", "host/any/any"} <= set(table.regimes)
    for per in table.regimes.values():
        for v in per.values():
            assert 0 < v.low <= v.high and v.rows >= 1


@pytest.mark.parametrize("regimes, problem", [
    ({"gpu/calibrated": {}}, "bound/calibration/host"),
    ({"gpu/calibrated/shipped": {"throughput": q(1, 1, 3)}}, "unknown metric"),
    ({"gpu/calibrated/shipped": {"runtime_ms": q(1.1, 1.0, 3)}}, "low <= high"),
    ({"gpu/calibrated/shipped": {"runtime_ms": q(0.9, 1.1, 0)}}, "rows >= 1"),
])
def test_bad_documents_are_refused_with_one_line(regimes: dict, problem: str) -> None:
    with pytest.raises(EstimatorError, match=problem):
        _table(regimes)
    with pytest.raises(EstimatorError, match="no 'date'"):
        ranges.parse_ranges({"regimes": {}, "min_rows": 1, "source": {}})


def test_a_missing_file_gives_no_ranges(tmp_path: Path) -> None:
    assert ranges.load_ranges(tmp_path / "absent.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(EstimatorError, match="bad ranges file"):
        ranges.load_ranges(bad)


# -- regime and fallback ----------------------------------------------------------------------------

def test_regime_of_shipped_transferred_and_run_profiles() -> None:
    h200 = get_device("H200")
    shipped = profile_for(h200)
    assert ranges.regime("gpu", shipped) == "gpu/calibrated/shipped"
    assert ranges.regime("host", profile_for(h200, transfer_from="H100")) == "host/transferred/shipped"
    run = shipped.with_host({"llama": {"per_layer_us": 1.0, "fixed_us": 2.0}}, {}, "host measured here")
    assert ranges.regime("gpu", run) == "gpu/calibrated/run" and shipped.host_source == "shipped"


def test_fallback_to_coarser_regime_then_to_runtime() -> None:
    table = _table({"host/calibrated/run": {"runtime_ms": q(0.9, 1.2, 4)},
                    "host/calibrated/any": {"runtime_ms": q(0.8, 1.3, 12), "ttft_ms": q(0.7, 0.8, 4)},
                    "host/any/any": {"runtime_ms": q(0.7, 1.4, 40)}})
    assert table.lookup("host/calibrated/run", "runtime_ms")[1:] == ("host/calibrated/any", "runtime_ms")
    assert table.lookup("host/transferred/run", "runtime_ms")[1:] == ("host/any/any", "runtime_ms")
    assert table.lookup("host/calibrated/run", "ttft_ms")[1:] == ("host/calibrated/any", "runtime_ms")
    assert table.lookup("gpu/calibrated/run", "runtime_ms") is None
    found, notes = ranges.ranges_for({"runtime_ms": 10.0, "ttft_ms": 2.0, "memory_gb": 1.0, "energy_j_per_token": None},
                                     "host/calibrated/run", table)
    assert found["runtime_ms_range"] == pytest.approx([8.0, 13.0]) and found["ttft_ms_range"] == pytest.approx([1.6, 2.6])
    assert found["memory_gb_range"] is None and found["energy_j_per_token_range"] is None
    assert len(notes) == 1 and "runtime_ms from host/calibrated/any (12 rows)" in notes[0] \
        and "ttft_ms from host/calibrated/any runtime_ms" in notes[0]


# -- what an estimate carries -----------------------------------------------------------------------

@pytest.mark.parametrize("device, kw", [("H100", {}), ("H200", {"gpus": 2, "parallel": "tensor"}),
                                        ("RTX A6000", {"batch": 1, "seq": 128})])
def test_an_estimate_carries_ranges_around_its_values(device: str, kw: dict) -> None:
    e = estimate("AICrossSim/clm-200m", device, Workload(**kw))
    for m in ("runtime_ms", "memory_gb", "energy_j_per_token"):
        low, high = getattr(e, f"{m}_range")
        assert low <= getattr(e, m) * 1.0001 and getattr(e, m) <= high * 1.0001 and low < high
    d = e.to_dict()
    assert "runtime_ms_range" in d and "ttft_ms_range" not in d


def test_every_range_contains_its_estimate_over_a_sample_of_the_snapshot_cases() -> None:
    # issue 28: opt-6.7b on an H200 had memory_gb 23.722 with memory_gb_range [23.724, 23.883]
    import itertools
    sys.path.insert(0, str(ROOT / "tests"))
    from snapshot_estimates import cases
    checked = 0
    for model, dev, kw in itertools.islice(cases(), 0, None, 53):   # about 400 of the 20,800
        try:
            d = estimate(model, dev, Workload(**kw)).to_dict()
        except EstimatorError:
            continue
        for field in (f for f in d if f.endswith("_range") and d[f] is not None):
            low, high = d[field]
            value = d[field[:-len("_range")]]
            assert low <= value <= high, (model, dev, kw, field, value, d[field])
            checked += 1
    assert checked > 500
    e = estimate("facebook/opt-6.7b", "H200")
    assert e.memory_gb_range[0] <= e.memory_gb <= e.memory_gb_range[1]


def test_a_range_from_percentiles_on_one_side_of_one_is_widened_to_the_value() -> None:
    table = _table({"gpu/calibrated/shipped": {"runtime_ms": q(1.1, 1.3, 20), "memory_gb": q(0.8, 0.9, 20)}})
    found, _ = ranges.ranges_for({"runtime_ms": 10.0, "memory_gb": 2.0}, "gpu/calibrated/shipped", table)
    assert found["runtime_ms_range"] == pytest.approx([10.0, 13.0])
    assert found["memory_gb_range"] == pytest.approx([1.6, 2.0])


def test_a_generation_estimate_has_ttft_and_tpot_ranges() -> None:
    e = estimate("AICrossSim/clm-60m", "H200", Workload(1, 512, "bfloat16", new_tokens=16))
    assert e.ttft_ms_range[0] < e.ttft_ms_range[1] and e.tpot_ms_range[0] < e.tpot_ms_range[1]
    assert e.to_dict()["tpot_ms_range"] == e.tpot_ms_range
    # TTFT and TPOT have regimes of their own since the 2026-12-01 generation rows (22 host-bound rows)
    assert e.ttft_ms_range[0] <= e.ttft_ms <= e.ttft_ms_range[1] and e.tpot_ms_range[0] <= e.tpot_ms <= e.tpot_ms_range[1]


def cli(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "estimator", "estimate", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_json_and_text_show_the_ranges() -> None:
    d = json.loads(cli("--model", "facebook/opt-1.3b", "--device", "H100", "--json"))
    assert len(d["runtime_ms_range"]) == 2 and d["runtime_ms_range"][0] <= d["runtime_ms"] <= d["runtime_ms_range"][1]
    assert "memory_gb_range" in d and "energy_j_per_token_range" in d
    text = cli("--model", "facebook/opt-1.3b", "--device", "H100", "--gpus", "2")
    line = next(l for l in text.splitlines() if l.startswith("runtime"))
    assert "(10-90 %: " in line
    assert "busiest GPU, 10-90 %" in next(l for l in text.splitlines() if l.startswith("memory per GPU"))


# -- bench rows and RST -----------------------------------------------------------------------------

def test_bench_row_records_the_ranges_and_the_rst_shows_runtimes() -> None:
    e = estimate("AICrossSim/clm-60m", "H100", Workload(1, 128))
    block = Estimated.from_estimate(e, None).to_dict()
    assert block["runtime_ms_range"] == e.runtime_ms_range and "ttft_ms_range" not in block
    row = {"case_id": "c", "model": "m", "device": "H100", "gpus": 1, "batch": 1, "seq": 128, "dtype": "float16",
           "measured": {"runtime_ms": e.runtime_ms}, "estimated": block, "status": "passed"}
    text = report.render_rst([row])
    assert "Runtime range of the estimate (ms)" in text and "measured" in text and "inside" in text
    old = dict(row, estimated={k: v for k, v in block.items() if not k.endswith("_range")})
    assert "range of the estimate" not in report.render_rst([old])


# -- the command ------------------------------------------------------------------------------------

def test_the_command_writes_the_shipped_file_from_the_recorded_rows(tmp_path: Path) -> None:
    doc = cmd.write_ranges(tmp_path / "ranges.json")
    written = json.loads((tmp_path / "ranges.json").read_text())
    assert written == doc and ranges.parse_ranges(written).regimes
    shipped = json.loads(ranges.RANGES_FILE.read_text())
    assert written["regimes"] == shipped["regimes"], \
        "estimator/ranges.json is out of date with the estimator: run `python -m bench.accuracy ranges`"


def test_machines_and_host_machines() -> None:
    labels = {s["label"] for s in cmd.sessions().values()}
    assert len(labels) == 13    # reports/measured/MACHINES.md: two H100 and eleven H200 machines (two 4-GPU, nine 1-GPU loans;
    # loan 4 of 2026-12-03 is labelled with loan 3: its files carry the same machine block)
    machines = list({s["label"]: s for s in cmd.sessions().values()}.values())
    h200 = cmd.calibration_machines("h200-sxm-141gb", machines)
    assert len(h200) == 1 and cmd.sessions()["h200x4-16x1024.json"]["label"] in h200
    assert cmd.sessions()["h200x4-main.json"]["label"] not in h200


def test_percentile_is_linear_between_ranks() -> None:
    assert cmd.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 10) == pytest.approx(1.4)
    assert cmd.percentile([3.0], 90) == 3.0


def test_accuracy_section_renders_every_regime() -> None:
    lines = cmd.ranges_lines()
    text = "\n".join(lines)
    assert "gpu/calibrated/shipped" in text and "host/transferred/shipped" in text
    assert "The issue's test" in text and "reference rows" in text
