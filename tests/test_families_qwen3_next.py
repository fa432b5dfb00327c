"""Qwen3-Next (model_type qwen3_next): parameter counts and weight bytes against transformers' own
model on the meta device, the cache (K/V of the full-attention layers, the fixed conv + recurrent
state of the Gated DeltaNet layers) against a tiny CPU generate, the linear layers' kernels (the
chunk loop of torch_chunk_gated_delta_rule, the recurrent decode step), and the zoo estimates."""
from __future__ import annotations

import dataclasses
import json

import pytest

from estimator import EstimatorError, Workload, estimate, memory
from estimator.decode import decode_ops
from estimator.families import tiny_config_kwargs
from estimator.kv_cache import cache_bytes_per_token, state_bytes
from estimator.layer_config import linear_attention
from estimator.layers import Attention, LayerSpec
from estimator.model import ModelSpec, ZOO_DIR, load_model
from estimator.ops import forward_ops

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

NAME = "Qwen/Qwen3-Next-80B-A3B-Instruct"
PIPE = dict(gpus=2, parallel="pipeline")   # 159 GB of bf16 weights: two H200s


def zoo() -> dict:
    return json.loads((ZOO_DIR / NAME / "config.json").read_text())


def hf_model(cfg: dict, dtype=None):
    config = transformers.AutoConfig.for_model(**cfg)
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config, **({"dtype": dtype} if dtype else {}))


def linear_ops(ops) -> list:
    return [op for op in ops if op.name.startswith("linear_attn.")]


def test_zoo_layers_alternate_three_linear_one_full():
    spec = load_model(NAME)
    kinds = [k.attention.kind for k in spec.layer_kinds]
    assert kinds[:4] == ["linear", "linear", "linear", "full"] and kinds.count("linear") == 36
    assert {k.mlp.kind for k in spec.layer_kinds} == {"experts+shared"}
    m = spec.layer_kinds[0].attention.linear
    assert (m.key_heads, m.value_heads, m.key_head_dim, m.value_head_dim, m.conv_kernel) == (16, 32, 128, 128, 4)


@pytest.mark.parametrize("extra", [{}, {"mlp_only_layers": [1]}, {"attention_bias": True},
                                   {"layer_types": ["full_attention", "linear_attention"] * 2}])
def test_tiny_parameters_match_transformers(extra):
    cfg = dict(tiny_config_kwargs("qwen3_next", 4), **extra)
    spec = ModelSpec.from_hf_config(cfg)
    assert spec.param_count() == sum(p.numel() for p in hf_model(cfg).parameters())


def test_zoo_parameters_and_weight_bytes_match_transformers():
    """The whole 48-layer model on the meta device: parameters exact, bf16 weight bytes (with the
    rotary buffers) within 0.1 %."""
    spec = load_model(NAME)
    model = hf_model(zoo(), torch.bfloat16)
    assert spec.param_count() == sum(p.numel() for p in model.parameters()) == 79_674_391_296
    est = estimate(NAME, "H200", Workload(batch=1, seq=128, dtype="bfloat16", **PIPE))
    hf_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    weights = sum(g["weights"] for g in est.to_dict()["memory_breakdown_gb"]) * 1e9
    assert weights == pytest.approx(hf_bytes, rel=1e-3)


@pytest.mark.parametrize("dtype, e", [(torch.float32, 4), (torch.bfloat16, 2)])
def test_cache_bytes_match_a_tiny_generate(dtype, e):
    """transformers' cache after generate, layer by layer: K/V of the full layers grow with the
    context; the linear layers hold a conv state (model dtype) and a float32 recurrent state of
    the same size at every prompt length (one chunk and two)."""
    kw = dict(tiny_config_kwargs("qwen3_next", 4), experts_implementation="grouped_mm")
    spec = ModelSpec.from_hf_config(kw)
    seen = []
    for prompt in (20, 100):
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**kw)).to(dtype).eval()
        ids = torch.randint(3, 256, (2, prompt))
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=6, min_new_tokens=6, do_sample=False, return_dict_in_generate=True)
        real = []
        for layer in out.past_key_values.layers:
            tensors = [t for t in (getattr(layer, "keys", None), getattr(layer, "values", None)) if isinstance(t, torch.Tensor)]
            for states in (getattr(layer, "conv_states", None) or {}, getattr(layer, "recurrent_states", None) or {}):
                tensors += [t for t in states.values() if t is not None]
            real.append(sum(t.numel() * t.element_size() for t in tensors))
        context = prompt + 6 - 1   # the last generated token is not fed back
        assert real == [memory.kv_cache_bytes(spec, 2, context, e, i, 1, step=1) for i in range(4)], prompt
        assert real[:3] == [2 * state_bytes(spec, spec.layer_kinds[0], e)] * 3
        seen.append(real)
    assert seen[0][:3] == seen[1][:3] and seen[0][3] < seen[1][3]   # fixed state, growing K/V
    linear = spec.layer_kinds[0]
    assert cache_bytes_per_token(spec, linear, e) == 0


