"""forward_ops against hand-derived FLOP and byte formulas and the documented eager kernel sequence.

Notation: T = batch x seq tokens, h hidden, f FFN width, V vocabulary, L layers, H query heads,
d head dim, e bytes per element. Every expected value here is written out from the architecture,
not taken from estimator code.
"""
from __future__ import annotations

import dataclasses

import pytest

from estimator.model import ModelSpec, load_model
from estimator.ops import forward_ops, gemm, rms_norm, activation, sdpa

LLAMA_FAMILY = ["clm-60m", "clm-200m", "clm-400m", "clm-1.1b", "Qwen2.5-0.5B", "Mistral-7B-v0.1"]
SHAPES = [(1, 8), (2, 128), (16, 1024), (3, 77)]


def all_ops(fo):
    return list(fo.pre), list(fo.layer), list(fo.post)


def total(fo, spec, kind, attr="flops"):
    pre, layer, post = all_ops(fo)
    per = lambda ops: sum(getattr(o, attr) for o in ops if o.kind == kind)  # noqa: E731
    return per(pre) + spec.layers * per(layer) + per(post)


# ---- GEMM FLOPs ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", LLAMA_FAMILY)
@pytest.mark.parametrize("b,s", SHAPES)
def test_llama_family_gemm_flops(name, b, s):
    spec = load_model(name)
    T, h, f, V, L = b * s, spec.hidden, spec.ffn, spec.vocab, spec.layers
    qd, kvd = spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim
    expected = 2 * T * (L * (h * qd + 2 * h * kvd + qd * h + 3 * h * f) + h * V)
    assert total(forward_ops(spec, b, s, 2), spec, "gemm") == expected
    # the same thing read as "2 x tokens x every matmul weight" (no embedding table, head counted)
    matmul_params = spec.param_count() - spec.embedding_params() - spec.norm_params() * (2 * L + 1)
    matmul_params -= L * (qd + 2 * kvd) * spec.qkv_bias  # Qwen2's q/k/v biases are not matmul weights
    if spec.tied_embeddings:
        matmul_params += V * h
    assert expected == 2 * T * matmul_params


@pytest.mark.parametrize("name", ["opt-1.3b", "opt-6.7b"])
@pytest.mark.parametrize("b,s", SHAPES)
def test_opt_gemm_flops(name, b, s):
    spec = load_model(name)
    T, h, f, V, L = b * s, spec.hidden, spec.ffn, spec.vocab, spec.layers
    expected = 2 * T * (L * (4 * h * h + 2 * h * f) + h * V)
    fo = forward_ops(spec, b, s, 2)
    assert total(fo, spec, "gemm") == expected
    assert sum(o.kind == "gemm" for o in fo.layer) == 6   # q, k, v, out, fc1, fc2


def test_opt_projection_gemms_when_proj_dim_differs():
    spec = ModelSpec.from_hf_config(dict(model_type="opt", hidden_size=1024, num_hidden_layers=24,
                                         num_attention_heads=16, ffn_dim=4096, vocab_size=50272,
                                         max_position_embeddings=2048, word_embed_proj_dim=512))
    b, s = 4, 256
    T, h, f, V, L, p = b * s, 1024, 4096, 50272, 24, 512
    fo = forward_ops(spec, b, s, 2)
    # project_in (p -> h), project_out (h -> p), and the head works on p, not h
    assert total(fo, spec, "gemm") == 2 * T * (L * (4 * h * h + 2 * h * f) + 2 * h * p + p * V)
    names = [o.name for o in fo.pre + fo.post if o.kind == "gemm"]
    assert names == ["project_in", "project_out", "lm_head"]


@pytest.mark.parametrize("name", ["gpt2", "gpt2-medium"])
@pytest.mark.parametrize("b,s", SHAPES)
def test_gpt2_gemm_flops_with_fused_qkv(name, b, s):
    spec = load_model(name)
    T, h, f, V, L = b * s, spec.hidden, spec.ffn, spec.vocab, spec.layers
    fo = forward_ops(spec, b, s, 2)
    assert total(fo, spec, "gemm") == 2 * T * (L * (4 * h * h + 2 * h * f) + h * V)
    gemms = [o for o in fo.layer if o.kind == "gemm"]
    assert [o.shape for o in gemms] == [(T, 3 * h, h), (T, h, h), (T, f, h), (T, h, f)]


def test_gpt2_n_inner_sets_mlp_width():
    spec = ModelSpec.from_hf_config(dict(model_type="gpt2", n_embd=256, n_layer=3, n_head=4, n_inner=1000,
                                         vocab_size=1000, n_positions=512))
    fo = forward_ops(spec, 2, 16, 2)
    assert total(fo, spec, "gemm") == 2 * 32 * (3 * (4 * 256 * 256 + 2 * 256 * 1000) + 256 * 1000)


