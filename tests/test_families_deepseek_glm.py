"""DeepSeek-V3 / Kimi-K2 (deepseek_v3, multi-head latent attention), DeepSeek-V2 / V2-Lite
(deepseek_v2: the same attention, softmax routing) and GLM-4.5-Air (glm4_moe)
against transformers on the CPU: parameter counts and bfloat16 weight bytes of the shipped
configs cut to a few layers (a dense and an MoE layer kept) on the meta device, variants (no q
LoRA, attention bias, q/k norms), the bytes per token transformers' cache holds after a tiny
forward, and the command line for each shipped config."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from estimator import kv_cache
from estimator.errors import EstimatorError
from estimator.families import tiny_config_kwargs
from estimator.model import ZOO_DIR, ModelSpec, load_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("quiet_transformers")

ZOO = {"deepseek-ai/DeepSeek-V3": "deepseek_v3", "moonshotai/Kimi-K2-Instruct": "deepseek_v3",
       "zai-org/GLM-4.5-Air": "glm4_moe", "deepseek-ai/DeepSeek-V2-Lite": "deepseek_v2",
       "deepseek-ai/DeepSeek-V2": "deepseek_v2"}
LATENT = ("deepseek_v3", "deepseek_v2")


def zoo_config(name: str) -> dict:
    return json.loads((ZOO_DIR / name / "config.json").read_text())


def cut(cfg: dict) -> dict:
    """The config with its dense layers and one MoE layer."""
    return cfg | {"num_hidden_layers": cfg["first_k_dense_replace"] + 1}


def hf_model(cfg: dict):
    conf = transformers.AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(conf, dtype=torch.bfloat16)


VARIANTS = [
    ("deepseek-ai/DeepSeek-V3", {}),
    ("moonshotai/Kimi-K2-Instruct", {}),
    ("zai-org/GLM-4.5-Air", {}),
    ("deepseek-ai/DeepSeek-V3", dict(q_lora_rank=None, attention_bias=True, n_shared_experts=2)),
    ("zai-org/GLM-4.5-Air", dict(use_qk_norm=True, attention_bias=False, first_k_dense_replace=2)),
    ("deepseek-ai/DeepSeek-V2-Lite", {}),     # no q LoRA (q_proj), greedy routing
    ("deepseek-ai/DeepSeek-V2", {}),          # q LoRA, group_limited_greedy
    ("deepseek-ai/DeepSeek-V2-Lite", dict(attention_bias=True, mlp_bias=True, first_k_dense_replace=2)),
    ("deepseek-ai/DeepSeek-V2", dict(q_lora_rank=None, n_shared_experts=1)),
]


@pytest.mark.parametrize("name, change", VARIANTS, ids=[f"{v[0]}-{i}" for i, v in enumerate(VARIANTS)])
def test_parameters_and_weight_bytes_like_transformers(name, change):
    cfg = cut(zoo_config(name) | change)
    spec = ModelSpec.from_hf_config(cfg)
    assert spec.model_type == ZOO[name]
    kinds = {g.layer.mlp.kind for g in spec.layer_groups}
    assert kinds == {"dense", "experts+shared"}
    model = hf_model(cfg)
    params = sum(p.numel() for p in model.parameters())
    assert abs(spec.param_count() - params) <= 1e-3 * params, (spec.param_count(), params)
    # the router weight stays float32 (_keep_in_fp32_modules_strict), the rest bfloat16
    hf_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert abs(2 * spec.param_count() - hf_bytes) <= 1e-3 * hf_bytes


@pytest.mark.parametrize("name", ZOO)
def test_shipped_config_layers(name):
    spec = load_model(name)
    cfg = zoo_config(name)
    dense = cfg["first_k_dense_replace"]
    assert [k.mlp.kind for k in spec.layer_kinds] == ["dense"] * dense + ["experts+shared"] * (spec.layers - dense)
    latent = {k.attention.kind for k in spec.layer_kinds} == {"latent"}
    assert latent == (ZOO[name] in LATENT)


@pytest.mark.parametrize("model_type", ["deepseek_v3", "glm4_moe", "deepseek_v2"])
def test_cache_bytes_per_token_like_transformers(model_type):
    """What transformers' DynamicCache holds after a forward of a tiny model: the latent (kv_lora_rank
    + qk_rope_head_dim per token, one head) for MLA, K and V of the KV heads for GLM."""
    kw = tiny_config_kwargs(model_type, 2)
    conf = transformers.AutoConfig.for_model(**kw)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(conf).eval()
    batch, seq = 2, 7
    with torch.no_grad():
        out = model(torch.randint(0, 200, (batch, seq)), use_cache=True)
    cache = out.past_key_values
    spec = ModelSpec.from_hf_config(json.loads(conf.to_json_string()))
    for i, layer in enumerate(cache.layers):
        held = (layer.keys.numel() + layer.values.numel()) * layer.keys.element_size()
        assert held == batch * seq * kv_cache.cache_bytes_per_token(spec, spec.layer_kinds[i], 4), (i, held)


def test_fp8_config_is_priced_and_other_quantized_ones_refused_in_one_line():
    """The published DeepSeek-V3 checkpoint's FP8 (tests/test_fp8.py checks the bytes); GPTQ refused."""
    cfg = zoo_config("deepseek-ai/DeepSeek-V3")
    spec = ModelSpec.from_hf_config(cfg | {"quantization_config": {
        "activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}})
    assert spec.fp8 is not None and spec.weight_bytes(2) < 0.55 * 2 * spec.param_count()
    with pytest.raises(EstimatorError) as err:
        ModelSpec.from_hf_config(cfg | {"quantization_config": {"quant_method": "gptq", "bits": 4}})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ZOO)
def test_command_line_answers(name):
    run = subprocess.run([sys.executable, "-m", "estimator", "estimate", "--model", name, "--device", "H200",
                          "--gpus", "8"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "runtime" in run.stdout or "does not fit" in run.stdout.lower()


def test_mla_decode_step_expands_the_whole_latent_cache():
    """transformers 5.24 caches the latent and runs kv_b_proj over every cached token each step."""
    from estimator.decode import decode_ops
    spec = load_model("deepseek-ai/DeepSeek-V3")
    layer = spec.layer_kinds[0]
    assert kv_cache.cache_bytes_per_token(spec, layer, 2) == (512 + 64) * 2
    step = decode_ops(spec, 2, 1000, 2)
    kv_b = [op for g in step.layers for op in g.ops if op.name == "kv_b_proj"]
    assert kv_b and all(op.shape == (2 * 1000, 128 * (128 + 128), 512) for op in kv_b)
    o_proj = [op for g in step.layers for op in g.ops if op.name == "o_proj"]
    assert all(op.shape == (2, 7168, 128 * 128) for op in o_proj)


V2_TINY = [dict(), dict(q_lora_rank=24), dict(topk_method="greedy", n_group=1, topk_group=1)]


@pytest.mark.parametrize("change", V2_TINY, ids=["no-q-lora-group-limited", "q-lora", "greedy"])
def test_deepseek_v2_cache_after_generate_like_transformers(change):
    """A tiny deepseek_v2 generates on the CPU: every layer's DynamicCache holds the prompt and the
    generated tokens (all but the last), each as the latent k_nope (kv_lora_rank) and the shared
    rotary key (qk_rope_head_dim), one head: the tokens and bytes kv_cache says."""
    kw = tiny_config_kwargs("deepseek_v2", 3) | change
    conf = transformers.AutoConfig.for_model(**kw)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(conf).eval()
    batch, prompt, new = 2, 5, 4
    with torch.no_grad():
        out = model.generate(torch.randint(1, 200, (batch, prompt)), max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, return_dict_in_generate=True, pad_token_id=0)
    spec = ModelSpec.from_hf_config(json.loads(conf.to_json_string()))
    assert [k.mlp.kind for k in spec.layer_kinds] == ["dense", "experts+shared", "experts+shared"]
    context = prompt + new - 1
    for i, layer in enumerate(out.past_key_values.layers):
        kind = spec.layer_kinds[i]
        assert layer.keys.shape == (batch, 1, context, kw["kv_lora_rank"])
        assert layer.values.shape == (batch, 1, context, kw["qk_rope_head_dim"])
        held = (layer.keys.numel() + layer.values.numel()) * layer.keys.element_size()
        tokens = kv_cache.cached_tokens(kind, context)
        assert tokens == context and held == batch * tokens * kv_cache.cache_bytes_per_token(spec, kind, 4)


def test_deepseek_v2_router_and_rotary_kernels():
    """DeepseekV2TopkRouter: a float32 softmax, group masks only for group_limited_greedy, the
    top-k weights as they are (no gather, no renormalisation); the complex rotary; the decode
    step expands the whole latent cache through kv_b_proj (no q LoRA on V2-Lite: q_proj)."""
    from estimator.decode import decode_ops
    from estimator.ops import forward_ops
    lite, full = load_model("deepseek-ai/DeepSeek-V2-Lite"), load_model("deepseek-ai/DeepSeek-V2")
    names = lambda spec: [op.name for op in forward_ops(spec, 1, 16, 2).layers[-1].ops]   # noqa: E731
    for spec, limited in ((lite, False), (full, True)):
        ops = names(spec)
        assert "router_softmax" in ops and "router_sigmoid" not in ops and "gather_weights" not in ops[:ops.index("topk") + 1]
        assert ("group_max" in ops) == limited and "topk_sum" not in ops and "q_interleave" not in ops
        assert "q_rotary.complex_mul" in ops and "k_rotary.complex_mul" in ops
    assert "q_proj" in names(lite) and "q_a_proj" not in names(lite) and "q_b_proj" in names(full)
    assert kv_cache.cache_bytes_per_token(lite, lite.layer_kinds[0], 2) == (512 + 64) * 2
    step = decode_ops(lite, 2, 1000, 2)
    kv_b = [op for g in step.layers for op in g.ops if op.name == "kv_b_proj"]
    assert kv_b and all(op.shape == (2 * 1000, 16 * (128 + 128), 512) for op in kv_b)


def test_deepseek_v2_refuses_what_its_router_cannot_run():
    cfg = zoo_config("deepseek-ai/DeepSeek-V2")
    for change, text in ((dict(topk_method="noaux_tc"), "topk_method"), (dict(n_group=None), "n_group"),
                         (dict(topk_group=9), "topk_group"), (dict(num_experts_per_tok=None), "num_experts_per_tok")):
        with pytest.raises(EstimatorError, match=text):
            ModelSpec.from_hf_config(cfg | change)
