"""bench.plugin end to end, through pytester runs of small benchmark-like test files."""
import io
import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

ROW_HELPER = '''
def make_row(case_id, runtime_est, gpus=1):
    measured = {"runtime_ms": 100.0, "memory_gb": 5.0, "energy_j_per_token": 0.01,
                "throughput_tokens_per_s": 163840.0, "memory_gb_per_gpu": [5.0]}
    estimated = {"runtime_ms": runtime_est, "memory_gb": 5.1, "energy_j_per_token": 0.01,
                 "throughput_tokens_per_s": 163840.0 * 100.0 / runtime_est,
                 "memory_gb_per_gpu": [5.1], "flops": 1.0}
    return {"case_id": case_id, "model": "facebook/opt-1.3b", "device": "H100 SXM5 80GB",
            "gpus": gpus, "parallel": "pipeline", "batch": 16, "seq": 1024,
            "dtype": "float16", "measured": measured, "estimated": estimated}
'''

BENCH_MODULE = ROW_HELPER + '''
import pytest

CASES = [
    pytest.param(105.0, 1, id="opt-1.3b-1gpu"),
    pytest.param(120.0, 4, id="opt-1.3b-4gpu"),
    pytest.param(100.0, 8, id="opt-1.3b-8gpu", marks=pytest.mark.skip(reason="needs 8 GPUs")),
    pytest.param(100.0, 2, id="opt-1.3b-2gpu"),
]

@pytest.mark.parametrize("runtime_est, gpus", CASES)
def test_case(runtime_est, gpus, request, bench_recorder, check_bounds):
    bench_recorder.default_name = "bench-test"
    if gpus == 2:
        pytest.skip("only 1 GPU here")
    row = make_row(request.node.callspec.id, runtime_est, gpus)
    bench_recorder.record(row)
    errors = check_bounds(row)
    assert errors["runtime_ms"] == pytest.approx(0.05)

def test_unrelated():
    pass
'''


def docutils_messages(text):
    core = pytest.importorskip("docutils.core")
    stream = io.StringIO()
    core.publish_doctree(text, settings_overrides={
        "report_level": 1, "halt_level": 5, "warning_stream": stream})
    return stream.getvalue()


