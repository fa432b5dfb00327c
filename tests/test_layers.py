"""A model is a list of layers (issue 24): layer kinds read from configs, layer groups, and the one
function that sizes a layer's cache (kv_cache.py), which every consumer goes through."""
from __future__ import annotations

import dataclasses
import json

import pytest

from estimator import kv_cache, layers, memory
from estimator.decode import decode_ops
from estimator.errors import EstimatorError
from estimator.families.moe import QWEN3_MOE
from estimator.generation import generation_parts
from estimator.layers import Attention, LayerGroup, LayerSpec, Mlp, groups_in, layer_groups
from estimator.model import ModelSpec, config_path, load_model, zoo_names
from estimator.ops import forward_ops
from estimator.workload import Workload


def zoo_config(name: str) -> dict:
    return json.loads(config_path(name).read_text())


def kinds(spec) -> list[tuple[str, int | None, str]]:
    return [(lay.attention.kind, lay.attention.window, lay.mlp.kind) for lay in spec.layer_kinds]


def test_gemma3_sliding_window_pattern():
    spec = load_model("google/gemma-3-1b-pt")   # sliding_window 512, sliding_window_pattern 6
    assert len(spec.layer_kinds) == spec.layers == 26
    full = [i for i, lay in enumerate(spec.layer_kinds) if lay.attention.kind == "full"]
    assert full == [5, 11, 17, 23]
    assert {lay.attention for i, lay in enumerate(spec.layer_kinds) if i not in full} == {Attention("sliding", window=512)}
    three = ModelSpec.from_hf_config(zoo_config("google/gemma-3-1b-pt") | {"sliding_window_pattern": 3,
                                                                             "num_hidden_layers": 7})
    assert [k for k, _, _ in kinds(three)] == ["sliding", "sliding", "full"] * 2 + ["sliding"]


def test_gemma3_layer_types_win_over_the_pattern():
    types = ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    spec = ModelSpec.from_hf_config(zoo_config("google/gemma-3-1b-pt") | {"num_hidden_layers": 4, "layer_types": types})
    assert kinds(spec) == [("full", None, "dense"), ("sliding", 512, "dense"), ("sliding", 512, "dense"),
                           ("full", None, "dense")]


def test_gemma2_alternates_sliding_and_full():
    spec = load_model("google/gemma-2-2b")
    assert kinds(spec)[:4] == [("sliding", 4096, "dense"), ("full", None, "dense")] * 2
    assert sum(k == "sliding" for k, _, _ in kinds(spec)) == spec.layers // 2


def test_mistral_sliding_window_on_every_layer():
    assert set(kinds(load_model("mistralai/Mistral-7B-v0.1"))) == {("sliding", 4096, "dense")}
    no_window = ModelSpec.from_hf_config(zoo_config("mistralai/Mistral-7B-v0.1") | {"sliding_window": None})
    assert set(kinds(no_window)) == {("full", None, "dense")}
    assert set(kinds(load_model("microsoft/Phi-3-mini-4k-instruct"))) == {("sliding", 2047, "dense")}
    assert set(kinds(load_model("mistralai/Mixtral-8x7B-v0.1"))) == {("full", None, "experts")}  # window null


def test_qwen2_slides_from_max_window_layers():
    cfg = zoo_config("Qwen/Qwen2.5-0.5B") | {"use_sliding_window": True, "sliding_window": 1024,
                                            "max_window_layers": 20}
    got = kinds(ModelSpec.from_hf_config(cfg))
    assert got[:20] == [("full", None, "dense")] * 20 and got[20:] == [("sliding", 1024, "dense")] * 4
    assert set(kinds(load_model("Qwen/Qwen2.5-0.5B"))) == {("full", None, "dense")}


@pytest.mark.parametrize("change, dense", [
    (dict(mlp_only_layers=[0, 2]), [0, 2]),
    (dict(decoder_sparse_step=2), [0, 2, 4]),
    (dict(mlp_only_layers=[1], decoder_sparse_step=2), [0, 1, 2, 4]),
])
def test_qwen3_moe_dense_layers_are_read(change, dense):
    cfg = zoo_config("Qwen/Qwen3-30B-A3B") | {"num_hidden_layers": 6} | change
    got = QWEN3_MOE.layer_kinds(cfg, "qwen3_moe", 6)
    assert [i for i, lay in enumerate(got) if lay.mlp.kind == "dense"] == dense
    assert {lay.mlp.ffn for lay in got if lay.mlp.kind == "dense"} == {6144}   # intermediate_size
    assert {lay.mlp for lay in got if lay.mlp.kind == "experts"} == {Mlp("experts")}
    spec = ModelSpec.from_hf_config(cfg)   # priced: each group's MLP of its own kind
    ops = forward_ops(spec, 1, 8, 2)
    by_kind = {g.group.layer.mlp.kind: [op.name for op in g.ops] for g in ops.layers}
    assert "router" in by_kind["experts"] and "router" not in by_kind["dense"]
    gate = [op for op in next(g for g in ops.layers if g.group.layer.mlp.kind == "dense").ops if op.name == "gate_proj"]
    assert gate[0].shape == (8, 6144, spec.hidden)   # the dense layer's own width
    assert spec.param_count() == sum(spec.layer_params(lay) for lay in spec.layer_kinds) + (
        spec.embedding_params() + spec.norm_params() + spec.head_params())