# ---- attention -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", LLAMA_FAMILY + ["opt-1.3b", "opt-6.7b", "gpt2", "gpt2-medium"])
@pytest.mark.parametrize("b,s", SHAPES)
def test_attention_flops(name, b, s):
    spec = load_model(name)
    fo = forward_ops(spec, b, s, 2)
    H, d, L = spec.heads, spec.head_dim, spec.layers
    assert total(fo, spec, "sdpa") == L * 4 * b * H * s * s * d / 2
    (att,) = [o for o in fo.layer if o.kind == "sdpa"]
    assert att.shape == (b * H, s, d)
    assert att.bytes == 2 * b * s * d * (2 * H + 2 * spec.kv_heads)   # q, out + k, v (GQA: fewer)


def test_attention_is_quadratic_and_gemms_linear_in_seq():
    spec = load_model("clm-200m")
    a, b = forward_ops(spec, 2, 256, 2), forward_ops(spec, 2, 512, 2)
    assert total(b, spec, "sdpa") == 4 * total(a, spec, "sdpa")
    assert total(b, spec, "gemm") == 2 * total(a, spec, "gemm")
    assert total(forward_ops(spec, 4, 256, 2), spec, "sdpa") == 2 * total(a, spec, "sdpa")


# ---- kernel sequence -------------------------------------------------------------------------

def test_rms_norm_kernel_counts():
    assert len(rms_norm("n", "norms", 10, 64, 2)) == 8    # to_fp32 pow mean +eps rsqrt mul to_dtype weight
    assert len(rms_norm("n", "norms", 10, 64, 4)) == 6    # no casts in float32
    names = [o.name.split(".")[1] for o in rms_norm("n", "norms", 10, 64, 2)]
    assert names == ["to_fp32", "pow", "mean", "add_eps", "rsqrt", "mul", "to_dtype", "weight"]


def test_gelu_new_is_eight_kernels_and_others_one():
    ops = activation("act", "mlp", 1000, 2, "gelu_new")
    assert len(ops) == 8
    assert sum(o.bytes for o in ops) == 1000 * 2 * (2 + 2 + 3 + 2 + 2 + 2 + 2 + 3)
    assert len(activation("act", "mlp", 1000, 2, "silu")) == 1
    assert len(activation("act", "mlp", 1000, 2, "relu")) == 1


# per-layer kernels, written from the eager modules:
#   Llama: norm, q k v, rotary q (5) + k (5), cache k v, sdpa, transpose, o, residual,
#          norm, gate, act, up, gate*up, down, residual
#   OPT:   ln, q k v, q*scale, cache k v, sdpa, transpose, out, residual, ln, fc1, relu, fc2, residual
#   GPT-2: ln, c_attn, cache k v, sdpa, transpose, c_proj, residual, ln, c_fc, gelu_new (8), c_proj, residual
@pytest.mark.parametrize("name,e,expected", [
    ("clm-60m", 2, 8 + 3 + 10 + 2 + 4 + 8 + 5 + 1),
    ("clm-60m", 4, 6 + 3 + 10 + 2 + 4 + 6 + 5 + 1),
    ("Mistral-7B-v0.1", 2, 41),
    ("Qwen2.5-0.5B", 2, 41),
    ("opt-1.3b", 2, 1 + 3 + 1 + 2 + 4 + 1 + 3 + 1),
    ("opt-1.3b", 4, 16),
    ("gpt2", 2, 1 + 1 + 2 + 4 + 1 + 1 + 8 + 1 + 1),
])
def test_layer_kernel_count(name, e, expected):
    spec = load_model(name)
    fo = forward_ops(spec, 2, 64, e, cuda=e == 2)   # float32 counted as a CPU runs it (fused SDPA)
    assert len(fo.layer) == expected
    assert sum(o.kind == "sdpa" for o in fo.layer) == 1


def test_float32_grouped_attention_runs_sdpas_math_backend_on_cuda():
    spec = load_model("clm-60m")            # 6 heads, 2 K/V heads
    cuda, cpu = forward_ops(spec, 2, 64, 4).layer, forward_ops(spec, 2, 64, 4, cuda=False).layer
    assert sum(o.kind == "sdpa" for o in cuda) == 0 and sum(o.kind == "sdpa" for o in cpu) == 1
    names = [o.name for o in cuda]
    for name in ("repeat_k", "repeat_v", "scores_bmm", "mask_add", "softmax", "pv_bmm"):
        assert name in names
    scores = next(o for o in cuda if o.name == "scores_bmm")
    assert scores.flops == 2.0 * 2 * 6 * 64 * 64 * 64          # full scores: no causal skipping
    assert sum(o.kind == "sdpa" for o in forward_ops(spec, 2, 64, 2).layer) == 1   # half precision: fused
    assert sum(o.kind == "sdpa" for o in forward_ops(load_model("opt-1.3b"), 2, 64, 4).layer) == 1  # no GQA


