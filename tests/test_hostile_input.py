"""Issue 20 regressions: inputs of every hostile kind (deep nesting, huge numbers, non-finite
values, wrong row shapes, paths that are files) are exit 2 with one line, a skip with the reason,
or a warning naming the file: never a traceback, an INTERNALERROR or a lost row."""
from __future__ import annotations

import json
import os
import stat
import warnings
from pathlib import Path

import pytest

from bench import results
from estimator import EstimatorError, Workload, estimate
from estimator.device import DEVICES_DIR, load_device_file
from estimator.jsonin import MAX_DEPTH, parse_json
from estimator.outpath import write_atomic

from test_bad_input import H100_PROFILE, assert_one_error_line, run_cli, zoo_config
from test_bench_safety import bench, cases, run  # noqa: F401 - the pytester fixture and helpers

pytest_plugins = ["pytester"]

DEEP = "[" * 100_000 + "]" * 100_000
JUST_DEEP = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)   # below the recursion limit: parses
H100_DEVICE = json.loads((DEVICES_DIR / "h100-sxm5-80gb.json").read_text())


def _nested_in(doc: dict, deep: str) -> str:
    return json.dumps(doc)[:-1] + ', "extra": ' + deep + "}"


# ---- configs, device files, profiles ------------------------------------------------------------

@pytest.mark.parametrize("deep", [DEEP, JUST_DEEP], ids=["100000-deep", "just-too-deep"])
@pytest.mark.parametrize("what", ["config", "device", "profile"])
def test_deep_nesting_is_one_line_exit_2(what, deep, tmp_path):
    doc = {"config": zoo_config("AICrossSim/clm-60m"), "device": H100_DEVICE,
           "profile": json.loads(H100_PROFILE.read_text())}[what]
    path = tmp_path / "f.json"
    path.write_text(_nested_in(doc, deep) if deep is JUST_DEEP else deep)
    args = {"config": ["--model", str(path), "--device", "H100"],
            "device": ["--model", "AICrossSim/clm-60m", "--device", str(path)],
            "profile": ["--model", "AICrossSim/clm-60m", "--device", "H100", "--profile", str(path)]}[what]
    rc, out, err = run_cli("estimate", *args)
    assert_one_error_line(rc, err, str(path), "nested")
    assert out == ""


@pytest.mark.parametrize("what", ["config", "device", "profile"])
def test_5000_digit_integer_is_one_line_exit_2(what, tmp_path):
    path = tmp_path / "f.json"
    if what == "profile":
        path.write_text(json.dumps(json.loads(H100_PROFILE.read_text()) | {"launch_us": "@@"})
                        .replace('"@@"', "1" + "0" * 5000))
        args = ["--model", "AICrossSim/clm-60m", "--device", "H100", "--profile", str(path)]
    elif what == "config":
        path.write_text(json.dumps(zoo_config("AICrossSim/clm-60m"))[:-1] + ', "hidden_size": 1' + "0" * 5000 + "}")
        args = ["--model", str(path), "--device", "H100"]
    else:
        path.write_text(json.dumps(H100_DEVICE).replace('"value": 132', '"value": 1' + "0" * 5000, 1))
        args = ["--model", "AICrossSim/clm-60m", "--device", str(path)]
    rc, _, err = run_cli("estimate", *args)
    line = assert_one_error_line(rc, err, str(path), "4300 digits")
    assert "set_int_max_str_digits" not in line


@pytest.mark.parametrize("field, value, words", [
    ("sm_count", "Infinity", ["Infinity"]),                       # math domain error
    ("memory_bandwidth_gb_s", "NaN", ["NaN"]),                    # was accepted: host time only
    ("l2_cache_mb", "-Infinity", ["Infinity"]),
    ("sm_count", "0.5", ["sm_count", "whole"]),                   # ZeroDivisionError
    ("pcie_generation", "4.5", ["pcie_generation", "whole"]),
    ("memory_gb", "1e300", ["memory_gb", "at most"]),
    ("tflops_float16", "1" + "0" * 400, ["tflops_float16", "at most"]),   # an int float() cannot take
])
def test_non_finite_or_absurd_device_number_is_one_line_exit_2(field, value, words, tmp_path):
    doc = json.loads(json.dumps(H100_DEVICE))
    doc[field]["value"] = "@@"
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(doc).replace('"@@"', value))
    rc, out, err = run_cli("estimate", "--model", "AICrossSim/clm-60m", "--device", str(path))
    assert_one_error_line(rc, err, *words)
    assert out == ""


