"""Issue 27, bench side: option values that cannot work (paths too long for the file system,
node options that cannot meet, an unreadable profile) stop the run as a usage error before
anything is collected; a report folder that fails after an earlier run (a full disk) keeps every
earlier file and ends the run with one line, never an INTERNALERROR."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import option_checks

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
LONG = "a" * 300   # one path component longer than any common file system's 255 bytes

MODULE = '''
import pytest

@pytest.mark.parametrize("case", ["alpha", "beta"])
def test_case(case, check_bounds):
    open(f"ran-{case}", "w").close()
    measured = {"runtime_ms": 100.0, "memory_gb": 5.0, "energy_j_per_token": 0.01, "throughput_tokens_per_s": 1000.0}
    check_bounds({"case_id": case, "model": "m", "device": "H100 SXM5 80GB", "gpus": 1, "batch": 16, "seq": 1024,
                  "dtype": "float16", "measured": measured, "estimated": dict(measured)})
'''

# A full disk, from the second run on: every report write fails as write_atomic would there.
FULL_DISK = '''
import errno, os
import pytest

_patch = pytest.MonkeyPatch()

def _full(path, text):
    raise OSError(errno.ENOSPC, "No space left on device", str(path))

def pytest_configure(config):
    if os.environ.get("DISK_FULL"):
        import bench.report, bench.results
        _patch.setattr(bench.report, "write_atomic", _full)
        _patch.setattr(bench.results, "write_atomic", _full)

def pytest_unconfigure(config):
    _patch.undo()
'''


@pytest.fixture
def bench(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.syspathinsert(ROOT)
    pytester.makepyfile(test_ms=MODULE)
    return pytester


def run(pytester, *args):
    return pytester.runpytest("-p", "no:hypothesispytest", "-p", "bench.plugin", "--bench-report-name", "r", *args)


def usage_error(result) -> str:
    """The run's single error line; asserts it stopped as a usage error with nothing measured."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-2000:]
    errors = [line for line in result.stderr.lines if line.startswith("ERROR")]
    assert len(errors) == 1, result.stderr.str()
    assert "INTERNALERROR" not in result.stderr.str() + result.stdout.str()
    assert "Traceback" not in result.stderr.str()
    assert not list(Path.cwd().glob("ran-*"))   # pytester runs in its own folder: no case ran
    return errors[0]


@pytest.mark.parametrize("option, value", [
    ("--bench-models", f"{LONG}/config.json"),
    ("--bench-report-dir", LONG),
    ("--bench-report-name", "r" * 240),   # fits alone; not with the report's ".<name>.json.<random>.tmp"
    ("--bench-profile", f"{LONG}.json"),
])
def test_a_path_too_long_is_a_usage_error(bench, option, value):
    line = usage_error(run(bench, option, value))
    assert option in line and "longer than the" in line and "this file system takes" in line


def test_a_path_longer_than_the_whole_path_limit_is_a_usage_error(bench):
    deep = "/".join(["b" * 200] * 25)   # every name fits, the whole is 5,000 bytes
    line = usage_error(run(bench, "--bench-report-dir", deep))
    assert "--bench-report-dir" in line and "the path is" in line


@pytest.mark.parametrize("args, words", [
    (("--bench-node-rank", "3", "--bench-nnodes", "2"), "--bench-node-rank: 3 is not below --bench-nnodes 2"),
    (("--bench-node-rank", "1"), "--bench-node-rank: 1 is not below --bench-nnodes 1"),
    (("--bench-nnodes", "2"), "--bench-nnodes 2 needs --bench-rdzv-endpoint"),
    (("--bench-nnodes", "2", "--bench-rdzv-endpoint", "node0:99999"), "--bench-rdzv-endpoint: 'node0:99999'"),
    (("--bench-nnodes", "2", "--bench-rdzv-endpoint", ":29500"), "is not host or host:port"),
])
def test_node_options_that_cannot_meet_are_a_usage_error(bench, args, words):
    assert words in usage_error(run(bench, *args))


def test_node_options_that_meet_run(bench):
    result = run(bench, "--bench-nnodes", "2", "--bench-node-rank", "1", "--bench-rdzv-endpoint", "node0:29500")
    assert result.ret == 0
    assert run(bench, "--bench-rdzv-endpoint", "node0").ret == 0   # torchrun's default port


def test_a_profile_nested_too_deep_stops_the_run_before_collection(bench):
    (bench.path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    line = usage_error(run(bench, "--bench-profile", "deep.json"))
    assert "--bench-profile" in line and "nested too deeply" in line


def test_a_profile_that_is_not_a_profile_stops_the_run(bench):
    (bench.path / "p.json").write_text(json.dumps({"gemm": "fast"}))
    assert "--bench-profile" in usage_error(run(bench, "--bench-profile", "p.json"))


def test_a_full_disk_after_an_earlier_run_keeps_its_files_and_ends_with_one_line(bench, monkeypatch):
    bench.makeconftest(FULL_DISK)
    assert run(bench).ret == 0
    reports = bench.path / "reports"
    before = {p: p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    assert {p.name for p in before} >= {"r.json", "r.rst"} and len(before) == 3   # and the run file
    for path in bench.path.glob("ran-*"):
        path.unlink()
    monkeypatch.setenv("DISK_FULL", "1")
    result = run(bench)
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED and "INTERNALERROR" not in out and "Traceback" not in out
    lines = [line for line in out.splitlines() if "cannot write the report" in line]
    assert len(lines) == 1 and "No space left on device" in lines[0], out[-3000:]
    assert [p.name for p in bench.path.glob("ran-*")] == ["ran-alpha"]   # stopped at the first failure
    assert {p: p.read_bytes() for p in reports.rglob("*") if p.is_file()} == before


def test_path_problem_units():
    assert option_checks.path_problem("reports/bench-h100-x8.json") is None
    assert "300 bytes" in option_checks.path_problem(f"/tmp/{LONG}/x")
    assert option_checks.path_problem("é" * 128) is not None   # 256 bytes in UTF-8: bytes count, not characters
