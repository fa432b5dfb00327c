"""gpt-oss and Llama 4 text: parameter counts and weight bytes against transformers' own models on
the meta device, cached tokens per layer against a tiny CPU generate, and the zoo estimates."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from estimator import EstimatorError, Workload, estimate
from estimator.kv_cache import cached_tokens
from estimator.model import ModelSpec, ZOO_DIR, load_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
GPT_OSS = ("openai/gpt-oss-20b", "openai/gpt-oss-120b")
LLAMA4 = ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "meta-llama/Llama-4-Maverick-17B-128E-Instruct")


def zoo(name: str) -> dict:
    return json.loads((ZOO_DIR / name / "config.json").read_text())


def cut(cfg: dict, layers: int) -> dict:
    """`cfg` with its first `layers` layers (every layer kind kept)."""
    out = {k: v for k, v in cfg.items() if k != "quantization_config"}
    text = out.get("text_config", out)
    text["num_hidden_layers"] = layers
    for key in ("layer_types", "no_rope_layers"):
        if isinstance(text.get(key), list):
            text[key] = text[key][:layers]
    return out


def hf_params(cfg: dict) -> int:
    config = transformers.AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, layers", [(GPT_OSS[0], 4), (GPT_OSS[1], 2)])
def test_gpt_oss_parameters_match_transformers(name, layers):
    cfg = cut(zoo(name), layers)
    spec = ModelSpec.from_hf_config(cfg)
    assert spec.param_count() == pytest.approx(hf_params(cfg), rel=1e-3)


def test_gpt_oss_layers_alternate_sliding_with_sinks():
    spec = load_model(GPT_OSS[0])
    kinds = spec.layer_kinds
    assert [k.attention.kind for k in kinds[:4]] == ["sliding", "full", "sliding", "full"]
    assert all(k.attention.sinks for k in kinds) and kinds[0].attention.window == 128


def test_gpt_oss_mxfp4_is_priced_as_bf16_and_noted():
    spec = load_model(GPT_OSS[0])
    est = estimate(GPT_OSS[0], "H200", Workload(batch=1, seq=128))
    assert any("mxfp4" in n and "bfloat16" in n for n in est.notes)
    # the sink softmax's price rests on one kernel profile, not on the machine's calibration: said
    from estimator.cost import ODD_ROW_SOFTMAX_FACTOR
    assert any(f"{ODD_ROW_SOFTMAX_FACTOR}x" in n and "kernel profile" in n for n in est.notes)
    cfg = cut(zoo(GPT_OSS[0]), spec.layers)
    config = transformers.AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    hf_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    assert est.to_dict()["memory_breakdown_gb"][0]["weights"] * 1e9 == pytest.approx(hf_bytes, rel=1e-3)


def test_other_quantized_configs_stay_refused():
    cfg = dict(zoo(GPT_OSS[0]), quantization_config={"quant_method": "fp8"})
    with pytest.raises(EstimatorError, match="quantized configs are not modelled"):
        ModelSpec.from_hf_config(cfg)
    llama = dict(model_type="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, vocab_size=256, quantization_config={"quant_method": "mxfp4"})
    with pytest.raises(EstimatorError, match="quantized configs are not modelled"):
        ModelSpec.from_hf_config(llama)


def tiny_cache_lengths(model_type: str, prompt: int, new: int, **extra) -> tuple[object, list[int]]:
    from estimator.families import tiny_config_kwargs
    kw = dict(tiny_config_kwargs(model_type, 4), **extra)
    config = transformers.AutoConfig.for_model(**kw)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    ids = torch.randint(3, kw.get("vocab_size", 256), (1, prompt))
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, return_dict_in_generate=True)
    cache = out.past_key_values
    return kw, [layer.keys.shape[-2] for layer in cache.layers]


def test_gpt_oss_cached_tokens_match_transformers():
    kw, lengths = tiny_cache_lengths("gpt_oss", 20, 6)
    spec = ModelSpec.from_hf_config(kw)
    context = 20 + 6 - 1   # the last generated token is not fed back
    assert lengths == [cached_tokens(k, context) for k in spec.layer_kinds]
    assert lengths[0] < lengths[1]   # the sliding layer keeps window - 1


@pytest.mark.parametrize("name", GPT_OSS)
def test_zoo_estimates_answer_on_h200(name):
    run = subprocess.run([sys.executable, "-m", "estimator", "estimate", "--model", name, "--device", "H200"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    text = run.stdout + run.stderr
    assert run.returncode == 0 and "runtime" in text or "does not fit" in text, text[-2000:]


@pytest.mark.parametrize("name, layers", [(LLAMA4[0], 4), (LLAMA4[1], 4)])
def test_llama4_parameters_match_transformers(name, layers):
    cfg = cut(zoo(name), layers)
    text = cfg.get("text_config", cfg)
    text = dict(text, model_type="llama4_text")
    if isinstance(text.get("moe_layers"), list):
        text["moe_layers"] = [i for i in text["moe_layers"] if i < layers]
    spec = ModelSpec.from_hf_config(cfg if "text_config" not in cfg else dict(cfg, text_config=text))
    kinds = {(k.attention.kind, k.attention.rope, k.mlp.kind) for k in spec.layer_kinds}
    assert ("full", False) in {k[:2] for k in kinds} and ("chunked", True) in {k[:2] for k in kinds}
    assert spec.param_count() == pytest.approx(hf_params(text), rel=1e-3)


def test_llama4_maverick_interleaves_dense_and_moe_layers():
    spec = load_model(LLAMA4[1])
    mlps = [k.mlp for k in spec.layer_kinds[:4]]
    assert [m.kind for m in mlps] == ["dense", "experts+shared", "dense", "experts+shared"]
    assert mlps[0].ffn == 16384 and spec.model_type == "llama4_text"
    est = estimate(LLAMA4[1], "H200", Workload(batch=1, seq=128))
    assert any("multimodal" in n for n in est.notes) and any("12 of 48 layers are NoPE" in n for n in est.notes)


def test_llama4_cached_tokens_match_transformers():
    kw, lengths = tiny_cache_lengths("llama4_text", 20, 6)
    spec = ModelSpec.from_hf_config(kw)
    context = 20 + 6 - 1
    assert lengths == [cached_tokens(k, context) for k in spec.layer_kinds]
    assert lengths[0] == 15 and lengths[3] == context   # a chunked layer keeps chunk - 1, the NoPE one all


@pytest.mark.parametrize("name", LLAMA4)
def test_llama4_zoo_estimates_answer_on_h200(name):
    test_zoo_estimates_answer_on_h200(name)
