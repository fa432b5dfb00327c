"""OLMo 2, Granite, SmolLM3, OLMoE, PhiMoE and the multimodal configs (Gemma 3, Mistral 3,
Qwen2.5-VL) against transformers and accelerate on the CPU: parameter counts (meta device; the
multimodal ones: the ForConditionalGeneration model without its vision tower and projector),
device maps at 2 and 4 GPUs, one decoder layer's kernels against a CPU torch-profiler trace of a
tiny random model (two layers minus one), and the command line for each shipped config."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from estimator import Workload, estimate
from estimator.errors import EstimatorError
from estimator.model import ZOO_DIR, ModelSpec, load_model
from estimator.ops import forward_ops

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from test_placement import accelerate_placement, ours  # noqa: E402

pytestmark = pytest.mark.usefixtures("quiet_transformers")

TEXT = {"allenai/OLMo-2-1124-7B": "olmo2", "ibm-granite/granite-3.1-8b-instruct": "granite",
        "HuggingFaceTB/SmolLM3-3B": "smollm3", "allenai/OLMoE-1B-7B-0924": "olmoe",
        "microsoft/Phi-3.5-MoE-instruct": "phimoe"}
MULTIMODAL = {"google/gemma-3-4b-it": "gemma3_text", "mistralai/Mistral-Small-3.1-24B-Instruct-2503": "mistral",
              "Qwen/Qwen2.5-VL-7B-Instruct": "qwen2"}
VISION = ("vision", "visual", "multi_modal_projector")


def zoo_config(name: str) -> dict:
    return json.loads((ZOO_DIR / name / "config.json").read_text())


def hf_text_params(cfg: dict) -> int:
    """Parameters transformers builds from `cfg` on the meta device, a multimodal model's vision
    tower and projector left out (a tied weight once)."""
    conf = transformers.AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        try:
            model = transformers.AutoModelForCausalLM.from_config(conf)
        except ValueError:
            model = transformers.AutoModelForImageTextToText.from_config(conf)
    return sum(p.numel() for n, p in model.named_parameters() if not any(v in n for v in VISION))


@pytest.mark.parametrize("name", {**TEXT, **MULTIMODAL})
def test_shipped_config_counts_parameters_like_transformers(name):
    spec = load_model(name)
    assert spec.model_type == {**TEXT, **MULTIMODAL}[name]
    assert spec.param_count() == hf_text_params(zoo_config(name))


VARIANTS = [
    ("allenai/OLMo-2-1124-7B", dict(num_key_value_heads=8, attention_bias=True, num_hidden_layers=2)),
    ("ibm-granite/granite-3.1-8b-instruct", dict(tie_word_embeddings=False, mlp_bias=True, num_hidden_layers=2)),
    ("HuggingFaceTB/SmolLM3-3B", dict(no_rope_layers=None, no_rope_layer_interval=3, num_hidden_layers=5,
                                      tie_word_embeddings=False)),
    ("allenai/OLMoE-1B-7B-0924", dict(num_key_value_heads=4, num_experts=8, num_experts_per_tok=2,
                                      clip_qkv=8.0, num_hidden_layers=2)),
    ("microsoft/Phi-3.5-MoE-instruct", dict(attention_bias=False, lm_head_bias=False, num_local_experts=4,
                                            num_hidden_layers=2)),
]


@pytest.mark.parametrize("name, change", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_variant_counts_parameters_like_transformers(name, change):
    cfg = zoo_config(name) | change
    assert ModelSpec.from_hf_config(cfg).param_count() == hf_text_params(cfg)


@pytest.mark.parametrize("gpus", [2, 4])
@pytest.mark.parametrize("name", [n for n in {**TEXT, **MULTIMODAL} if n != "microsoft/Phi-3.5-MoE-instruct"])
def test_device_map_matches_accelerate(name, gpus):
    assert ours(name, gpus, 2, 80e9) == accelerate_placement(name, gpus, 2, 80e9)


def test_device_map_of_the_largest_matches_accelerate():
    name = "microsoft/Phi-3.5-MoE-instruct"   # 84 GB of bfloat16: the per-GPU limit binds at 2 GPUs
    assert ours(name, 2, 2, 80e9) == accelerate_placement(name, 2, 2, 80e9)


# ---- kernels of one layer, from a CPU trace --------------------------------------------------
def traced(model_type: str, layers: int) -> Counter:
    """aten calls of model(input_ids) on a tiny random model, float32, SDPA, eager experts."""
    from torch.profiler import ProfilerActivity, profile
    from estimator.families import tiny_config_kwargs
    conf = transformers.AutoConfig.for_model(**tiny_config_kwargs(model_type, layers))
    extra = {"experts_implementation": "eager"} if model_type in ("olmoe", "phimoe") else {}
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(conf, attn_implementation="sdpa", **extra).eval()
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(torch.randint(0, conf.vocab_size, (2, 8)))
    return Counter(ev.name.removeprefix("aten::") for ev in prof.events() if ev.name.startswith("aten::"))


def per_layer(model_type: str) -> Counter:
    one, two = traced(model_type, 1), traced(model_type, 2)
    return Counter({k: two[k] - one[k] for k in two if two[k] != one[k]})


def estimated_layer(model_type: str):
    from estimator.families import tiny_config_kwargs
    cfg = transformers.AutoConfig.for_model(**tiny_config_kwargs(model_type, 1)).to_dict()
    spec = ModelSpec.from_hf_config(cfg, name=f"tiny-{model_type}")
    spec = spec.arch.with_experts(spec, "eager")
    return [op.name for op in forward_ops(spec, 2, 8, 4, cuda=False).layer]


# per layer: rsqrt calls = RMSNorms; mm/addmm/bmm = GEMMs (CPU linear); the dense layers' counts
@pytest.mark.parametrize("model_type, norms", [("olmo2", 4), ("granite", 2), ("smollm3", 2)])
def test_dense_layer_norms_gemms_and_rotary_match_the_cpu_trace(model_type, norms):
    trace, ops = per_layer(model_type), estimated_layer(model_type)
    assert trace["rsqrt"] == norms == sum(n.endswith(".rsqrt") for n in ops)
    assert trace["linear"] == 7 == sum(n.endswith("_proj") for n in ops)
    assert trace["neg"] == 2 == sum(n.endswith(".neg") for n in ops)   # rotary on q and k
    assert trace["_scaled_dot_product_flash_attention_for_cpu"] == 1


def test_granite_multiplier_kernels_match_the_cpu_trace():
    """Two residual multipliers a layer (mul), the embedding multiplier and logits / s once."""
    ops = estimated_layer("granite")
    assert sum(n.endswith("residual_multiplier") for n in ops) == 2
    trace, llama = per_layer("granite"), per_layer("llama")
    assert trace["mul"] - llama["mul"] == 2
    whole = forward_ops(ModelSpec.from_hf_config(zoo_config("ibm-granite/granite-3.1-8b-instruct")), 1, 8, 2)
    assert [op.name for op in whole.pre[:2]] == ["embed_tokens", "embedding_multiplier"]
    assert whole.post[-1].name == "logits_scaling"


def test_smollm3_nope_layers_are_noted():
    est = estimate("HuggingFaceTB/SmolLM3-3B", "H100", Workload(batch=1, seq=128))
    assert any("9 of 36 layers are NoPE" in n for n in est.notes)


@pytest.mark.parametrize("model_type", ["olmoe", "phimoe"])
def test_moe_layer_gemms_and_norms_match_the_cpu_trace(model_type):
    trace, ops = per_layer(model_type), estimated_layer(model_type)
    experts_hit = sum(n == "expert_down" for n in ops)
    # attention q k v o and the router are linears; each expert hit two more
    assert trace["linear"] == 5 + 2 * experts_hit
    assert trace["rsqrt"] == sum(n.endswith(".rsqrt") for n in ops)   # OLMoE: 4 RMSNorms, PhiMoE: 0
    assert trace["native_layer_norm"] == (2 if model_type == "phimoe" else 0)
    if model_type == "phimoe":
        assert trace["softmax"] + trace["_softmax"] >= 2 and sum(n.endswith(".softmax") for n in ops) == 2


def test_phimoe_refuses_other_than_top_2():
    with pytest.raises(EstimatorError, match="sparsemixer router always picks 2"):
        ModelSpec.from_hf_config(zoo_config("microsoft/Phi-3.5-MoE-instruct") | dict(num_experts_per_tok=4))


# ---- multimodal configs ----------------------------------------------------------------------
@pytest.mark.parametrize("name", MULTIMODAL)
def test_multimodal_is_estimated_by_its_text_model_with_a_note(name):
    est = estimate(name, "H100", Workload(batch=1, seq=128))
    assert any("multimodal config: estimated as its text model" in n and "not counted" in n for n in est.notes)


def test_unknown_text_models_are_refused_in_one_line(monkeypatch):
    from estimator.families import multimodal
    cfg = dict(model_type="llama4", text_config=dict(model_type="llama4_text", hidden_size=64))
    monkeypatch.setitem(multimodal.TEXT_MODEL, "llama4", "llama5_text")   # llama4_text is supported now
    with pytest.raises(EstimatorError, match="llama4's text model llama5_text is not supported yet"):
        ModelSpec.from_hf_config(cfg)
    with pytest.raises(EstimatorError, match="needs a text_config object"):
        ModelSpec.from_hf_config(dict(model_type="mistral3"))


@pytest.mark.parametrize("name", [*TEXT, *MULTIMODAL])
def test_command_line_estimates_each_shipped_config(name):
    out = subprocess.run([sys.executable, "-m", "estimator", "estimate", "--model", name, "--device", "H100",
                          "--batch", "1", "--seq", "128"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert name in out.stdout
