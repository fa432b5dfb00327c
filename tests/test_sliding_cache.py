"""Sliding-window caches against transformers on the CPU (issue 24, part 2): tiny Gemma 3 and Mistral
models with a window of 16 run model(input_ids) and generate; the tokens each layer's cache holds,
and the bytes it keeps allocated, equal kv_cache.py's and memory.py's. Also the pricing that follows
from the window: decode attention over min(context, window) keys, Gemma 2's eager decode at the
cache length, the explicit-mask SDPA past the window."""
from __future__ import annotations

import pytest

from estimator import kv_cache, memory
from estimator.decode import decode_ops
from estimator.model import ModelSpec, load_model
from estimator.ops import forward_ops

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("quiet_transformers")

WINDOW = 16
TINY = {
    "gemma3_text": dict(model_type="gemma3_text", hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                        head_dim=16, vocab_size=128, max_position_embeddings=256, intermediate_size=128,
                        sliding_window=WINDOW, num_hidden_layers=6, sliding_window_pattern=6),
    "mistral": dict(model_type="mistral", hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                    vocab_size=128, max_position_embeddings=256, intermediate_size=128, sliding_window=WINDOW,
                    num_hidden_layers=2),
}


def hf_model(cfg: dict):
    torch.manual_seed(0)
    kw = {k: v for k, v in cfg.items() if k != "model_type"}
    config = transformers.AutoConfig.for_model(cfg["model_type"], **kw)
    return transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32).eval()


def cache_of(out) -> list:
    cache = getattr(out, "past_key_values", None) or out.cache
    return list(cache.layers)


def held_bytes(layers) -> int:
    """Bytes the caches keep allocated: each K's and V's storage (a kept window is a view of it)."""
    return sum(t.untyped_storage().nbytes() for lay in layers for t in (lay.keys, lay.values))


@pytest.mark.parametrize("model_type", sorted(TINY))
@pytest.mark.parametrize("seq, new", [(40, 32), (10, 4), (12, 8)])
def test_generate_cache_matches_transformers(model_type, seq, new):
    cfg = TINY[model_type]
    spec = ModelSpec.from_hf_config(cfg)
    batch = 2
    ids = torch.randint(0, 128, (batch, seq))
    with torch.no_grad():
        out = hf_model(cfg).generate(ids, max_new_tokens=new, do_sample=False, return_dict_in_generate=True,
                                     eos_token_id=None, pad_token_id=0)
    layers = cache_of(out)
    context = seq + new - 1   # the last generated token is never fed back
    assert [lay.keys.shape[-2] for lay in layers] == [kv_cache.cached_tokens(k, context) for k in spec.layer_kinds]
    assert held_bytes(layers) == memory.kv_cache_bytes(spec, batch, context, 4, 0, spec.layers, step=1)


@pytest.mark.parametrize("model_type", sorted(TINY))
@pytest.mark.parametrize("seq", [8, 15, 16, 40])
def test_forward_cache_matches_transformers(model_type, seq):
    """model(input_ids): a sliding layer keeps window - 1 tokens, as a view of the whole prompt."""
    cfg = TINY[model_type]
    spec = ModelSpec.from_hf_config(cfg)
    with torch.no_grad():
        out = hf_model(cfg)(torch.randint(0, 128, (1, seq)), use_cache=True)
    layers = cache_of(out)
    assert [lay.keys.shape[-2] for lay in layers] == [kv_cache.cached_tokens(k, seq) for k in spec.layer_kinds]
    assert held_bytes(layers) == memory.kv_cache_bytes(spec, 1, seq, 4, 0, spec.layers)


