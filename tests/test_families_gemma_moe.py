"""Gemma 2, Gemma 3 text, Mixtral and Qwen3-MoE against transformers and accelerate on the CPU:
parameter counts (meta device), device maps at 2 and 4 GPUs, and the kernels of one decoder layer
in a torch-profiler trace of a tiny random model (per-layer count: two layers minus one)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pytest

from estimator import Workload, estimate
from estimator.errors import EstimatorError
from estimator.families.moe import MoEFields
from estimator.model import ZOO_DIR, ModelSpec, load_model
from estimator.ops import forward_ops

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from test_placement import accelerate_placement, ours  # noqa: E402

ZOO = {"google/gemma-2-2b": "gemma2", "google/gemma-3-1b-pt": "gemma3_text",
       "mistralai/Mixtral-8x7B-v0.1": "mixtral", "Qwen/Qwen3-30B-A3B": "qwen3_moe"}
# variants: other head / KV layouts, no soft-caps, another expert count, un-normalised top-k
VARIANTS = [
    ("google/gemma-2-2b", dict(num_key_value_heads=8, attn_logit_softcapping=None, head_dim=128, num_hidden_layers=4)),
    ("google/gemma-3-1b-pt", dict(num_attention_heads=8, num_key_value_heads=2, sliding_window_pattern=3,
                                  num_hidden_layers=7, tie_word_embeddings=False)),
    ("mistralai/Mixtral-8x7B-v0.1", dict(num_local_experts=4, num_experts_per_tok=1, num_hidden_layers=3)),
    ("Qwen/Qwen3-30B-A3B", dict(num_experts=16, num_experts_per_tok=2, norm_topk_prob=False, num_hidden_layers=3)),
]


def hf_params(cfg: dict) -> int:
    conf = transformers.AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(conf)
    return sum(p.numel() for p in model.parameters())   # a tied weight is listed once


def zoo_config(name: str) -> dict:
    return json.loads((ZOO_DIR / name / "config.json").read_text())


@pytest.mark.parametrize("name", ZOO)
def test_shipped_config_counts_parameters_like_transformers(name):
    spec = load_model(name)
    assert spec.model_type == ZOO[name]
    assert spec.param_count() == hf_params(zoo_config(name))


@pytest.mark.parametrize("name, change", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_variant_counts_parameters_like_transformers(name, change):
    cfg = zoo_config(name) | change
    assert ModelSpec.from_hf_config(cfg).param_count() == hf_params(cfg)


@pytest.mark.parametrize("gpus", [2, 4])
@pytest.mark.parametrize("name", ZOO)
def test_device_map_matches_accelerate(name, gpus):
    assert ours(name, gpus, 2, 80e9) == accelerate_placement(name, gpus, 2, 80e9)


# ---- kernels of one layer, from a CPU trace --------------------------------------------------
def traced_kernels(model_type: str, layers: int, batch: int, seq: int, experts: str = "eager") -> Counter:
    """aten calls of model(input_ids), by name."""
    from torch.profiler import ProfilerActivity, profile
    from estimator.families import tiny_config_kwargs
    conf = transformers.AutoConfig.for_model(**tiny_config_kwargs(model_type, layers))
    extra = {"experts_implementation": experts} if model_type in ("mixtral", "qwen3_moe") else {}
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(conf, dtype=torch.bfloat16, **extra).eval()
    ids = torch.randint(0, conf.vocab_size, (batch, seq))
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(ids)
    # every call by name: each op of CLASSES is called once per kernel (CPU mm may nest others)
    return Counter(ev.name.removeprefix("aten::") for ev in prof.events() if ev.name.startswith("aten::"))


# CPU op -> our kernel kinds; the CPU names these the same as CUDA (a GEMM is mm / bmm on both)
CLASSES = {"gemm": ("mm", "bmm", "addmm"), "sdpa": ("_scaled_dot_product_flash_attention_for_cpu",),
           "activation": ("silu", "gelu"), "tanh": ("tanh",), "topk": ("topk",), "nonzero": ("nonzero",),
           "index_add": ("index_add_",)}   # the CPU's index_add_ calls scatter_add_ inside: not counted


def our_classes(model_type: str, batch: int, seq: int) -> Counter:
    spec = ModelSpec.from_hf_config(__import__("estimator.families", fromlist=["x"]).tiny_config_kwargs(model_type, 2))
    spec = spec.arch.with_experts(spec, "eager")   # the loop the CPU trace runs
    layer = forward_ops(spec, batch, seq, 2).layers_in(1, 1)[0][0].ops   # the traced second layer
    out = Counter()
    for op in layer:
        if op.kind in ("gemm", "sdpa"):
            out[op.kind] += 1
        elif op.name == "act" or op.name.endswith(".act"):
            out["activation"] += 1
        elif "softcap.tanh" in op.name:
            out["tanh"] += 1
        elif op.name == "topk":
            out["topk"] += 1
        elif op.name in ("hit_nonzero", "where_nonzero"):
            out["nonzero"] += 1   # torch.where(mask) is nonzero on both
        elif op.name == "index_add":
            out["index_add"] += 1
    return out


@pytest.mark.parametrize("model_type", list(ZOO.values()))
def test_layer_kernels_match_a_cpu_trace(model_type):
    batch, seq = 2, 16   # 32 tokens x top-2 over 4 experts: every expert hit, as the model assumes
    one, two = traced_kernels(model_type, 1, batch, seq), traced_kernels(model_type, 2, batch, seq)
    per_layer = {k: two[k] - one[k] for k in two}
    traced = Counter({cls: sum(per_layer.get(n, 0) for n in names) for cls, names in CLASSES.items()})
    ours_ = our_classes(model_type, batch, seq)
    assert +traced == +ours_


def test_gemma2_runs_eager_attention_with_soft_capping():
    conf = transformers.AutoConfig.for_model(**__import__("estimator.families", fromlist=["x"]).tiny_config_kwargs("gemma2", 1))
    model = transformers.AutoModelForCausalLM.from_config(conf)
    assert model.config._attn_implementation == "eager"   # _supports_sdpa = False
    names = [op.name for op in forward_ops(load_model("google/gemma-2-2b"), 1, 8, 4).layers[0].ops]
    assert "sdpa" not in names and names.count("attn_softcap.tanh") == 1
    post = [op.name for op in forward_ops(load_model("google/gemma-2-2b"), 1, 8, 4).post]
    assert post[-4:] == ["lm_head", "final_softcap.div", "final_softcap.tanh", "final_softcap.mul"]


# ---- estimates ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO)
def test_estimates_on_h100(name):
    est = estimate(name, "H100")
    assert est.runtime_ms > 0 and est.memory_gb > 0 and est.params == load_model(name).param_count()
    moe = name in ("mistralai/Mixtral-8x7B-v0.1", "Qwen/Qwen3-30B-A3B")
    assert any("routing assumed near uniform" in n for n in est.notes) == moe


def test_moe_expert_loop_scales_with_experts_hit():
    spec = load_model("Qwen/Qwen3-30B-A3B")
    spec = spec.arch.with_experts(spec, "eager")
    full = forward_ops(spec, 16, 1024, 2).layer
    assert sum(op.name == "expert_down" for op in full) == 128
    assert next(op for op in full if op.name == "expert_down").shape[0] == 16 * 1024 * 8 // 128
    one = forward_ops(spec, 1, 1, 2).layer   # one token: top-8 experts hit, one row each
    assert sum(op.name == "expert_down" for op in one) == 8
    assert next(op for op in one if op.name == "expert_down").shape[0] == 1


def test_moe_loop_blocks_the_host():
    eager = Workload(batch=16, seq=1024, dtype="bfloat16", experts_implementation="eager")
    est = estimate("Qwen/Qwen3-30B-A3B", "H100", eager)
    dense = estimate(replace(load_model("Qwen/Qwen3-30B-A3B"),
                             family_fields=MoEFields(experts=8, top_k=8, norm_topk=True)), "H100", eager)
    assert est.runtime_ms > dense.runtime_ms


def test_default_experts_implementation_is_transformers_grouped_mm():
    est = estimate("Qwen/Qwen3-30B-A3B", "H200")
    assert est.workload["experts_implementation"] == "grouped_mm"
    assert any("experts_implementation='grouped_mm'" in n for n in est.notes)
    eager = estimate("Qwen/Qwen3-30B-A3B", "H200", Workload(dtype="bfloat16", experts_implementation="eager"))
    # measured on an H200: 1814 vs 281 ms at 8 x 1024. The op-level host model prices the eager
    # loop's host time from the tiny model's (8 experts): it does not grow with 128 experts yet
    # (pricing each expert's operations at the micro-benchmark costs overshot 1 x 128 by 7x), so
    # only the direction is held here; the recorded eager rows keep their gate allowances.
    assert eager.runtime_ms > est.runtime_ms
    assert "experts_implementation" not in estimate("facebook/opt-1.3b", "H200").workload


def test_generate_decodes_moe_with_batched_mm_on_a_gpu():
    spec = load_model("mistralai/Mixtral-8x7B-v0.1")
    spec = spec.arch.with_experts(spec, None)
    assert spec.arch.decode_spec(spec, cuda=True).arch.experts_implementation(spec.arch.decode_spec(spec, True)) == "batched_mm"
    assert spec.arch.decode_spec(spec, cuda=False) is spec
    # batched_mm gathers one expert weight per (token, expert) pair: 11.3 GB at 16 tokens, measured
    batched = estimate("mistralai/Mixtral-8x7B-v0.1", "H200",
                       Workload(batch=1, seq=16, dtype="bfloat16", experts_implementation="batched_mm"))
    grouped = estimate("mistralai/Mixtral-8x7B-v0.1", "H200", Workload(batch=1, seq=16, dtype="bfloat16"))
    assert 10.5 < batched.memory_gb - grouped.memory_gb < 12.0


def test_unknown_experts_implementation_is_one_line():
    with pytest.raises(EstimatorError, match="unknown experts implementation 'fast'"):
        Workload(experts_implementation="fast")


@pytest.mark.parametrize("change, message", [
    (dict(num_experts_per_tok=200), "exceeds num_experts"),
])
def test_unsupported_moe_variants_are_refused(change, message):
    with pytest.raises(EstimatorError, match=message):
        ModelSpec.from_hf_config(zoo_config("Qwen/Qwen3-30B-A3B") | change)


def test_gemma3_with_attention_softcap_is_refused():
    with pytest.raises(EstimatorError, match="attn_logit_softcapping"):
        ModelSpec.from_hf_config(zoo_config("google/gemma-3-1b-pt") | {"attn_logit_softcapping": 50.0})


# grouped_mm / batched_mm experts: the calls that set their cost, from a CPU trace of the tiny model
# (CPU's _grouped_mm loops over experts with mm inside, so GEMMs are compared as these calls)
EXPERT_CALLS = {"grouped_mm": ("_grouped_mm",), "bmm": ("bmm",), "sort": ("sort",), "histc": ("histc",),
                "cumsum": ("cumsum",), "topk": ("topk",), "activation": ("silu",),
                "repeat_interleave": ("repeat_interleave",), "nonzero": ("nonzero",), "index_add": ("index_add_",)}
OURS = {"experts_gate_up": "grouped_mm", "experts_down": "grouped_mm", "bmm_gate_up": "bmm", "bmm_down": "bmm",
        "histc": "histc", "offsets_cumsum": "cumsum", "topk": "topk", "act": "activation",
        "repeat_interleave": "repeat_interleave", "hit_nonzero": "nonzero", "where_nonzero": "nonzero",
        "index_add": "index_add"}


@pytest.mark.parametrize("experts", ["grouped_mm", "batched_mm"])
@pytest.mark.parametrize("model_type", ["mixtral", "qwen3_moe"])
def test_experts_implementation_kernels_match_a_cpu_trace(model_type, experts):
    one, two = traced_kernels(model_type, 1, 2, 16, experts), traced_kernels(model_type, 2, 2, 16, experts)
    per_layer = {k: two[k] - one[k] for k in two}
    traced = Counter({cls: sum(per_layer.get(n, 0) for n in names) for cls, names in EXPERT_CALLS.items()})
    spec = ModelSpec.from_hf_config(__import__("estimator.families", fromlist=["x"]).tiny_config_kwargs(model_type, 2))
    layer = forward_ops(spec.arch.with_experts(spec, experts), 2, 16, 2).layer
    ours_ = Counter(OURS[op.name] for op in layer if op.name in OURS)
    ours_["sort"] = 1 if any(op.name == "sort_ids" for op in layer) else 0   # one sort call, SORT_KERNELS kernels
    assert +traced == +ours_
