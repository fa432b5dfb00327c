"""Quantized checkpoints (a config with quantization_config) are refused, naming the scheme:
never estimated as if their weights were 16-bit (issue 19). FP8 block-quantized weights (issue
24) are priced for the families that declare their FP8 modules (tests/test_fp8.py); the FP8
variants transformers cannot run that way (static activation scales) stay refused."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cases import cpu_case, modelled, spec_or_skip
from estimator import EstimatorError, estimate, load_model
from estimator.errors import UnmodelledConfig

ROOT = Path(__file__).resolve().parents[1]
ZOO = json.loads((ROOT / "estimator/zoo/AICrossSim/clm-60m/config.json").read_text())

SCHEMES = [
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"}, "'awq'", "4-bit"),
    ({"quant_method": "gptq", "bits": 4, "desc_act": False}, "'gptq'", "4-bit"),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, "'bitsandbytes'", ""),
    ({"load_in_8bit": True}, "'bitsandbytes'", ""),            # an old bitsandbytes config: no quant_method
    ({"quant_method": "fp8", "activation_scheme": "static"}, "'fp8'", ""),
    ({"quant_method": "compressed-tensors", "format": "float-quantized"}, "'compressed-tensors'", ""),
    ("something", "'unknown'", ""),
]


def _config(tmp_path: Path, quant) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(ZOO, quantization_config=quant)))
    return str(path)


@pytest.mark.parametrize("quant,method,bits", SCHEMES)
def test_quantized_config_is_refused_naming_the_scheme(tmp_path, quant, method, bits):
    path = _config(tmp_path, quant)
    with pytest.raises(UnmodelledConfig) as exc:
        load_model(path)
    msg = str(exc.value)
    assert isinstance(exc.value, EstimatorError) and "\n" not in msg
    assert msg.startswith(f"quantized configs are not modelled: quant_method {method}"), msg
    assert path in msg and (not bits or bits in msg)


def test_null_quantization_config_is_absent(tmp_path):
    est = estimate(load_model(_config(tmp_path, None)), "H100")
    assert est.runtime_ms > 0


def test_cli_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "estimator", "estimate", "--model", _config(tmp_path, SCHEMES[0][0]),
                        "--device", "H100"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "quant_method 'awq'" in lines[0], r.stderr


def test_bench_skips_a_quantized_case_with_the_reason(tmp_path):
    path = _config(tmp_path, SCHEMES[1][0])
    with pytest.raises(pytest.skip.Exception, match="quantized configs are not modelled: quant_method 'gptq'"):
        spec_or_skip(path)
    assert spec_or_skip("AICrossSim/clm-60m").layers == ZOO["num_hidden_layers"]
    assert modelled([path, "AICrossSim/clm-60m"]) == ["AICrossSim/clm-60m"]
    assert cpu_case([path, "AICrossSim/clm-60m"], "auto").model == "AICrossSim/clm-60m"
