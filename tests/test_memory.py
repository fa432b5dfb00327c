"""Peak memory per GPU: the K/V cache, working sets and the estimate's per-GPU sums, against
formulas written out here (T tokens, e bytes per element, h hidden, V vocabulary, L layers)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from estimator.allocator import allocator_overhead_bytes

from estimator import Workload, estimate, get_device, load_model
from estimator.device import GB
from estimator.memory import CUBLAS_WORKSPACE_BYTES, head_working_set, kv_cache_bytes, layer_working_set
from estimator.placement import pipeline_placement
from estimator.profile import load_profile_file

SYNTHETIC = Path(__file__).parent / "data" / "synthetic-profile.json"
MIB = 2**20


@pytest.fixture(scope="module")
def prof():
    return load_profile_file(SYNTHETIC)


@pytest.fixture(scope="module")
def h100():
    return get_device("H100")


def mem_bytes(est) -> list[float]:
    return [m * GB for m in est.memory_gb_per_gpu]


# ---- terms -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,kv_dim", [("opt-1.3b", 2048), ("clm-1.1b", 8 * 64), ("Qwen2.5-0.5B", 2 * 64),
                                         ("Mistral-7B-v0.1", 8 * 128), ("gpt2", 768)])
@pytest.mark.parametrize("t,e", [(8, 2), (16 * 1024, 2), (333, 4)])
def test_kv_cache_bytes(name, kv_dim, t, e):
    spec = load_model(name)
    L = spec.layers
    assert kv_cache_bytes(spec, 1, t, e, 0, L) == 2 * L * t * kv_dim * e   # one sequence of t tokens
    assert kv_cache_bytes(spec, 1, t, e, 5, 3) == 2 * 3 * t * kv_dim * e
    assert kv_cache_bytes(dataclasses.replace(spec, use_cache=False), 1, t, e, 0, L) == 0


def test_kv_cache_sharded_by_kv_heads():
    spec = load_model("Mistral-7B-v0.1")       # 8 KV heads of 128
    assert kv_cache_bytes(spec, 1, 1000, 2, 0, 32, shards=4) == 2 * 32 * 1000 * 2 * 128 * 2
    assert kv_cache_bytes(spec, 1, 1000, 2, 0, 32, shards=8) == 2 * 32 * 1000 * 1 * 128 * 2


@pytest.mark.parametrize("name", ["opt-1.3b", "clm-60m", "gpt2", "Qwen2.5-0.5B"])
@pytest.mark.parametrize("t,e", [(8, 2), (4096, 2), (100, 4)])
def test_head_working_set(name, t, e):
    spec = load_model(name)
    assert head_working_set(spec, t, e) == t * e * (spec.hidden + spec.vocab)


def test_layer_working_set_opt_by_hand():
    spec = load_model("opt-1.3b")
    h, f, t = 2048, 8192, 1000
    # attention: residual, normed input, q, q*scale, k, v; MLP: residual, normed input, fc1, relu
    assert layer_working_set(spec, t, 2) == t * 2 * max(2 * h + 4 * h, 2 * h + 2 * f)


# ---- one GPU, to the byte ----------------------------------------------------------------------

def test_single_gpu_memory_to_the_byte_opt_1_3b(prof, h100):
    b, s, e = 16, 1024, 2
    T, h, f, V, L = b * s, 2048, 8192, 50272, 24
    params = 1_315_758_080                          # OPTForCausalLM(facebook/opt-1.3b).num_parameters()
    weights = params * e
    cache = 2 * L * T * h * e
    working = max(T * e * (h + V),                  # final hidden state + logits
                  T * e * max(6 * h, 2 * h + 2 * f)  # inside a decoder layer ...
                  + 2 * T * h * e,                  # ... + inputs_embeds and position embeddings
                  2 * T * h * e)                    # final LayerNorm in/out
    expected = weights + cache + working + 8 * T + 32 * MIB
    est = estimate("facebook/opt-1.3b", h100, Workload(b, s, "float16"), profile=prof)
    assert len(est.memory_gb_per_gpu) == 1
    assert est.memory_gb_per_gpu[0] * GB == pytest.approx(expected, abs=1.0)
    assert est.memory_gb == est.memory_gb_per_gpu[0]
    assert est.params == params
    assert est.fits


def test_single_gpu_memory_to_the_byte_mistral_layer_bound(prof, h100):
    """Mistral's vocabulary is small against its FFN: the peak is inside a decoder layer."""
    b, s, e = 16, 1024, 2
    T, h, f, V, L, kvd = b * s, 4096, 14336, 32000, 32, 8 * 128
    params = 7_241_732_096                          # MistralForCausalLM(Mistral-7B-v0.1).num_parameters()
    layer = T * e * (2 * h + h + 3 * f)             # input, normed input, residual; act(gate), up, product
    embeds = T * h * e                              # inputs_embeds, referenced while the layers run
    assert layer + embeds > T * e * (h + V)         # ... and that beats hidden state + logits
    expected = params * e + 2 * L * T * kvd * e + layer + embeds + 8 * T + 32 * MIB
    est = estimate("Mistral-7B-v0.1", h100, Workload(b, s, "bfloat16"), profile=prof)
    assert est.memory_gb * GB == pytest.approx(expected, abs=1.0)


