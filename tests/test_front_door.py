"""Issue 27 regressions: the library checks its arguments' types, unbounded work is refused before
it starts, special files are refused by type, outputs are checked before any estimate and written
atomically, and silent mislabels became notes. Each case ends in one line with the right exit
status (2, or 130 for an interrupt), no traceback, and any old output file intact."""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from estimator import EstimatorError, Workload, estimate
from estimator import api, budget, sweep
from estimator.front_door import MAX_GPUS, MAX_LAYERS
from estimator.model import load_model
from estimator.sweep import SweepSpec

from test_bad_input import H100_PROFILE, assert_one_error_line, run_cli, write_json, zoo_config

ROOT = Path(__file__).resolve().parent.parent
SMALL = ("--model", "AICrossSim/clm-60m", "--device", "H100")


def cli(*argv: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """python -m estimator in a process of its own (exit statuses, real stdout / signals)."""
    return subprocess.run([sys.executable, "-m", "estimator", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kw)


@pytest.fixture
def no_estimates(monkeypatch):
    """Any estimate run fails the test: a refusal must come before the work."""
    def forbidden(*args, **kwargs):
        raise AssertionError("an estimate ran before the refusal")
    monkeypatch.setattr(sweep, "estimate", forbidden)
    monkeypatch.setattr(api, "forward_pass", forbidden)


# ---- the library's front door -------------------------------------------------------------------

@pytest.mark.parametrize("call, words", [
    (lambda: estimate(None, "H100"), ["model", "None"]),
    (lambda: estimate("facebook/opt-1.3b", None), ["device", "None"]),
    (lambda: estimate("facebook/opt-1.3b", "H100", {"batch": 4}), ["workload", "Workload", "dict"]),
    (lambda: estimate(42, "H100"), ["model", "int"]),
    (lambda: estimate("facebook/opt-1.3b", "H100", profile=3.5), ["profile", "float"]),
    (lambda: estimate("facebook/opt-1.3b", "H100", transfer_from=["H100"]), ["transfer_from", "list"]),
    (lambda: estimate("x" * 5000, "H100"), ["model", "characters"]),
], ids=["model-None", "device-None", "workload-dict", "model-int", "profile-float", "transfer-list", "model-5000"])
def test_wrong_argument_types_name_the_argument(call, words):
    with pytest.raises(EstimatorError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("kwargs, words", [
    (dict(tf32="no"), ["tf32", "True or False", "'no'"]),
    (dict(use_cache="false"), ["use_cache", "True or False"]),
    (dict(tf32=1), ["tf32", "int"]),
    (dict(gpus=2, nodes=2, parallel="tensor", network=None), ["network", "None"]),
    (dict(network="carrier pigeon"), ["unknown network", "carrier pigeon", "InfiniBand"]),
    (dict(parallel=3), ["parallel", "pipeline, data, tensor"]),
    (dict(parallel="Data"), ["unknown parallel mode 'Data'"]),
    (dict(dtype=None), ["dtype", "float16"]),
    (dict(dtype="float8_e4m3fn"), ["unknown dtype", "float8"]),
    (dict(batch=4.0), ["batch", "integer", "float"]),
    (dict(batch=True), ["batch", "integer", "bool"]),
    (dict(new_tokens="8"), ["new_tokens", "integer"]),
    (dict(experts_implementation="fast"), ["experts implementation", "grouped_mm"]),
    (dict(gpus=MAX_GPUS * 2, nodes=MAX_GPUS // 8, parallel="data"), ["gpus", f"{MAX_GPUS:,}"]),
])
def test_workload_checks_types_and_choices(kwargs, words):
    with pytest.raises(EstimatorError) as info:
        Workload(**kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_real_bools_and_known_network_still_accepted():
    w = Workload(tf32=True, use_cache=False, gpus=2, nodes=2, parallel="tensor", network="RoCE v2 400 GbE")
    assert w.tf32 is True and w.use_cache is False and w.network == "RoCE v2 400 GbE"


def test_absurd_layer_count_is_refused_before_any_work(no_estimates, tmp_path):
    with pytest.raises(EstimatorError, match=f"more than the {MAX_LAYERS:,}"):   # the spec itself refuses
        estimate(replace(load_model("AICrossSim/clm-60m"), layers=10**7), "H100", Workload(batch=1, seq=128, gpus=8))
    cfg = zoo_config("AICrossSim/clm-60m") | {"num_hidden_layers": 10**7}
    rc, out, err = run_cli("estimate", "--model", write_json(tmp_path / "config.json", cfg), "--device", "H100",
                           "--gpus", "8")
    assert_one_error_line(rc, err, "10,000,000 layers")
    assert out == ""


# ---- the work budget of sweeps and fits ---------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--batch", "1:10000", "--seq", "1:10000"], ["100,000,000 cases", "--max-cases"]),
    (["--device", "all", "--batch", "1:1000", "--seq", "1:1000"], ["cases", "--max-cases"]),
    (["--fit", "--batch", "1:10000"], ["fit", "estimates", "--max-cases"]),
    (["--max-cases", "2", "--batch", "1,2,3"], ["3 cases", "limit of 2"]),
    (["--model", ",,,"], ["--model", "names nothing"]),
    (["--device", ",,"], ["--device", "names nothing"]),
], ids=["1e8-cases", "all-devices", "fit", "max-cases", "no-model", "no-device"])
def test_sweep_beyond_its_budget_is_refused_before_estimating(no_estimates, args, words):
    argv = ["sweep", *SMALL, *args]
    if "--model" in args:
        argv = ["sweep", "--device", "H100", *args]
    elif "--device" in args:
        argv = ["sweep", "--model", "AICrossSim/clm-60m", *args]
    rc, out, err = run_cli(*argv)
    assert_one_error_line(rc, err, *words)
    assert out == ""


def test_sweep_states_its_case_count_and_max_cases_raises_the_limit():
    rc, out, err = run_cli("sweep", *SMALL, "--batch", "1,2,3", "--max-cases", "3", "--csv")
    assert rc == 0, err
    assert err.splitlines()[0] == "sweep: 3 cases"
    assert len(out.splitlines()) == 1 + 3


def test_case_count_matches_the_rows_a_sweep_gives():
    spec = SweepSpec(models=("AICrossSim/clm-60m", "AICrossSim/clm-60m"), devices=("H100", "A100"),
                     batches=(1, 2), gpus=(1, 2), parallels=("pipeline", "tensor"))
    assert budget.sweep_cases(spec) == len(sweep.run_sweep(spec)) == 2 * 2 * (1 + 2)


# ---- special and endless input files ------------------------------------------------------------

@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "device.json"   # .json: --device takes it as a device file
    os.mkfifo(path)
    return str(path)


@pytest.mark.parametrize("option", ["--profile", "--device", "--model"])
def test_a_fifo_is_refused_by_type_not_read(fifo, option):
    argv = {"--profile": [*SMALL, "--profile", fifo], "--device": ["--model", "AICrossSim/clm-60m", "--device", fifo],
            "--model": ["--model", fifo, "--device", "H100"]}[option]
    result = cli("estimate", *argv, timeout=60)   # a read of the FIFO would block: the timeout fails it
    assert_one_error_line(result.returncode, result.stderr, "FIFO")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_an_endless_device_file_is_refused_by_type():
    rc, out, err = run_cli("estimate", *SMALL, "--profile", "/dev/zero")
    assert_one_error_line(rc, err, "/dev/zero", "character device")


def test_an_oversize_input_is_refused_before_reading(tmp_path, monkeypatch):
    from estimator import jsonin
    monkeypatch.setattr(jsonin, "MAX_BYTES", 1000)
    big = tmp_path / "profile.json"
    big.write_text(H100_PROFILE.read_text())
    rc, out, err = run_cli("estimate", *SMALL, "--profile", str(big))
    assert_one_error_line(rc, err, "more than the 1,000")


def test_a_5000_character_model_path_is_one_line():
    result = cli("estimate", "--model", "m" * 5000, "--device", "H100")
    assert_one_error_line(result.returncode, result.stderr, "unknown model")


# ---- outputs: checked before the work, written atomically, failures in one line -----------------

@pytest.mark.parametrize("png, words", [("X.json", ["*.png"]), ("link.png", ["--out and --png"])])
def test_out_and_png_on_one_file_is_refused_and_the_file_kept(no_estimates, tmp_path, png, words):
    target = tmp_path / "X.json"
    target.write_text("old\n")
    (tmp_path / "link.png").symlink_to(target)   # a .png name for the same file
    rc, out, err = run_cli("sweep", *SMALL, "--batch", "1,2", "--out", str(target), "--plot", "memory",
                           "--png", str(tmp_path / png))
    assert_one_error_line(rc, err, *words)
    assert target.read_text() == "old\n"


@pytest.mark.parametrize("option, name, words", [
    ("--out", "rows.xlsx", ["unknown suffix '.xlsx'"]),
    ("--out", "blocker/rows.json", ["cannot write"]),
    ("--png", "plot.jpg", ["*.png"]),
])
def test_bad_output_paths_are_refused_before_estimating(no_estimates, tmp_path, option, name, words):
    (tmp_path / "blocker").write_text("a file, not a folder")
    extra = ["--plot", "memory"] if option == "--png" else []
    rc, out, err = run_cli("sweep", *SMALL, "--batch", "1,2", *extra, option, str(tmp_path / name))
    assert_one_error_line(rc, err, *words)


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # over the limit: EFBIG, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_for_out_is_one_line_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "rows.json"
    target.write_text("old\n")
    result = cli("sweep", *SMALL, "--batch", "1:40", "--out", str(target), preexec_fn=_file_size_limit(2000))
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 2 and lines[0] == "sweep: 40 cases", result.stderr
    assert lines[1].startswith("error: cannot write sweep output") and "File too large" in lines[1], lines[1]
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.json"]   # no temporary file left


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("json_flag", [["--json"], []], ids=["json", "text"])
def test_stdout_on_a_full_device_is_one_line(json_flag):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "estimator", "estimate", *SMALL, *json_flag], cwd=ROOT,
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert_one_error_line(result.returncode, result.stderr, "cannot write the output", "No space left")


def test_a_closed_pipe_is_one_line():
    proc = subprocess.Popen([sys.executable, "-m", "estimator", "sweep", *SMALL, "--batch", "1:300"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()   # the reader went away before anything was written
    err = proc.stderr.read()
    rc = proc.wait(timeout=120)
    lines = err.splitlines()
    assert rc == 2 and lines[-1].startswith("error: cannot write the output") and "Traceback" not in err, err


def test_an_interrupted_sweep_is_one_line_exit_130_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "rows.csv"
    target.write_text("old\n")
    # Ctrl-C at a terminal reaches a process whose SIGINT is at its default; a suite started in the
    # background (`cmd &` in a script, nohup) inherits SIGINT ignored, and so would this child, which
    # then ran all its cases (busy_run.py, 2026-12-03): its disposition is reset to the default
    proc = subprocess.Popen([sys.executable, "-m", "estimator", "sweep", *SMALL, "--batch", "1:1000",
                             "--seq", "1:100", "--out", str(target)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stderr.readline()     # said before the first estimate
    assert first == "sweep: 100,000 cases\n"
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    rc = proc.wait(timeout=120)
    assert rc == 130 and rest == "error: interrupted\n", rest
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


def test_write_output_turns_os_errors_into_one_line(tmp_path, monkeypatch):
    from estimator import outpath

    def efbig(path, data):
        raise OSError(errno.EFBIG, "File too large")
    monkeypatch.setattr(outpath, "write_atomic", efbig)
    with pytest.raises(EstimatorError, match="cannot write plot .*: File too large"):
        outpath.write_output(tmp_path / "p.png", b"png", "plot")


# ---- notes instead of silence -------------------------------------------------------------------

def test_a_config_dtype_not_priced_is_noted_with_the_dtype_priced(tmp_path):
    cfg = zoo_config("AICrossSim/clm-60m") | {"torch_dtype": "float8_e4m3fn"}
    rc, out, err = run_cli("estimate", "--model", write_json(tmp_path / "config.json", cfg), "--device", "H100",
                           "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["workload"]["dtype"] == "float16"
    assert any("float8_e4m3fn" in n and "priced as float16" in n for n in d["notes"])
    plain = estimate("AICrossSim/clm-60m", "H100")
    assert not any("torch_dtype" in n for n in plain.notes)


def test_a_cpu_profile_for_a_gpu_is_refused(tmp_path):
    raw = json.loads(H100_PROFILE.read_text()) | {"kind": "cpu", "device_name": "Test Xeon"}
    path = write_json(tmp_path / "cpu.json", raw)
    with pytest.raises(EstimatorError, match="(?i)cpu"):
        estimate("AICrossSim/clm-60m", "H100", profile=path)
    assert estimate("AICrossSim/clm-60m", "H100").runtime_ms > 0


def test_one_new_token_has_no_tpot():
    est = estimate("AICrossSim/clm-60m", "H100", Workload(batch=1, seq=64, new_tokens=1))
    assert est.tpot_ms is None and est.tpot_ms_range is None and est.ttft_ms > 0
    assert estimate("AICrossSim/clm-60m", "H100", Workload(batch=1, seq=64, new_tokens=2)).tpot_ms > 0
    rc, out, err = run_cli("estimate", *SMALL, "--batch", "1", "--seq", "64", "--new-tokens", "1", "--json")
    assert rc == 0 and json.loads(out)["tpot_ms"] is None
    rc, out, err = run_cli("estimate", *SMALL, "--batch", "1", "--seq", "64", "--new-tokens", "1")
    assert rc == 0 and any(line.startswith("time per output token") and "n/a" in line for line in out.splitlines())


def test_an_interrupt_right_after_the_temporary_file_is_made_leaves_nothing(tmp_path, monkeypatch):
    """The window a fresh-clone CI run hit: the Ctrl-C landed between the temporary file's
    creation and the code that removes it on failure (inside tempfile.mkstemp)."""
    from estimator import outpath
    target = tmp_path / "rows.csv"
    target.write_text("old\n")

    def interrupted(fd, mode):
        raise KeyboardInterrupt
    monkeypatch.setattr(outpath.os, "fchmod", interrupted)
    with pytest.raises(KeyboardInterrupt):
        outpath.write_atomic_stream(target, lambda h: h.write("new\n"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"] and target.read_text() == "old\n"
