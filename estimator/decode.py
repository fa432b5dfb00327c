"""The kernels of model.generate's two phases, as transformers 5.x runs greedy decoding eagerly.

``GenerationMixin._sample`` calls ``_prefill`` (one forward of the prompt with
``logits_to_keep=1``: decoder layers and the final norm over every prompt token, the LM head on
the last position only), then one decode step per further token: ``prepare_inputs_for_generation``
and a forward of one token per sequence. In that forward the projections, the MLP and the LM head
run on ``batch`` rows, ``DynamicLayer.update`` concatenates the new K/V onto the whole cache
(``torch.cat([self.keys, key_states], dim=-2)``: a fresh copy of the cache every step, so its bytes
grow with the cache) and SDPA runs one query per head over ``kv_len`` keys. After every forward,
``_sample`` copies the last logits to float32, takes their argmax, concatenates the token onto
``input_ids`` (and ``_update_model_kwargs_for_generation`` the attention mask), evaluates the
stopping criteria and reads ``unfinished_sequences.max() == 0`` on the host: a synchronisation
per step, so each step ends when the GPU has drained (on CUDA ``DeferredStopCheck`` is off).
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING

from . import kv_cache   # called through the module: the one place a layer's cache is sized
from .ops import FP32, ForwardOps, Op, ew, forward_ops

if TYPE_CHECKING:
    from .layers import LayerSpec
    from .model import ModelSpec

GENERATE_GROUP = "generate"
ID_BYTES = 8   # input_ids and the attention mask are int64
CACHE_OPS = ("cache_k", "cache_v")
ATTENTION_END = "attn_transpose"   # ops.layer_ops: the first kernel after the attention hook's
LINEAR_PREFIX = "linear_attn."     # the names of a linear-attention layer's token-mixer kernels


def sampling_ops(batch: int, vocab: int, cur_len: int, e: int) -> list[Op]:
    """_sample's own kernels after each forward (greedy, no logits processor active with
    eos_token_id=None): logits[:, -1] to float32, argmax, cat onto input_ids and the attention
    mask, MaxLengthCriteria's torch.full, ``unfinished & ~done``, ``max() == 0``."""
    g = GENERATE_GROUP
    ids = batch * (cur_len + 1)
    return [ew("logits_to_fp32", g, batch * vocab, e + FP32, "cast"),
            ew("argmax", g, batch * vocab, FP32, "reduce"),
            ew("cat_input_ids", g, ids, 2 * ID_BYTES, "binary"),
            ew("cat_attention_mask", g, ids, 2 * ID_BYTES, "binary"),
            ew("stop_full", g, batch, ID_BYTES, "unary"),
            ew("stop_not", g, batch, 2 * ID_BYTES, "unary"),
            ew("stop_and", g, batch, 3 * ID_BYTES, "binary"),
            ew("stop_max", g, batch, ID_BYTES, "reduce"),
            ew("stop_eq", g, 1, 2 * ID_BYTES, "unary")]


def _split_post(post: tuple[Op, ...]) -> tuple[list[Op], list[Op]]:
    """(final norm and OPT's project_out, which run over every position | the LM head)."""
    head = [op for op in post if op.name == "lm_head"]
    return [op for op in post if op.name != "lm_head"], head


@lru_cache(maxsize=256)
def prefill_ops(spec: ModelSpec, batch: int, seq: int, e: int) -> ForwardOps:
    """The prompt's forward inside generate: as model(input_ids), but logits of the last position
    only, followed by the sampling kernels."""
    full = forward_ops(spec, batch, seq, e)
    body, _ = _split_post(full.post)
    _, head = _split_post(forward_ops(spec, batch, 1, e).post)
    return ForwardOps(full.pre, full.layers, tuple(body + head + sampling_ops(batch, spec.vocab, seq, e)))


@lru_cache(maxsize=1024)
def decode_ops(spec: ModelSpec, batch: int, kv_len: int, e: int) -> ForwardOps:
    """One decode step with `kv_len` tokens in the cache after its update (prompt + tokens so far):
    the forward of one token per sequence, the cache concatenation and attention over the whole
    cache, then the sampling kernels."""
    one = forward_ops(spec, batch, 1, e)

    def step_layer(layer: LayerSpec, ops: tuple[Op, ...]) -> list[Op]:
        return decode_layer_ops(spec, layer, ops, batch, kv_len, e)

    return replace(one.with_layers(step_layer), post=one.post + tuple(sampling_ops(batch, spec.vocab, kv_len, e)))


def decode_layer_ops(spec: ModelSpec, layer: LayerSpec, one: tuple[Op, ...], batch: int, kv_len: int,
                     e: int) -> list[Op]:
    """A decode step's kernels in a layer of kind `layer`, from its one-token forward kernels `one`:
    the cache concatenation and attention run over the tokens that layer attends to
    (kv_cache.attended_tokens); the family prices the attention between the cache update and the
    output transpose (``decode_attention_ops``). A linear-attention layer has no cache to
    concatenate: its token mixer (the ops named ``linear_attn.*``) becomes the family's decode
    kernels (``linear_attention_ops`` with decode=True: the recurrent step over the fixed state)."""
    if layer.attention.kind == "linear":
        mixer = [i for i, op in enumerate(one) if op.name.startswith(LINEAR_PREFIX)]
        if not mixer:
            raise ValueError(f"{spec.name}: no linear-attention kernels in the decode layer")
        step = spec.arch.linear_attention_ops(spec, layer, batch, 1, e, decode=True)
        return list(one[:mixer[0]]) + step + list(one[mixer[-1] + 1:])
    cached = kv_cache.attended_tokens(layer, kv_len)
    # torch.cat reads the old cache (cached - 1 tokens) and the new token, writes cached tokens
    cat_elems = batch * (kv_cache.cache_bytes_per_token(spec, layer, e) // (2 * e)) * cached   # K (or V) elements
    cat_bytes_per_elem = e * (2 * cached - 1) / cached
    out: list[Op] = []
    start = end = None
    for i, op in enumerate(one):
        if op.name in CACHE_OPS:
            # both inputs are contiguous here (the old cache, one token): a plain copy's speed,
            # not the strided one of the prefill's cat of a transposed view
            out.append(replace(op, flops=float(cat_elems), bytes=float(cat_elems * cat_bytes_per_elem),
                               pattern="copy"))
            start = len(out)
        else:
            if op.name == ATTENTION_END and end is None and start is not None:
                end = len(out)
            out.append(op)
    if start is None or end is None:
        raise ValueError(f"{spec.name}: no cache update / attention output in the decode layer")
    out[start:end] = spec.arch.decode_attention_ops(spec, layer, out[start:end], batch, kv_len, e)
    return out