def test_single_gpu_memory_to_the_byte_small_vocab_opt(prof, h100):
    """An OPT with a tiny vocabulary: the peak is a decoder layer's MLP, plus the token and
    position embedding outputs the decoder still references."""
    from estimator.model import ModelSpec
    spec = ModelSpec.from_hf_config(dict(model_type="opt", hidden_size=2048, num_hidden_layers=4,
                                         num_attention_heads=32, ffn_dim=8192, vocab_size=1000,
                                         max_position_embeddings=2048), name="tiny-vocab-opt")
    b, s, e = 8, 512, 2
    T, h, f, V, L = b * s, 2048, 8192, 1000, 4
    params = V * h + 2050 * h + L * (4 * h * h + 4 * h + 2 * h * f + f + h + 4 * h) + 2 * h
    assert spec.param_count() == params
    working = T * e * (2 * h + 2 * f) + 2 * T * h * e
    expected = params * e + 2 * L * T * h * e + working + 8 * T + 32 * MIB
    est = estimate(spec, h100, Workload(b, s, "float16"), profile=prof)
    assert est.memory_gb * GB == pytest.approx(expected, abs=1.0)


def test_use_cache_false_drops_exactly_the_cache(prof, h100):
    spec = load_model("clm-400m")
    w = Workload(8, 512, "bfloat16")
    with_cache = estimate(spec, h100, w, profile=prof).memory_gb_per_gpu[0] * GB
    without = estimate(dataclasses.replace(spec, use_cache=False), h100, w, profile=prof).memory_gb_per_gpu[0] * GB
    assert with_cache - without == pytest.approx(2 * 30 * 8 * 512 * 5 * 64 * 2, abs=1.0)


def test_memory_grows_linearly_with_tokens(prof, h100):
    a = estimate("clm-1.1b", h100, Workload(4, 256, "bfloat16"), profile=prof).memory_gb * GB
    b = estimate("clm-1.1b", h100, Workload(8, 256, "bfloat16"), profile=prof).memory_gb * GB
    c = estimate("clm-1.1b", h100, Workload(4, 512, "bfloat16"), profile=prof).memory_gb * GB
    spec = load_model("clm-1.1b")   # weights as the caching allocator holds them (allocator.py)
    fixed = spec.param_count() * 2 + allocator_overhead_bytes(spec, 2) + 32 * MIB
    assert b - fixed == pytest.approx(2 * (a - fixed), rel=1e-12)
    assert c == pytest.approx(b, rel=1e-12)


# ---- several GPUs ------------------------------------------------------------------------------

def fixed_part(model, dev, prof, b, s, **kw) -> list[float]:
    """Per-GPU memory that does not grow with the sequence (weights + cuBLAS workspace).

    Every other term (cache, working sets, logits, input ids, position embeddings) is proportional
    to the sequence length at a fixed batch, and the split does not depend on the workload, so
    2 m(s) - m(2s) leaves only the fixed part.
    """
    one = mem_bytes(estimate(model, dev, Workload(b, s, **kw), profile=prof))
    two = mem_bytes(estimate(model, dev, Workload(b, 2 * s, **kw), profile=prof))
    return [2 * x - y for x, y in zip(one, two)]


@pytest.mark.parametrize("name,dtype", [("facebook/opt-1.3b", "float16"), ("clm-1.1b", "bfloat16"),
                                        ("Qwen2.5-0.5B", "bfloat16"), ("gpt2-medium", "float32"),
                                        ("opt-6.7b", "float16")])
