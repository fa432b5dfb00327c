"""The calibration options and the profile label in the reports, through pytester runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch  # noqa: F401 - imported before the in-process runs: pytester drops modules they import

from bench import report

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

ROW_TEST = '''
import pytest

def make_row(case_id, profile, spread_ms, rounds):
    measured = {"runtime_ms": 100.0, "memory_gb": 5.0, "energy_j_per_token": 0.01,
                "throughput_tokens_per_s": 163840.0, "runtime_ms_rounds": [100.0] * rounds,
                "runtime_ms_spread": spread_ms, "runtime_rounds": rounds}
    estimated = {"runtime_ms": 101.0, "memory_gb": 5.0, "energy_j_per_token": 0.01,
                 "throughput_tokens_per_s": 162217.0, "profile": profile}
    return {"case_id": case_id, "model": "facebook/opt-1.3b", "device": "RTX A5000", "gpus": 1,
            "parallel": "single", "batch": 16, "seq": 1024, "dtype": "float16",
            "measured": measured, "estimated": estimated}

@pytest.mark.parametrize("case_id, spread_ms, rounds", [("fast", 0.5, 6), ("noisy", 3.1, 50)])
def test_case(case_id, spread_ms, rounds, bench_recorder, check_bounds):
    bench_recorder.default_name = "bench-label"
    check_bounds(make_row(case_id, "cached calibration of 2026-11-28 10:00 (NVIDIA RTX A5000 x 1)",
                          spread_ms, rounds))
'''


@pytest.fixture
def bench(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("XDG_CACHE_HOME", str(pytester.path / "cache"))
    pytester.syspathinsert(ROOT)
    return pytester


def _newest(folder: Path, suffix: str) -> Path:
    return max(folder.rglob(f"*{suffix}"), key=lambda p: p.stat().st_mtime)


def test_rows_say_which_profile_and_how_well_the_runtime_is_known(bench) -> None:
    bench.makepyfile(ROW_TEST)
    result = bench.runpytest("-p", "bench.plugin")
    result.assert_outcomes(passed=2)
    doc = json.loads(_newest(bench.path / "reports", ".json").read_text())
    cases = {c["case_id"]: c for c in doc["cases"]}
    assert cases["fast"]["estimated"]["profile"].startswith("cached calibration of 2026-11-28")
    assert cases["noisy"]["measured"]["runtime_rounds"] == 50
    rst = _newest(bench.path / "reports", ".rst").read_text()
    assert "Profile: cached calibration of 2026-11-28 10:00 (NVIDIA RTX A5000 x 1)." in rst
    assert "median of 6-50 rounds per row" in rst and "0.5-3.1 %" in rst
    assert "Wider at the cap: noisy +-3.1 % (50 rounds)" in rst


def test_table_notes_list_profiles_per_row_when_they_differ() -> None:
    rows = [{"case_id": "a", "estimated": {"profile": "shipped x"}},
            {"case_id": "b", "estimated": {"profile": "transfer from h100-sxm5-80gb"}},
            {"case_id": "c", "estimated": {}}]
    assert report.table_notes(rows) == ["Profiles:", "", "- a: shipped x", "- b: transfer from h100-sxm5-80gb", ""]
    assert report.table_notes([{"case_id": "old row", "measured": {"runtime_ms": 5.0}}]) == []


@pytest.mark.parametrize("args, message", [
    (["--bench-calibrate", "sometimes"], "--bench-calibrate: 'sometimes' is not one of auto, always, never"),
    (["-o", "bench_calibrate=often"], "bench_calibrate (ini): 'often' is not one of auto, always, never"),
    (["--bench-profile", "missing.json"], "--bench-profile: no such file"),
])
def test_bad_calibration_options_are_one_line_usage_errors(bench, args, message) -> None:
    bench.makepyfile("def test_nothing():\n    pass\n")
    result = bench.runpytest("-p", "bench.plugin", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_options_reach_the_config(bench) -> None:
    # a real profile: --bench-profile is read before collection, "{}" is a usage error now
    (bench.path / "p.json").write_text((ROOT / "estimator" / "profiles" / "h100-sxm5-80gb.json").read_text())
    bench.makepyfile('''
def test_cfg(bench_config):
    assert bench_config.calibrate == "never"
    assert bench_config.profile.endswith("p.json") and bench_config.as_dict()["calibrate"] == "never"
''')
    bench.runpytest("-p", "bench.plugin", "-o", "bench_calibrate=NEVER", "--bench-profile", "p.json"
                    ).assert_outcomes(passed=1)


def _resolved(result) -> list:
    line = next(line for line in result.outlines if "RESOLVED " in line)
    return json.loads(line.split("RESOLVED ", 1)[1])


CPU_FIXTURE_TEST = '''
from bench.conftest import bench_profile  # the suite's session fixture

def test_profile(bench_profile):
    import json, sys
    print("RESOLVED", json.dumps([bench_profile.profile and bench_profile.profile.source, bench_profile.reason]))
'''


def test_never_on_the_cpu_gives_the_skip_reason(bench) -> None:
    """The CPU path of the real fixture: the CPU case calibrates at session start, never caches."""
    bench.makepyfile(CPU_FIXTURE_TEST)
    result = bench.runpytest("-p", "bench.plugin", "-s", "--bench-calibrate", "never")
    result.assert_outcomes(passed=1)
    source, reason = _resolved(result)
    assert source is None and "--bench-calibrate never" in reason and "calibrates this CPU" in reason
    assert not (bench.path / "cache").exists()


def test_explicit_profile_through_the_fixture(bench) -> None:
    (bench.path / "mine.json").write_text((ROOT / "tests" / "data" / "synthetic-profile.json").read_text())
    bench.makepyfile(CPU_FIXTURE_TEST)
    result = bench.runpytest("-p", "bench.plugin", "-s", "--bench-profile", "mine.json")
    result.assert_outcomes(passed=1)
    source, _ = _resolved(result)
    assert source.startswith(f"profile file {bench.path / 'mine.json'} (calibrated undated on synthetic")
