"""Issue 11 regressions, estimator side: every bad config, profile, device file and output path
is exit 2 with one line (CLI) or a one-line EstimatorError (library), never a traceback and
never a silent estimate; JSON output is strict; the lookup memo stays bounded."""
from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import pytest

from estimator import EstimatorError, Workload, estimate
from estimator.__main__ import main
from estimator.device import DEVICES_DIR, ambiguity_note, get_device
from estimator.model import ZOO_DIR, load_model
from estimator.outpath import check_writable, check_writable_dir
from estimator.profile import PROFILE_DIR, load_profile_file

ROOT = Path(__file__).resolve().parents[1]
H100_PROFILE = PROFILE_DIR / "h100-sxm5-80gb.json"


def run_cli(*argv: str) -> tuple[int, str, str]:
    """main(argv) in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def assert_one_error_line(rc: int, err: str, *words: str) -> str:
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def write_json(path: Path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def zoo_config(name: str) -> dict:
    return json.loads((ZOO_DIR / name / "config.json").read_text())


# ---- configs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, field, value", [
    ("AICrossSim/clm-60m", "num_key_value_heads", -2),     # gave a plausible wrong estimate
    ("AICrossSim/clm-60m", "head_dim", "64"),              # TypeError
    ("AICrossSim/clm-60m", "head_dim", -64),
    ("facebook/opt-1.3b", "word_embed_proj_dim", -5),      # math domain error
    ("facebook/opt-1.3b", "enable_bias", "yes"),
    ("openai-community/gpt2", "n_inner", 3.5),
    ("openai-community/gpt2", "tie_word_embeddings", 1),
    ("Qwen/Qwen2.5-0.5B", "hidden_act", 7),
    ("AICrossSim/clm-60m", "use_cache", "false"),
    ("AICrossSim/clm-60m", "vocab_size", 2**80),
])
def test_bad_config_field_is_exit_2_naming_file_and_field(model, field, value, tmp_path):
    path = write_json(tmp_path / "config.json", zoo_config(model) | {field: value})
    rc, out, err = run_cli("estimate", "--model", path, "--device", "H100")
    assert_one_error_line(rc, err, path, field)
    assert out == ""


@pytest.mark.parametrize("model, changes, words", [
    ("AICrossSim/clm-60m", dict(hidden_size=100, num_attention_heads=6, num_key_value_heads=6, head_dim=None),
     ["hidden_size 100", "num_attention_heads 6"]),
    ("facebook/opt-1.3b", dict(hidden_size=2000, num_attention_heads=30), ["hidden_size", "divisible"]),
    ("openai-community/gpt2", dict(n_embd=770, n_head=12), ["n_embd", "n_head"]),
    ("AICrossSim/clm-60m", dict(num_key_value_heads=4), ["num_attention_heads 6", "num_key_value_heads 4"]),
])
def test_heads_that_do_not_divide_are_exit_2(model, changes, words, tmp_path):
    path = write_json(tmp_path / "config.json", zoo_config(model) | changes)
    rc, _, err = run_cli("estimate", "--model", path, "--device", "H100")
    assert_one_error_line(rc, err, *words)


def test_null_optional_fields_take_transformers_defaults():
    from estimator.model import ModelSpec
    cfg = zoo_config("mistralai/Mistral-7B-v0.1") | {"num_key_value_heads": None, "head_dim": None}
    spec = ModelSpec.from_hf_config(cfg, name="m")
    assert (spec.kv_heads, spec.head_dim) == (8, 128)


# ---- profiles -----------------------------------------------------------------------------------

def _profile() -> dict:
    return json.loads(H100_PROFILE.read_text())


@pytest.mark.parametrize("mutate, words", [
    (lambda p: [1, 2], ["JSON object", "list"]),                                        # AttributeError
    (lambda p: p | {"copy": [[b, 0] for b, _ in p["copy"]]}, ["copy[0]", "positive"]),  # math domain error
    (lambda p: p | {"gemm": {d: [[m, n, k, 0.0] for m, n, k, _ in pts] for d, pts in p["gemm"].items()}},
     ["gemm.", "time_us"]),                                                             # ZeroDivisionError
    (lambda p: p | {"sdpa": {"float16": []}}, ["sdpa"]),
    (lambda p: p | {"power": {**p["power"], "gemm_w": "700"}}, ["power.gemm_w"]),
    (lambda p: p | {"power": [1]}, ["power", "JSON object"]),
    (lambda p: p | {"host": {"opt": 3}}, ["host.opt"]),
    (lambda p: p | {"allreduce": {"two": p["allreduce"]["2"]}}, ["allreduce"]),
    (lambda p: p | {"copy": p["copy"][::-1]}, ["copy", "sorted"]),
    (lambda p: {k: v for k, v in p.items() if k != "copy"}, ["lacks 'copy'"]),
])
def test_bad_profile_is_exit_2_naming_file_and_entry(mutate, words, tmp_path):
    path = write_json(tmp_path / "p.json", mutate(_profile()))
    rc, out, err = run_cli("estimate", "--model", "facebook/opt-1.3b", "--device", "H100", "--profile", path)
    assert_one_error_line(rc, err, path, *words)
    with pytest.raises(EstimatorError) as exc:
        load_profile_file(path)
    assert "\n" not in str(exc.value)


def test_profile_without_power_estimates_with_energy_none(tmp_path):
    """Like the CPU profile calibrate writes: no power section, float32 grids only, negative
    fitted host intercepts. The estimate works; the table says n/a, the JSON null. (Its kind stays
    gpu: a profile of kind cpu is refused for a GPU device, issue 28.)"""
    raw = _profile()
    raw.pop("power")
    raw["gemm"] = {"float32": raw["gemm"]["float16"]}
    raw["sdpa"] = {"float32": raw["sdpa"]["float16"]}
    raw["host"]["llama"] = {"per_layer_us": 900.0, "fixed_us": -1500.0}
    raw["p2p"], raw["allreduce"] = [], {}
    path = write_json(tmp_path / "cpu.json", raw)
    rc, out, err = run_cli("estimate", "--model", "AICrossSim/clm-60m", "--device", "H100", "--profile", path)
    assert rc == 0, err
    assert "energy" in out and "n/a" in out
    rc, out, err = run_cli("estimate", "--model", "facebook/opt-1.3b", "--device", "H100", "--profile", path, "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["energy_j_per_token"] is None and d["runtime_ms"] > 0
    cpu = write_json(tmp_path / "cpu-kind.json", dict(raw, kind="cpu"))
    rc, out, err = run_cli("estimate", "--model", "AICrossSim/clm-60m", "--device", "H100", "--profile", cpu)
    assert rc == 2 and out == "" and "is a CPU calibration" in err and err.count("\n") == 1


# ---- device files -------------------------------------------------------------------------------

def test_device_json_path_as_documented(tmp_path):
    """A device file outside devices/ (any file name, any case of .json) estimates; before, the
    datasheet profile looked its key up again and answered 'unknown device'."""
    data = json.loads((DEVICES_DIR / "l40s.json").read_text())
    data["memory_gb"]["value"] = 96
    for name in ("gpu.json", "MY-GPU.JSON"):
        path = write_json(tmp_path / name, data)
        rc, out, err = run_cli("estimate", "--model", "facebook/opt-1.3b", "--device", path, "--json")
        assert rc == 0, err
        assert json.loads(out)["device"] == data["name"]
    dev = get_device(str(tmp_path / "gpu.json"))
    assert dev.memory_gb == 96 and get_device(dev.key) is dev
    shipped = get_device(str(DEVICES_DIR / "h100-sxm5-80gb.json"))
    assert shipped is get_device("H100")   # the shipped file itself keeps the shipped profile


def test_bad_device_file_is_exit_2(tmp_path):
    path = write_json(tmp_path / "gpu.json", [1])
    rc, _, err = run_cli("estimate", "--model", "facebook/opt-1.3b", "--device", path)
    assert_one_error_line(rc, err, "gpu.json", "JSON object")
    rc, _, err = run_cli("estimate", "--model", "facebook/opt-1.3b", "--device", str(tmp_path / "none.json"))
    assert_one_error_line(rc, err, "none.json")


# ---- strict JSON and sizes that overflow --------------------------------------------------------

def _strict(text: str):
    def reject(constant):
        raise AssertionError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=reject)


def test_json_is_strict_for_sizes_beyond_float_range():
    rc, out, err = run_cli("estimate", "--model", "facebook/opt-1.3b", "--device", "H100",
                           "--batch", str(10**300), "--json")
    assert rc == 0, err
    d = _strict(out)
    assert d["runtime_ms"] is None
    assert any("written as null" in note and "runtime_ms" in note for note in d["notes"])
    rc, out, err = run_cli("estimate", "--model", "facebook/opt-1.3b", "--device", "H100",
                           "--batch", str(10**330), "--json")
    assert_one_error_line(rc, err, "too large")
    assert out == ""


def test_json_of_a_normal_estimate_is_unchanged():
    rc, out, _ = run_cli("estimate", "--model", "facebook/opt-1.3b", "--device", "H100", "--json")
    d = _strict(out)
    est = estimate("facebook/opt-1.3b", "H100")
    # one note, from the library: "H100" picks the SXM5 part while a PCIe one exists
    assert d["runtime_ms"] == est.runtime_ms and d["notes"] == est.notes and ambiguity_note("H100") in est.notes
    assert all(math.isfinite(x) for x in d["memory_gb_per_gpu"])


# ---- output paths -------------------------------------------------------------------------------

def test_calibrate_out_unwritable_fails_before_calibrating(tmp_path, monkeypatch):
    import estimator.calibrate.run as run
    monkeypatch.setattr(run, "calibrate", lambda **kw: pytest.fail("calibrated before checking --out"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out in (str(blocker / "sub" / "p.json"), str(tmp_path)):
        rc, _, err = run_cli("calibrate", "--out", out)
        assert_one_error_line(rc, err, "profile")


def test_check_writable_names_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert check_writable(tmp_path / "a" / "b.json") == tmp_path / "a" / "b.json"
    assert not list((tmp_path / "a").iterdir())   # the probe leaves nothing behind
    with pytest.raises(EstimatorError, match="cannot write"):
        check_writable(blocker / "x.json")
    with pytest.raises(EstimatorError, match="is a file"):
        check_writable_dir(blocker, create=False)
    with pytest.raises(EstimatorError, match="cannot write"):
        check_writable_dir(blocker / "reports", create=False)
    assert check_writable_dir(tmp_path / "new" / "reports", create=False) and not (tmp_path / "new").exists()


def test_save_profile_is_atomic(tmp_path):
    from estimator.calibrate import save_profile
    path = save_profile({"a": 1}, tmp_path / "d" / "p.json")
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["p.json"]


# ---- memory of long sweeps ----------------------------------------------------------------------

def test_memo_is_bounded(monkeypatch):
    """The lookup memo drops its oldest entries past MEMO_MAX_ENTRIES (issue: 20,000 distinct
    estimates grew a process by 440 MB); results are the same with a tiny memo."""
    from estimator import profile as profile_module
    from estimator.profile import profile_for
    prof = profile_for(get_device("H100"))
    before = estimate("facebook/opt-1.3b", "H100", Workload(batch=3, seq=77)).runtime_ms
    monkeypatch.setattr(profile_module, "MEMO_MAX_ENTRIES", 50)
    for batch in range(1, 30):
        estimate("facebook/opt-1.3b", "H100", Workload(batch=batch, seq=77))
        assert len(prof._memo) <= 50
    prof.results.clear()   # priced again, not the cached whole estimate
    assert estimate("facebook/opt-1.3b", "H100", Workload(batch=3, seq=77)).runtime_ms == before
