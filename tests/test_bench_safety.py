"""Issue 11 regressions, bench side: --help works, results are append-only and checked writable
before measuring, --bench-models path/to/config.json builds that file, the CPU case checks RAM."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import results

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

MODULE = '''
import os, pytest
CASES = {"alpha": 110.0, "beta": 105.0, "gone": 100.0}

@pytest.mark.parametrize("case", list(CASES))
def test_case(case, request, check_bounds):
    if os.environ.get("SKIP_" + case):
        pytest.skip("no GPU here")
    open(f"ran-{case}", "w").close()
    est = float(os.environ.get("EST_" + case, CASES[case]))
    measured = {"runtime_ms": 100.0, "memory_gb": 5.0, "energy_j_per_token": 0.01, "throughput_tokens_per_s": 1000.0}
    estimated = dict(measured, runtime_ms=est, throughput_tokens_per_s=1000.0 * 100.0 / est)
    check_bounds({"case_id": case, "model": "m", "device": "H100 SXM5 80GB", "gpus": 1, "batch": 16,
                  "seq": 1024, "dtype": "float16", "measured": measured, "estimated": estimated},
                 bounds={"runtime_ms": 1.0, "throughput_tokens_per_s": 1.0})
'''


@pytest.fixture
def bench(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.syspathinsert(ROOT)
    pytester.makepyfile(test_ms=MODULE)
    return pytester


def run(pytester, *args):
    # hypothesis' pytest plugin costs seconds of import in every in-process run: not needed here
    return pytester.runpytest("-p", "no:hypothesispytest", "-p", "bench.plugin", "--bench-report-name", "r", *args)


def cases(pytester) -> dict[str, dict]:
    doc = json.loads((pytester.path / "reports" / "r.json").read_text())
    return {c["case_id"]: c for c in doc["cases"] + doc["skipped"]}


def test_bench_help_lists_the_options():
    r = subprocess.run([sys.executable, "-m", "pytest", "bench/", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--bench-models" in r.stdout and "--bench-report-dir" in r.stdout
    assert "Traceback" not in r.stderr and "KeyError" not in r.stderr


def test_a_partial_run_keeps_the_other_rows(bench, monkeypatch):
    assert run(bench).ret == 0
    assert set(cases(bench)) == {"alpha", "beta", "gone"}
    monkeypatch.setenv("EST_alpha", "120.0")
    assert run(bench, "-k", "alpha").ret == 0             # one case only, like `-k` or one model
    merged = cases(bench)
    assert set(merged) == {"alpha", "beta", "gone"}       # nothing deleted
    assert merged["alpha"]["estimated"]["runtime_ms"] == 120.0 and "run" not in merged["alpha"]  # newest wins
    assert merged["beta"]["estimated"]["runtime_ms"] == 105.0 and merged["beta"]["run"]  # from the first run
    assert len(list((bench.path / "reports" / "runs" / "r").glob("*.json"))) == 2
    rst = (bench.path / "reports" / "r.rst").read_text()
    assert "120.00" in rst and "105.00" in rst
    monkeypatch.setenv("SKIP_gone", "1")
    assert run(bench, "-k", "gone").ret == 0
    assert cases(bench)["gone"]["status"] == "passed"     # a skip never replaces a measured row
    assert not list((bench.path / "reports").rglob(".*.tmp"))


def test_a_report_from_before_run_files_is_kept(bench):
    old = {"cases": [{"case_id": "old", "model": "m", "device": "d", "status": "passed", "error": {},
                      "measured": {"runtime_ms": 1.0}, "estimated": {"runtime_ms": 1.0}}], "skipped": []}
    (bench.path / "reports").mkdir()
    (bench.path / "reports" / "r.json").write_text(json.dumps(old))
    assert run(bench, "-k", "beta").ret == 0
    assert set(cases(bench)) == {"old", "beta"}


def test_unreadable_run_file_is_skipped(bench):
    folder = bench.path / "reports" / "runs" / "r"
    folder.mkdir(parents=True)
    (folder / "00000000T000001-1.json").write_text("{not json")
    assert run(bench, "-k", "beta").ret == 0
    assert set(cases(bench)) == {"beta"}


def test_unwritable_report_dir_stops_before_measuring(bench):
    (bench.path / "blocker").write_text("")
    result = run(bench, "--bench-report-dir", "blocker/reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR")]
    assert len(errors) == 1 and "--bench-report-dir" in errors[0] and "blocker" in errors[0]
    assert "Traceback" not in result.stderr.str()
    assert not list(bench.path.glob("ran-*"))             # no case was measured


def test_merge_rules():
    older = [("1", [{"case_id": "x", "status": "passed", "v": 1}, {"case_id": "y", "status": "skipped"}]),
             ("2", [{"case_id": "x", "status": "failed", "v": 2}])]
    current = [{"case_id": "y", "status": "passed"}, {"case_id": "x", "status": "skipped"}, {"case_id": "z"}]
    merged = {r["case_id"]: r for r in results.merge(older, current)}
    assert merged["x"] == {"case_id": "x", "status": "failed", "v": 2, "run": "2"}
    assert merged["y"] == {"case_id": "y", "status": "passed"}
    assert list(merged) == ["x", "y", "z"]


# ---- --bench-models path/to/config.json ---------------------------------------------------------

def test_bench_models_path_builds_that_exact_file(tmp_path):
    from bench import build
    from bench.cases import Case, short_model_name
    zoo = json.loads((ROOT / "estimator/zoo/AICrossSim/clm-60m/config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(zoo))              # a different model beside it
    (tmp_path / "three.json").write_text(json.dumps(dict(zoo, num_hidden_layers=3)))
    assert build._config(str(tmp_path / "three.json")).num_hidden_layers == 3
    assert build._config(str(tmp_path)).num_hidden_layers == 22
    assert short_model_name(str(tmp_path / "three.json")) == "three"
    assert short_model_name(str(tmp_path / "config.json")) == tmp_path.name
    assert Case(str(tmp_path / "three.json"), 16, 1024, 1, "pipeline", "auto", "H100").id == "three-H100-1gpu"
    assert short_model_name("facebook/opt-1.3b") == "opt-1.3b"


# ---- the CPU case and host RAM ------------------------------------------------------------------

def test_cpu_case_skips_when_the_model_would_not_fit_in_ram(tmp_path):
    from bench.build import HOST_RAM_HEADROOM, host_ram_problem
    from bench.machine import available_ram_bytes
    reason = host_ram_problem(26.8e9, 23_700_000_000)      # opt-6.7b in float32 on a 24 GB machine
    assert reason == "out of host memory: needs about 26.8 GB of RAM, 23.7 GB available"
    assert host_ram_problem(1e9, int(1e9 * HOST_RAM_HEADROOM)) is None
    assert host_ram_problem(1e12, None) is None            # unknown: no objection
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemAvailable:   1000000 kB\n")
    assert available_ram_bytes(str(meminfo)) == 1_024_000_000
    assert available_ram_bytes() is None or available_ram_bytes() > 0