def test_zoo_state_is_two_mib_per_sequence_and_layer():
    spec = load_model(NAME)
    linear = spec.layer_kinds[0]
    # conv: (2 x 16 x 128 + 32 x 128) channels x 4 taps in bf16; recurrent: 32 x 128 x 128 float32
    assert state_bytes(spec, linear, 2) == 8192 * 4 * 2 + 32 * 128 * 128 * 4
    grow = (memory.kv_cache_bytes(spec, 1, 2000, 2, 0, 48) - memory.kv_cache_bytes(spec, 1, 1000, 2, 0, 48)) / 1000
    assert grow == 12 * cache_bytes_per_token(spec, spec.layer_kinds[3], 2) == 12 * 2 * 2 * 256 * 2


def test_chunk_loop_grows_with_seq_over_64():
    """torch_chunk_gated_delta_rule's Python loop: nine kernels per chunk of 64 tokens."""
    spec = load_model(NAME)
    counts = {s: len(linear_ops(forward_ops(spec, 1, s, 2).layers[0].ops)) for s in (64, 128, 640, 641)}
    assert counts[128] - counts[64] == 9 and counts[640] - counts[64] == 81
    assert counts[641] - counts[640] == 9 + 5   # one more chunk, and the pads now fill + copy


def test_decode_runs_the_recurrent_step_over_the_state():
    spec = load_model(NAME)
    step = decode_ops(spec, 4, 1000, 2)
    linear = [g for g in step.layers if g.group.layer.attention.kind == "linear"][0]
    ops = linear_ops(linear.ops)
    names = [op.name for op in ops]
    assert not any(".chunk." in n or "solve" in n for n in names)
    assert "linear_attn.step.state_add" in names and "linear_attn.conv_state_cat" in names
    state = 4 * 32 * 128 * 128   # float32 elements of four sequences' recurrent state
    assert max(op.flops for op in ops if op.kind == "elementwise") == state
    # the same step at any context: nothing in a linear layer grows with it
    assert linear_ops([g for g in decode_ops(spec, 4, 8000, 2).layers
                       if g.group.layer.attention.kind == "linear"][0].ops) == ops


def test_full_attention_layer_gates_its_output():
    spec = load_model(NAME)
    full = [g for g in forward_ops(spec, 1, 16, 2).layers if g.group.layer.attention.kind == "full"][0]
    names = [op.name for op in full.ops]
    q = next(op for op in full.ops if op.name == "q_proj")
    assert q.shape == (16, 2 * 16 * 256, 2048)   # query and gate
    assert {"gate_sigmoid", "gate_mul", "q_rotary.cat_pass", "shared_expert_gate"} <= set(names)
    rot = next(op for op in full.ops if op.name == "q_rotary.mul_cos")
    assert rot.flops == 16 * 16 * 64   # partial rotary: 64 of 256 per head


@pytest.mark.parametrize("new_tokens", [0, 8])
def test_zoo_estimates_answer_with_the_fallback_note(new_tokens):
    w = Workload(batch=2, seq=300, dtype="bfloat16", new_tokens=new_tokens, **PIPE)
    est = estimate(NAME, "H200", w)
    assert est.runtime_ms > 0 and est.fits
    assert any("torch_chunk_gated_delta_rule" in n and "torch_recurrent_gated_delta_rule" in n
               and "flash-linear-attention" in n for n in est.notes)
    if new_tokens:
        assert est.ttft_ms > 0 and est.tpot_ms > 0
    one = estimate(NAME, "H200", Workload(batch=1, seq=128, dtype="bfloat16"))
    assert not one.fits and any("does not fit" in n for n in one.notes)


def test_generation_memory_keeps_the_state_and_its_step_temporaries():
    spec = load_model(NAME)
    w = Workload(batch=8, seq=64, dtype="bfloat16", new_tokens=4)
    from estimator.generation import generation_parts
    parts = generation_parts(spec, w)
    states = 36 * 8 * state_bytes(spec, spec.layer_kinds[0], 2)
    kv = 12 * 8 * 64 * cache_bytes_per_token(spec, spec.layer_kinds[3], 2)
    assert parts.kv_cache >= states + kv


def test_linear_layers_are_refused_in_families_that_do_not_price_them():
    spec = load_model("clm-60m")
    layer = LayerSpec(Attention("linear", linear=linear_attention({})))
    odd = dataclasses.replace(spec, name="odd", layer_kinds=(layer,) * spec.layers)
    with pytest.raises(EstimatorError, match="linear attention layers are not modelled yet"):
        forward_ops(odd, 1, 8, 2)


def test_the_delta_rule_matmuls_are_priced_on_the_float32_grid():
    """bmm32: a float32 matmul inside a bf16 model is priced from the profile's float32 GEMMs."""
    from estimator.cost import price
    from estimator.device import get_device
    from estimator.op_builders import bmm32, gemm
    from estimator.profile import profile_for
    dev = get_device("H200")
    prof = profile_for(dev)
    fp32 = bmm32("x", "linear attention", 512, 64, 128, 128)
    bf16 = gemm("x", "linear attention", 512 * 64, 128, 128, 2)
    assert fp32.shape == bf16.shape
    assert price(fp32, dev, prof, "bfloat16").gpu_us > price(bf16, dev, prof, "bfloat16").gpu_us
    assert price(fp32, dev, prof, "bfloat16").gpu_us == pytest.approx(price(bf16, dev, prof, "float32").gpu_us)