def test_no_cache_kernels_without_use_cache():
    spec = load_model("clm-60m")
    no_cache = dataclasses.replace(spec, use_cache=False)
    with_cache = forward_ops(spec, 2, 64, 2).layer
    without = forward_ops(no_cache, 2, 64, 2).layer
    assert len(with_cache) - len(without) == 2
    assert not [o for o in without if o.group == "kv cache"]


@pytest.mark.parametrize("name,expected_pre,expected_post", [
    ("clm-60m", 1 + 6, 8 + 1),             # embedding + rotary cos/sin tables; final RMSNorm + head
    ("opt-1.3b", 3, 2),                    # tokens, positions, add; final LayerNorm + head
    ("gpt2", 3, 2),
])
def test_pre_and_post_kernels(name, expected_pre, expected_post):
    fo = forward_ops(load_model(name), 2, 64, 2)
    assert (len(fo.pre), len(fo.post)) == (expected_pre, expected_post)
    assert fo.post[-1].name == "lm_head"


# ---- tensor-parallel shards ------------------------------------------------------------------

@pytest.mark.parametrize("name,shards", [("Mistral-7B-v0.1", 2), ("Mistral-7B-v0.1", 4), ("Mistral-7B-v0.1", 8),
                                         ("clm-1.1b", 2), ("clm-1.1b", 8), ("opt-1.3b", 2), ("opt-1.3b", 4),
                                         ("opt-6.7b", 8)])
def test_shards_divide_layer_gemm_and_attention_flops(name, shards):
    spec = load_model(name)
    full, part = forward_ops(spec, 4, 256, 2), forward_ops(spec, 4, 256, 2, shards)
    layer = lambda fo, kind: sum(o.flops for o in fo.layer if o.kind == kind)  # noqa: E731
    assert layer(part, "gemm") * shards == layer(full, "gemm")
    assert layer(part, "sdpa") * shards == layer(full, "sdpa")
    head = lambda fo: [o for o in fo.post if o.name == "lm_head"][0].flops  # noqa: E731
    assert head(part) == 2 * 4 * 256 * (spec.vocab // shards) * spec.hidden
    # the hidden state is not sharded: every shard's o_proj / down_proj write all h columns
    o_proj = [o for o in part.layer if o.name == "o_proj"][0]
    assert o_proj.shape == (4 * 256, spec.hidden, spec.heads // shards * spec.head_dim)


# ---- bytes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("m,n,k,e", [(1024, 4096, 2048, 2), (8, 50272, 768, 2), (333, 96, 7, 4)])
def test_gemm_bytes(m, n, k, e):
    op = gemm("x", "g", m, n, k, e)
    assert op.bytes == e * (m * k + n * k + m * n)
    assert op.flops == 2 * m * n * k and op.shape == (m, n, k)
    assert gemm("x", "g", m, n, k, e, bias=True).bytes == e * (m * k + n * k + m * n + n)


@pytest.mark.parametrize("name,e", [("clm-400m", 2), ("opt-1.3b", 2), ("gpt2", 4), ("Qwen2.5-0.5B", 2)])
def test_every_forward_gemm_moves_its_operands(name, e):
    spec = load_model(name)
    fo = forward_ops(spec, 2, 100, e)
    for op in fo.pre + fo.layer + fo.post:
        if op.kind != "gemm":
            continue
        m, n, k = op.shape
        assert m == 200
        assert op.bytes - e * (m * k + n * k + m * n) in (0, e * n), op.name


def test_sdpa_helper_bytes_and_flops():
    op = sdpa("attention", 2, 8, 2, 128, 64, 2)
    assert op.flops == 4 * 2 * 8 * 128 * 128 * 64 / 2
    assert op.bytes == 2 * 2 * 128 * 64 * (2 * 8 + 2 * 2)


def test_elementwise_bytes_scale_with_dtype():
    spec = load_model("opt-1.3b")
    half, full = forward_ops(spec, 2, 64, 2), forward_ops(spec, 2, 64, 4)
    for a, b in zip(half.layer, full.layer):
        assert a.name == b.name
        assert b.bytes == pytest.approx(2 * a.bytes)