@pytest.mark.parametrize("change, words", [
    ({"hidden_act": "foo_gelu"}, ["foo_gelu", "transformers"]),
    ({"rope_scaling": "linear"}, ["rope_scaling", "JSON object"]),
    ({"rope_parameters": [1, 2]}, ["rope_parameters", "JSON object"]),
])
def test_config_transformers_refuses_is_one_line_exit_2(change, words, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(zoo_config("AICrossSim/clm-60m") | change))
    rc, _, err = run_cli("estimate", "--model", str(path), "--device", "H100")
    assert_one_error_line(rc, err, str(path), *words)


def test_data_parallel_over_1000_gpus_on_one_machine_is_refused():
    with pytest.raises(EstimatorError, match="1000 GPUs on one machine"):
        estimate("AICrossSim/clm-60m", "H100", Workload(1000, 128, gpus=1000, parallel="data"))
    rc, _, err = run_cli("estimate", "--model", "AICrossSim/clm-60m", "--device", "H100", "--gpus", "1000",
                         "--parallel", "data", "--batch", "1000")
    assert_one_error_line(rc, err, "one machine")
    est = estimate("AICrossSim/clm-60m", "H100", Workload(64, 128, gpus=64, parallel="data", nodes=8))
    assert est.runtime_ms > 0                      # spread over nodes it is estimated


def test_shipped_files_still_load():
    for path in sorted(DEVICES_DIR.glob("*.json")):
        load_device_file(path)
    assert parse_json("[1, 2.5, {\"a\": null}]", "x") == [1, 2.5, {"a": None}]
    with pytest.raises(EstimatorError, match="NaN"):
        parse_json("[NaN]", "x", allow_constants=False)


def test_bench_refuses_what_transformers_refuses_before_building(tmp_path):
    pytest.importorskip("transformers")
    from bench import build
    for change, word in (({"hidden_act": "foo_gelu"}, "foo_gelu"), ({"rope_scaling": "linear"}, "rope")):
        (tmp_path / "config.json").write_text(json.dumps(zoo_config("AICrossSim/clm-60m") | change))
        problem = build.config_problem(str(tmp_path / "config.json"))
        assert problem and "transformers refuses" in problem and word in problem and "\n" not in problem
        with pytest.raises(pytest.skip.Exception, match="transformers refuses"):
            with build.built(str(tmp_path / "config.json"), "float32", "cpu"):
                pass
    assert build.config_problem("AICrossSim/clm-60m") is None


