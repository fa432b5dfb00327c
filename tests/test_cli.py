"""The CLI contract: python -m estimator estimate/devices/models, JSON keys, bad input -> exit 2 + one line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROFILE = str(ROOT / "tests" / "data" / "synthetic-profile.json")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "estimator", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_estimate_json_has_the_contract_keys():
    r = cli("estimate", "--model", "facebook/opt-1.3b", "--device", "H100", "--gpus", "2", "--json", "--profile", PROFILE)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("runtime_ms", "memory_gb", "memory_gb_per_gpu", "energy_j_per_token", "throughput_tokens_per_s"):
        assert key in d
    assert len(d["memory_gb_per_gpu"]) == 2 and d["memory_gb"] == max(d["memory_gb_per_gpu"])
    assert d["throughput_tokens_per_s"] == pytest.approx(16 * 1024 / (d["runtime_ms"] / 1e3))
    assert d["workload"]["dtype"] == "float16"  # the config's own dtype


def test_estimate_table_shows_breakdown():
    r = cli("estimate", "--model", "AICrossSim/clm-60m", "--device", "NVIDIA H100 80GB HBM3", "--profile", PROFILE)
    assert r.returncode == 0, r.stderr
    for word in ("runtime", "memory per GPU", "lm head", "mlp", "attention", "bound"):
        assert word in r.stdout


def test_devices_and_models_list_everything():
    devices = cli("devices").stdout
    for name in ("RTX A5000", "RTX A6000", "H100 SXM5 80GB", "H200", "L40S", "RTX 4090"):
        assert name in devices
    models = cli("models").stdout
    for name in ("facebook/opt-1.3b", "facebook/opt-6.7b", "AICrossSim/clm-60m", "AICrossSim/clm-1.1b"):
        assert name in models


@pytest.mark.parametrize("args, words", [
    (["--model", "facebook/opt-13b", "--device", "H100"], ["unknown model", "opt-1.3b"]),
    (["--model", "facebook/opt-1.3b", "--device", "H10"], ["unknown device", "H100"]),
    (["--model", "facebook/opt-1.3b", "--device", "H100", "--dtype", "int8"], ["unknown dtype"]),
    (["--model", "facebook/opt-1.3b", "--device", "H100", "--batch", "0"], ["batch"]),
    (["--model", "facebook/opt-1.3b", "--device", "H100", "--seq", "-5"], ["seq"]),
    (["--model", "facebook/opt-1.3b", "--device", "H100", "--seq", "4096"], ["exceeds", "2048"]),
    (["--model", "facebook/opt-1.3b", "--device", "H100", "--batch", "x"], ["invalid int"]),
    (["--model", "facebook/opt-1.3b", "--device", "H100", "--gpus", "3", "--parallel", "tensor"], ["tensor", "divisible"]),
    (["--model", "facebook/opt-1.3b", "--device", "H100", "--gpus", "32", "--parallel", "data"], ["data", "batch"]),
    (["--model", "AICrossSim/clm-60m", "--device", "H100", "--gpus", "64"], ["pipeline", "layers"]),
    (["--model", "facebook/opt-1.3b", "--device", "H100", "--parallel", "expert"], ["parallel"]),
])
def test_bad_input_exits_2_with_one_line(args, words):
    r = cli("estimate", *args, "--profile", PROFILE)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0]
    assert "Traceback" not in r.stderr


def test_malformed_and_unsupported_configs(tmp_path):
    bad_json = tmp_path / "bad" / "config.json"
    bad_json.parent.mkdir()
    bad_json.write_text("{not json")
    unsupported = tmp_path / "t5.json"
    unsupported.write_text(json.dumps({"model_type": "t5", "d_model": 512}))
    missing = tmp_path / "llama.json"
    missing.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    for path, word in ((bad_json.parent, "malformed config"), (unsupported, "unsupported model_type"),
                       (missing, "malformed config")):
        r = cli("estimate", "--model", str(path), "--device", "H100", "--profile", PROFILE)
        assert r.returncode == 2 and word in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_model_that_does_not_fit_still_gets_an_estimate():
    r = cli("estimate", "--model", "mistralai/Mistral-7B-v0.1", "--device", "L4", "--dtype", "float32",
            "--json", "--profile", PROFILE)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["fits"] is False and "does not fit" in d["notes"][0]


def test_transfer_from_estimates_a_calibrated_device_from_another_calibration():
    own = json.loads(cli("estimate", "--model", "opt-1.3b", "--device", "H200", "--json").stdout)
    moved = cli("estimate", "--model", "opt-1.3b", "--device", "H200", "--transfer-from", "H100", "--json")
    assert moved.returncode == 0, moved.stderr
    d = json.loads(moved.stdout)
    assert own["profile"].endswith("h200-sxm-141gb.json")
    assert d["profile"].startswith("transfer from h100-sxm5-80gb to h200-sxm-141gb")
    assert d["runtime_ms"] != own["runtime_ms"] and d["memory_gb"] == own["memory_gb"]
    bad = cli("estimate", "--model", "opt-1.3b", "--device", "H200", "--transfer-from", "RTX A5000")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "no calibration of rtx-a5000 to transfer from" in bad.stderr