@pytest.fixture
def bench(pytester, monkeypatch):
    """pytester whose runs (in-process and subprocess) can import bench from this repo."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.syspathinsert(ROOT)
    return pytester


def run(pytester, *args):
    return pytester.runpytest("-p", "bench.plugin", *args)


def load(path):
    return json.loads(Path(path).read_text())


def test_records_rows_and_writes_reports(bench):
    bench.makepyfile(test_bench=BENCH_MODULE)
    result = run(bench, "-rs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=1, skipped=2)
    # the bounds failure: one line per metric outside the bounds
    result.stdout.fnmatch_lines(["*opt-1.3b-4gpu: estimate outside bounds*",
                                 "*runtime_ms: +20.0% > 10.0%",
                                 "*throughput_tokens_per_s: -16.7% > 10.0%",
                                 "*benchmark report*", "*wrote *bench-test.json"])

    doc = load(bench.path / "reports" / "bench-test.json")
    assert doc["schema_version"] == 1
    assert doc["error_basis"] == "(estimated - measured) / measured"
    assert doc["throughput_unit"] == "tokens/s"
    for key in ("gpu", "gpu_count", "driver", "cpu", "hostname", "python", "torch",
                "transformers", "accelerate", "git_commit", "dirty", "date"):
        assert key in doc["machine"]
    assert doc["config"]["bounds"]["runtime_ms"] == 0.10

    cases = {c["case_id"]: c for c in doc["cases"]}
    assert list(cases) == ["opt-1.3b-1gpu", "opt-1.3b-4gpu"]
    ok, bad = cases["opt-1.3b-1gpu"], cases["opt-1.3b-4gpu"]
    assert ok["status"] == "passed" and ok["reason"] is None
    assert ok["nodeid"] == "test_bench.py::test_case[opt-1.3b-1gpu]"
    assert ok["error"]["runtime_ms"] == pytest.approx(0.05)
    assert ok["error"]["memory_gb"] == pytest.approx(0.02)
    assert ok["error"]["energy_j_per_token"] == pytest.approx(0.0)
    assert ok["estimated"]["flops"] == 1.0 and ok["measured"]["memory_gb_per_gpu"] == [5.0]
    assert bad["status"] == "failed"
    assert bad["error"]["runtime_ms"] == pytest.approx(0.20)
    assert bad["reason"] == "runtime_ms: +20.0% > 10.0%; throughput_tokens_per_s: -16.7% > 10.0%"
    assert bad["out_of_bounds"] == ["runtime_ms: +20.0% > 10.0%",
                                    "throughput_tokens_per_s: -16.7% > 10.0%"]

    skipped = {s["case_id"]: s for s in doc["skipped"]}
    assert skipped["opt-1.3b-8gpu"]["reason"] == "needs 8 GPUs"      # skipped at setup
    assert skipped["opt-1.3b-2gpu"]["reason"] == "only 1 GPU here"   # skipped in the test
    assert all(s["status"] == "skipped" for s in doc["skipped"])
    assert "test_unrelated" not in json.dumps(doc)

    rst = (bench.path / "reports" / "bench-test.rst").read_text()
    assert docutils_messages(rst) == ""
    assert "Single GPU" in rst and "H100 SXM5 80GB x 4" in rst
    assert "- opt-1.3b-4gpu: runtime_ms: +20.0% > 10.0%;" in rst
    assert "- opt-1.3b-8gpu: needs 8 GPUs" in rst


def test_ini_options_and_command_line_override(bench):
    bench.makeini("""
        [pytest]
        bench_gpus = 1,2
        bench_rounds = 7
        bench_dtype = bf16
        bound_runtime = 25%
        bench_report_dir = out
        bench_report_name = from-ini
    """)
    bench.makepyfile(test_cfg=ROW_HELPER + '''
import json
def test_cfg(bench_config, bench_recorder):
    with open("cfg.json", "w") as f:
        json.dump(bench_config.as_dict(), f)
    bench_recorder.default_name = "ignored-when-configured"
    bench_recorder.record(make_row("c1", 120.0))
''')
    assert run(bench).ret == 0
    cfg = load(bench.path / "cfg.json")
    assert cfg["gpus"] == [1, 2] and cfg["rounds"] == 7 and cfg["dtype"] == "bfloat16"
    assert cfg["bounds"] == {"runtime_ms": 0.25, "memory_gb": 0.05,
                             "energy_j_per_token": 0.15, "throughput_tokens_per_s": 0.10}
    assert cfg["models"][0] == "facebook/opt-1.3b" and len(cfg["models"]) == 6
    assert cfg["batch"] == [16] and cfg["seq"] == [1024] and cfg["parallel"] == ["pipeline", "data", "tensor"]
    assert cfg["warmup"] == 2 and cfg["energy_window_s"] == 1.0
    assert Path(cfg["report_dir"]) == bench.path / "out"
    assert (bench.path / "out" / "from-ini.json").exists()
    assert (bench.path / "out" / "from-ini.rst").exists()

    result = run(bench, "--bench-gpus", "4,8", "--bound-runtime", "0.3",
                 "--bench-report-name", "cli", "--bench-parallel", "tensor,data",
                 "--bench-report-dir", "cli-out", "-o", "bench_seq=512,2048")
    assert result.ret == 0
    cfg = load(bench.path / "cfg.json")
    assert cfg["gpus"] == [4, 8] and cfg["bounds"]["runtime_ms"] == 0.3
    assert cfg["rounds"] == 7  # still from the ini
    assert cfg["parallel"] == ["tensor", "data"] and cfg["seq"] == [512, 2048]
    assert cfg["report_name"] == "cli"
    assert (bench.path / "cli-out" / "cli.json").exists()


@pytest.mark.parametrize("args, ini, message", [
    (["--bench-gpus", "1,0"], "", "--bench-gpus: '0' is not a positive integer"),
    (["--bench-batch", "x"], "", "--bench-batch: 'x' is not a positive integer"),
    (["--bench-dtype", "float8"], "",
     "--bench-dtype: 'float8' is not one of auto, float16, bfloat16, float32"),
    (["--bench-parallel", "pipeline,expert"], "",
     "--bench-parallel: 'expert' is not one of pipeline, data, tensor"),
    (["--bound-runtime", "-0.1"], "",
     "--bound-runtime: '-0.1' is not a non-negative fraction (e.g. 0.1 or 10%)"),
    (["--bench-warmup", "-1"], "", "--bench-warmup: '-1' is not a non-negative integer"),
    (["--bench-energy-window-s", "0"], "",
     "--bench-energy-window-s: '0' is not a positive number"),
    (["--bench-report-name", "a/b"], "",
     "--bench-report-name: 'a/b' is not a plain file name*"),
    ([], "bench_rounds = 0", "bench_rounds (ini): '0' is not a positive integer"),
    (["--bench-rounds", "3"], "bench_rounds = 0", None),  # command line wins over a bad ini
])
def test_bad_option_value_is_a_usage_error(bench, args, ini, message):
    bench.makeini(f"[pytest]\n{ini}\n")
    bench.makepyfile("def test_x(): pass")
    result = run(bench, *args)
    if message is None:
        assert result.ret == 0
        return
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_nothing_written_without_a_recorded_row(bench):
    bench.makepyfile(ROW_HELPER + '''
import pytest
@pytest.mark.parametrize("n", [pytest.param(1, marks=pytest.mark.skip(reason="no GPU"))])
def test_case(n, bench_recorder):
    pass
def test_plain():
    pass
''')
    result = run(bench)
    assert result.ret == 0
    assert not (bench.path / "reports").exists()
    assert "benchmark report" not in result.stdout.str()


def test_first_default_name_wins(bench):
    bench.makepyfile(ROW_HELPER + '''
def test_a(bench_recorder):
    bench_recorder.default_name = "first-name"
    bench_recorder.record(make_row("a", 101.0))
def test_b(bench_recorder):
    bench_recorder.default_name = "second-name"
    assert bench_recorder.default_name == "first-name"
    bench_recorder.record(make_row("b", 101.0))
''')
    assert run(bench).ret == 0
    assert sorted(p.name for p in (bench.path / "reports").iterdir()) == [
        "first-name.json", "first-name.rst", "runs"]
    assert [p.parent.name for p in (bench.path / "reports" / "runs").glob("*/*.json")] == ["first-name"]
    doc = load(bench.path / "reports" / "first-name.json")
    assert [(c["case_id"], c["status"]) for c in doc["cases"]] == [("a", "passed"),
                                                                 ("b", "passed")]


def test_failure_after_recording_keeps_row_with_reason(bench):
    bench.makepyfile(ROW_HELPER + '''
def test_oom(bench_recorder):
    bench_recorder.record(make_row("oom", 101.0))
    raise RuntimeError("CUDA out of memory\\nsecond line")
''')
    assert run(bench).ret == 1
    doc = load(bench.path / "reports" / "bench.json")
    (case,) = doc["cases"]
    assert case["status"] == "failed"
    assert case["reason"] == "RuntimeError: CUDA out of memory"
    rst = (bench.path / "reports" / "bench.rst").read_text()
    assert "- oom: RuntimeError: CUDA out of memory" in rst


def test_interrupted_run_keeps_finished_cases(bench):
    bench.makepyfile(ROW_HELPER + '''
import os
def test_first(bench_recorder):
    bench_recorder.default_name = "bench-interrupted"
    bench_recorder.record(make_row("first", 101.0))
def test_second(bench_recorder):
    bench_recorder.record(make_row("second", 102.0))
    os._exit(1)
def test_third(bench_recorder):
    bench_recorder.record(make_row("third", 103.0))
''')
    result = bench.runpytest_subprocess("-p", "bench.plugin")
    assert result.ret == 1
    doc = load(bench.path / "reports" / "bench-interrupted.json")
    assert [(c["case_id"], c["status"]) for c in doc["cases"]] == [
        ("first", "passed"), ("second", "recorded")]
    rst = (bench.path / "reports" / "bench-interrupted.rst").read_text()
    assert docutils_messages(rst) == ""
    assert not list((bench.path / "reports").glob(".*.tmp"))


# -- recording happens once: check_bounds records, and does not write a recorded row again ------

def _session(tmp_path, monkeypatch):
    """A BenchSession writing to tmp_path/r.{rst,json}, with the list of files it writes."""
    from bench import session
    from bench.options import BenchConfig
    writes, real = [], session.report.write_atomic
    monkeypatch.setattr(session.report, "write_atomic",
                        lambda path, text: (writes.append(Path(path).name), real(path, text)))
    return session.BenchSession(BenchConfig(report_dir=tmp_path, report_name="r"),
                                machine=lambda: {"gpu": None, "gpu_count": 0}), writes


def _make_row(*args):
    namespace = {}
    exec(ROW_HELPER, namespace)
    return namespace["make_row"](*args)


def test_check_after_record_writes_once(tmp_path, monkeypatch):
    s, writes = _session(tmp_path, monkeypatch)
    s.record("t.py::a", _make_row("a", 105.0))
    assert writes == ["r.json", "r.rst"]
    s.check("t.py::a", _make_row("a", 105.0))
    assert writes == ["r.json", "r.rst"]  # updated in memory; the test's outcome writes it
    assert len(s.rows) == 1 and s.rows["t.py::a", "a"]["out_of_bounds"] == []
    s.check("t.py::b", _make_row("b", 105.0))  # check_bounds alone records (and writes) once
    assert writes == ["r.json", "r.rst"] * 2
    a, b = s.rows["t.py::a", "a"], s.rows["t.py::b", "b"]
    assert list(a) == list(b)  # the same stored row either way, key order included
    assert {k: v for k, v in a.items() if k not in ("case_id", "nodeid")} == \
           {k: v for k, v in b.items() if k not in ("case_id", "nodeid")}
    with pytest.raises(pytest.fail.Exception, match="estimate outside bounds"):
        s.check("t.py::a", _make_row("a", 130.0))
    assert writes == ["r.json", "r.rst"] * 2
    assert s.rows["t.py::a", "a"]["out_of_bounds"][0].startswith("runtime_ms: +30.0%")


def test_check_bounds_alone_records_the_row(bench):
    bench.makepyfile(test_once=ROW_HELPER + '''
import pytest
@pytest.mark.parametrize("est", [pytest.param(105.0, id="ok"), pytest.param(120.0, id="bad")])
def test_case(est, request, check_bounds):
    check_bounds(make_row(request.node.callspec.id, est))
''')
    assert run(bench).ret == pytest.ExitCode.TESTS_FAILED
    cases = {c["case_id"]: c for c in load(bench.path / "reports" / "bench.json")["cases"]}
    assert cases["ok"]["status"] == "passed" and cases["ok"]["out_of_bounds"] == []
    assert cases["bad"]["status"] == "failed"
    assert cases["bad"]["reason"] == "runtime_ms: +20.0% > 10.0%; throughput_tokens_per_s: -16.7% > 10.0%"
    keys = list(cases["ok"])
    assert keys.index("out_of_bounds") < keys.index("nodeid") < keys.index("status")  # as before