def test_sliding_layers_are_their_own_group_and_price_the_window():
    spec = load_model("google/gemma-3-1b-pt")    # window 512, a full layer every 6th
    assert len(spec.layer_groups) > 1
    sliding = next(g for g in spec.layer_groups if g.layer.attention.kind == "sliding")
    full = next(g for g in spec.layer_groups if g.layer.attention.kind == "full")
    step = {g.group: g.ops for g in decode_ops(spec, 1, 4000, 2).layers}
    keys = {g: [op.shape[2] for op in step[g] if op.kind == "sdpa"] for g in (sliding, full)}
    assert keys == {sliding: [512], full: [4000]}
    # past the window the sliding layer's decode keeps the mask: K/V repeated per head
    assert [op.name for op in step[sliding] if op.name.startswith("repeat_")] == ["repeat_k", "repeat_v"]
    assert not [op for op in step[full] if op.name.startswith("repeat_")]


def test_masked_sdpa_past_the_window_only():
    spec = load_model("google/gemma-3-1b-pt")
    sliding = next(g for g in spec.layer_groups if g.layer.attention.kind == "sliding")

    def attention(seq):
        ops = next(g.ops for g in forward_ops(spec, 1, seq, 2).layers if g.group.layer == sliding.layer)
        return [(op.name, op.pattern) for op in ops if op.group == "attention" and op.name != "attn_transpose"]

    assert attention(256) == [("sdpa", "")]                     # mask skipped: is_causal, GQA in SDPA
    assert attention(512) == [("repeat_k", "strided"), ("repeat_v", "strided"), ("sdpa", "masked")]


def test_gemma2_eager_decode_attention_runs_at_the_cache_length():
    spec = load_model("google/gemma-2-2b")   # window 4096, sliding and full layers alternate
    for kv_len, sliding_keys in ((1000, 1000), (6000, 4096)):
        step = {g.group.layer.attention.kind: g.ops for g in decode_ops(spec, 1, kv_len, 2).layers}
        qk = {k: [op for op in ops if op.name == "qk"][0] for k, ops in step.items()}
        assert qk["full"].shape == (spec.heads, kv_len, spec.head_dim)
        assert qk["sliding"].shape == (spec.heads, sliding_keys, spec.head_dim)
        pv = [op for op in step["full"] if op.name == "pv"][0]
        assert pv.flops == 2.0 * spec.heads * spec.head_dim * kv_len


@pytest.mark.parametrize("model_type", sorted(TINY))
@pytest.mark.parametrize("seq", [8, WINDOW, 40])
@pytest.mark.parametrize("via_generate", [False, True])
def test_sdpa_mask_bytes_match_transformers(model_type, seq, via_generate):
    """The boolean masks the decoder hands its SDPA layers during the prompt's forward (distinct
    tensors, their bytes) equal Family.mask_bytes: none below the window, one (1, 1, seq, seq)
    bool mask (expanded over the batch) from the window on, in model(ids) and in generate's prefill alike."""
    cfg = TINY[model_type]
    spec = ModelSpec.from_hf_config(cfg)
    model = hf_model(cfg)
    batch, masks = 2, {}
    for layer in model.model.layers:
        def hook(module, args, kwargs):
            m = kwargs.get("attention_mask")
            hidden = args[0] if args else kwargs["hidden_states"]
            if hidden.shape[1] > 1 and isinstance(m, torch.Tensor):   # the prompt's pass, not a decode step
                masks[m.data_ptr()] = m.untyped_storage().nbytes()
        layer.self_attn.register_forward_pre_hook(hook, with_kwargs=True)
    ids = torch.randint(0, 128, (batch, seq))
    with torch.no_grad():
        if via_generate:
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=2, do_sample=False,
                           eos_token_id=None, pad_token_id=0)
        else:
            model(ids)
    assert sum(masks.values()) == spec.arch.mask_bytes(spec, seq)
    assert memory.layer_working_set(spec, batch * seq, 4, seq=seq) - memory.layer_working_set(spec, batch * seq, 4) \
        == spec.arch.mask_bytes(spec, seq) + spec.arch.attention_live_bytes(spec, batch, seq, spec.heads, 4)