@pytest.mark.parametrize("gpus", [2, 4])
def test_pipeline_weights_sum_to_the_model(name, dtype, gpus, prof, h100):
    spec = load_model(name)
    e = 4 if dtype == "float32" else 2
    total = spec.param_count() * e                  # a tied head counted once
    place = pipeline_placement(spec, gpus, e, h100.memory_gb * GB)
    assert sum(place.weight_bytes_per_gpu) == total
    assert sum(place.layers_per_gpu) == spec.layers
    fixed = fixed_part(name, h100, prof, 4, 256, dtype=dtype, gpus=gpus)
    used = sum(1 for m in mem_bytes(estimate(name, h100, Workload(4, 256, dtype, gpus=gpus), profile=prof)) if m)
    assert sum(fixed) == pytest.approx(total + used * CUBLAS_WORKSPACE_BYTES, abs=64.0)
    for g, w in enumerate(place.weight_bytes_per_gpu):
        expected = w + (CUBLAS_WORKSPACE_BYTES if (w > 0 or g == 0) else 0)
        assert fixed[g] == pytest.approx(expected, abs=16.0)


def test_pipeline_spreads_memory(prof, h100):
    one = estimate("opt-6.7b", h100, Workload(16, 1024, "float16"), profile=prof)
    four = estimate("opt-6.7b", h100, Workload(16, 1024, "float16", gpus=4), profile=prof)
    assert len(four.memory_gb_per_gpu) == 4
    assert max(four.memory_gb_per_gpu) < 0.5 * one.memory_gb
    assert sum(four.memory_gb_per_gpu) > one.memory_gb    # every GPU keeps its own workspace etc.


@pytest.mark.parametrize("name,dtype", [("facebook/opt-1.3b", "float16"), ("clm-1.1b", "bfloat16")])
@pytest.mark.parametrize("gpus", [2, 4])
def test_data_parallel_keeps_weights_splits_activations(name, dtype, gpus, prof, h100):
    spec = load_model(name)
    b, s = 16, 512
    dp = estimate(name, h100, Workload(b, s, dtype, gpus=gpus, parallel="data"), profile=prof)
    single_shard = estimate(name, h100, Workload(b // gpus, s, dtype), profile=prof)
    single_full = estimate(name, h100, Workload(b, s, dtype), profile=prof)
    assert len(dp.memory_gb_per_gpu) == gpus and len(set(dp.memory_gb_per_gpu)) == 1
    assert dp.memory_gb_per_gpu[0] == pytest.approx(single_shard.memory_gb, rel=1e-12)
    weights = spec.param_count() * 2 + allocator_overhead_bytes(spec, 2) + CUBLAS_WORKSPACE_BYTES
    assert fixed_part(name, h100, prof, b, s, dtype=dtype, gpus=gpus, parallel="data")[0] == \
        pytest.approx(weights, abs=16.0)
    act_dp = dp.memory_gb * GB - weights
    act_single = single_full.memory_gb * GB - weights
    assert act_dp == pytest.approx(act_single / gpus, rel=1e-9)


@pytest.mark.parametrize("gpus", [2, 4, 8])
def test_tensor_parallel_divides_weights(gpus, prof, h100):
    spec = load_model("Mistral-7B-v0.1")
    e = 2
    fixed = fixed_part("Mistral-7B-v0.1", h100, prof, 2, 512, dtype="bfloat16", gpus=gpus, parallel="tensor")
    assert len(set(fixed)) == 1
    per_gpu_weights = fixed[0] - CUBLAS_WORKSPACE_BYTES
    # transformers' tp_plan: layer matrices and the untied head split N ways; the token
    # embedding and the norms replicated
    split = (spec.param_count() - spec.embedding_params() - spec.norm_params()) / gpus
    assert per_gpu_weights == pytest.approx((split + spec.embedding_params() + spec.norm_params()) * e, rel=1e-4)
    assert per_gpu_weights >= spec.layers * spec.layer_params() * e / gpus
    tp = estimate("Mistral-7B-v0.1", h100, Workload(2, 512, "bfloat16", gpus=gpus, parallel="tensor"),
                  profile=prof)
    one = estimate("Mistral-7B-v0.1", h100, Workload(2, 512, "bfloat16"), profile=prof)
    assert tp.memory_gb < one.memory_gb