def test_shipped_models_group_their_layers_and_are_hashable():
    for name in zoo_names():
        spec = load_model(name)
        groups = spec.layer_groups
        assert sum(g.count for g in groups) == spec.layers and groups[0].first == 0, name
        assert all(a.layer != b.layer for a, b in zip(groups, groups[1:])), name   # runs are maximal
        mixed = {g.layer.attention.kind for g in groups} == {"sliding", "full"}
        assert mixed == name.startswith(("google/gemma", "openai/gpt-oss")), name
        assert hash(spec) == hash(dataclasses.replace(spec)) and isinstance(spec.layer_kinds, tuple)


def test_bad_layer_types_are_one_line_errors():
    cfg = zoo_config("google/gemma-3-1b-pt")
    with pytest.raises(EstimatorError, match="layer_types must be a list of 26"):
        ModelSpec.from_hf_config(cfg | {"layer_types": ["full_attention"]})
    with pytest.raises(EstimatorError, match="unknown layer type 'local'"):
        ModelSpec.from_hf_config(cfg | {"layer_types": ["local"] * 26})


@pytest.mark.parametrize("attention, message", [
    (Attention("chunked", chunk=8192), "chunked attention layers are not modelled yet"),
    (Attention(sinks=True), "sink attention"),
    (Attention(rope=False), "NoPE attention"),
])
def test_kinds_not_modelled_yet_are_refused_when_priced(attention, message):
    spec = load_model("clm-60m")
    odd = dataclasses.replace(spec, name="odd", layer_kinds=(LayerSpec(attention),) * spec.layers)
    with pytest.raises(EstimatorError, match=message):
        forward_ops(odd, 1, 8, 2)


def test_mixed_layer_kinds_form_groups():
    full, experts = LayerSpec(), LayerSpec(mlp=Mlp("experts"))
    assert layer_groups((full, full, experts, full)) == (LayerGroup(full, 0, 2), LayerGroup(experts, 2, 1),
                                                         LayerGroup(full, 3, 1))


def test_groups_in_a_layer_range():
    a, b = LayerSpec(), LayerSpec(Attention("sliding", window=4))
    groups = (LayerGroup(a, 0, 3), LayerGroup(b, 3, 2), LayerGroup(a, 5, 4))
    assert groups_in(groups, 2, 5) == [(groups[0], 1), (groups[1], 2), (groups[2], 2)]
    assert groups_in(groups, 0, 0) == []


def test_cached_tokens_window_is_behind_the_switch(monkeypatch):
    sliding = LayerSpec(Attention("sliding", window=512))
    monkeypatch.setattr(layers, "SLIDING_WINDOW_PRICED", False)
    assert kv_cache.cached_tokens(sliding, 4096) == 4096   # off: the whole context, as full attention
    monkeypatch.setattr(layers, "SLIDING_WINDOW_PRICED", True)
    assert kv_cache.cached_tokens(sliding, 4096) == 511 and kv_cache.cached_tokens(sliding, 100) == 100
    assert kv_cache.attended_tokens(sliding, 4096) == 512 and kv_cache.stored_tokens(sliding, 4096, 4096) == 4096
    assert kv_cache.stored_tokens(sliding, 4096, 1) == 512
    assert kv_cache.cached_tokens(LayerSpec(), 4096) == 4096


def test_one_cache_function_sizes_every_cache(monkeypatch):
    """Doubling kv_cache.cache_bytes_per_token doubles the cache in the forward's copies, memory,
    generation's memory and a decode step's concatenation: nobody sizes K/V on their own."""
    base = load_model("mistralai/Mistral-7B-v0.1")
    w = Workload(batch=2, seq=64, new_tokens=8)

    def measure(spec):
        cat = [op for op in decode_ops(spec, 2, 70, 2).layer if op.name == "cache_k"][0]
        copy = [op for op in forward_ops(spec, 2, 64, 2).layer if op.name == "cache_k"][0]
        return (memory.kv_cache_bytes(spec, 2, 64, 2, 0, spec.layers), generation_parts(spec, w).kv_cache,
                cat.bytes, copy.flops, memory.cat_old_bytes(spec, 2, 70, 2, 0, 1))

    before = measure(dataclasses.replace(base, name="before"))
    real = kv_cache.cache_bytes_per_token
    monkeypatch.setattr(kv_cache, "cache_bytes_per_token", lambda *a, **k: 2 * real(*a, **k))
    after = measure(dataclasses.replace(base, name="after"))   # a new spec: no memoized kernels
    assert after == pytest.approx(tuple(2 * x for x in before))
    assert before[0] == 2 * 32 * 2 * 64 * 8 * 128 * 2   # K and V, 32 layers, 2 x 64 tokens, 8 x 128, bf16