def test_bench_models_deep_config_is_a_usage_error_not_internalerror(bench):  # noqa: F811
    (bench.path / "deep.json").write_text(DEEP)
    result = bench.runpytest("-p", "no:hypothesispytest", "-p", "bench.plugin", "-p", "bench.conftest",
                             "--bench-models", str(bench.path / "deep.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text and "nested too deeply" in text


# ---- the result store ---------------------------------------------------------------------------

def _row(case: str, **kw) -> dict:
    return {"case_id": case, "status": "passed", "model": "m", "gpus": 1,
            "measured": {"runtime_ms": 100.0}, "estimated": {"runtime_ms": 101.0}} | kw


def test_legacy_report_beside_a_corrupt_run_file_keeps_its_rows(bench):  # noqa: F811
    reports = bench.path / "reports"
    (reports / "runs" / "r").mkdir(parents=True)
    (reports / "r.json").write_text(json.dumps({"cases": [_row("old")], "skipped": []}))
    (reports / "runs" / "r" / "20200101T000000000000-1.json").write_text("{not json")
    result = run(bench, "-k", "alpha", "-W", "always")
    assert result.ret == 0
    assert {"old", "alpha"} <= set(cases(bench))
    assert "20200101T000000000000-1.json" in result.stdout.str()       # the warning names the file
    assert (reports / "runs" / "r" / "20200101T000000000000-1.json").read_text() == "{not json"


def test_runs_path_that_is_a_file_stops_before_measuring(bench):  # noqa: F811
    (bench.path / "reports" / "runs").mkdir(parents=True)
    (bench.path / "reports" / "runs" / "r").write_text("")
    result = run(bench, "-k", "alpha")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "is a file" in text
    assert not list(bench.path.glob("ran-*"))


@pytest.mark.parametrize("rows", [
    [{"case_id": "bad", "measured": [1, 2]}], [{"case_id": ["x"]}], [{"case_id": "bad", "status": 3}],
    [{"case_id": "bad", "out_of_bounds": "runtime"}], [7, None], [{"case_id": "bad", "reason": ["x"]}],
], ids=["measured-list", "case-id-list", "status-int", "oob-text", "not-objects", "reason-list"])
def test_run_file_with_wrong_row_shape_never_stops_later_runs(bench, rows):  # noqa: F811
    folder = bench.path / "reports" / "runs" / "r"
    folder.mkdir(parents=True)
    bad = folder / "20200101T000000000000-1.json"
    bad.write_text(json.dumps({"run": "x", "rows": rows + [_row("good")]}))
    for _ in range(2):
        result = run(bench, "-k", "alpha", "-W", "always")
        assert result.ret == 0, result.stdout.str()[-2000:]
    assert (bench.path / "reports" / "r.rst").is_file()
    assert {"good", "alpha"} <= set(cases(bench)) and "bad" not in cases(bench)
    assert json.loads(bad.read_text())["rows"][-1]["case_id"] == "good"     # left as it was


@pytest.mark.parametrize("text", ["{broken", DEEP, "[1, 2]", '{"rows": 3}', '{"rows": [1' + "0" * 5000 + "]}"],
                         ids=["not-json", "deep", "list", "rows-int", "huge-int"])
def test_unreadable_run_file_is_skipped_with_a_warning_naming_it(tmp_path, text):
    (tmp_path / "a.json").write_text(text)
    results.write_run(tmp_path, "b", [_row("x")], None, {}, lambda d: d)
    seen: list[str] = []
    runs = results.load_runs(tmp_path, warn=seen.append)
    assert [run_id for run_id, _ in runs] == ["b"]
    assert len(seen) == 1 and str(tmp_path / "a.json") in seen[0]


def test_files_are_created_with_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        os.umask(0o002)
        write_atomic(tmp_path / "b.txt", "x")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o664
        (tmp_path / "a.txt").chmod(0o600)
        write_atomic(tmp_path / "a.txt", "y")               # a replaced file keeps its mode
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o600
        path = results.write_run(tmp_path / "runs", "r", [], None, {}, lambda d: d)
        assert stat.S_IMODE(path.stat().st_mode) == 0o664
    finally:
        os.umask(old)


# ---- the CPU case -------------------------------------------------------------------------------

def test_cpu_case_judges_stable_runs_against_their_spread_and_unstable_ones_not_at_all():
    from bench import cpu_case
    calls = []

    def check_bounds(row, bounds):
        calls.append((row, bounds))
        return {}

    steady = [0.150, 0.151, 0.149, 0.150, 0.152, 0.150, 0.149]
    cpu_case.judge(check_bounds, {"case_id": "c"}, cpu_case.Conditions([14.0] * 6, [14.5] * 7), steady)
    row, bounds = calls[-1]
    assert 0.5 < bounds["runtime_ms"] < 0.6 and "widened" in row["note"]
    loaded = cpu_case.Conditions([14.0] * 6, [7980.0] * 7)       # the probe 570x slower than calibrated
    assert "from calibration to measurement" in loaded.unstable(steady)
    with pytest.warns(UserWarning, match="not judged"):
        cpu_case.judge(check_bounds, {"case_id": "c"}, loaded, steady)
    row, bounds = calls[-1]
    assert bounds == {} and "unstable" in row["note"]
    jumpy = [0.1, 0.3, 0.12, 0.5, 0.2, 0.9, 0.15]
    assert "forward pass" in cpu_case.Conditions([14.0] * 6, [14.0] * 7).unstable(jumpy)


def test_cpu_case_probe_and_one_thread():
    torch = pytest.importorskip("torch")
    from bench import cpu_case
    before = torch.get_num_threads()
    with cpu_case.one_thread():
        assert torch.get_num_threads() == 1
        assert cpu_case.probe_us() > 0
    assert torch.get_num_threads() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cpu_case.Conditions().drift() == 0.0


def test_default_named_run_folder_that_is_a_file_loses_no_row(tmp_path):
    """The report name is known only once a case runs (bench-cpu, bench-h100-x8): a runs path
    that is a file then warns, and the report still holds the run's rows."""
    from bench.options import BenchConfig
    from bench.session import BenchSession
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "bench").write_text("")
    session = BenchSession(BenchConfig(report_dir=str(tmp_path)), machine=lambda: {})
    with pytest.warns(UserWarning, match="cannot write the run file"):
        session.record("t::a", _row("a"))
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert [c["case_id"] for c in doc["cases"]] == ["a"]
