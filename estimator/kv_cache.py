"""What one decoder layer keeps in transformers' DynamicCache: bytes per cached token and how many
tokens it holds at a context length, and a linear-attention layer's fixed state. The one place
the K/V width of a layer is written: ops.py (the cache copies of a forward), decode.py (the cache
concatenation and attention of a decode step), memory.py and generation.py (cache bytes) all ask
here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import layers

if TYPE_CHECKING:
    from .layers import LayerSpec
    from .spec import ModelSpec


def cache_bytes_per_token(spec: ModelSpec, layer: LayerSpec, e: int, shards: int = 1) -> int:
    """Bytes one token adds to `layer`'s cache on one of `shards` tensor-parallel ranks: K and V,
    each (kv heads of the rank) x head_dim elements of `e` bytes. Latent attention (DeepSeek MLA,
    transformers 5.24) caches the compressed latent and the shared rotary key, one "head" that no
    shard splits: kv_lora_rank + qk_rope_head_dim elements."""
    kind = layer.attention.kind
    if kind == "latent":
        m = layer.attention.latent
        return (m.kv_lora_rank + m.qk_rope_head_dim) * e
    if kind == "linear":
        return 0   # a fixed state per sequence (state_bytes), nothing per token
    return 2 * max(1, spec.kv_heads // shards) * spec.head_dim * e


STATE_BYTES = 4   # the recurrent state is float32 whatever the model's dtype (the delta rule runs in float32)
# state-sized float32 tensors a decode step of the recurrent delta rule holds beside the cached
# state (torch_recurrent_gated_delta_rule: the decayed state, a state x k / k x delta product, the
# updated state): what memory.cat_old_bytes counts for a linear layer
DECODE_STATE_TEMPS = 3


def state_bytes(spec: ModelSpec, layer: LayerSpec, e: int) -> int:
    """Bytes of one sequence's fixed state in a linear-attention layer (0 for other layers), as
    transformers 5.24's LinearAttentionLayer holds it: the conv state (conv_dim x conv_kernel,
    the model's dtype) and the recurrent state (value_heads x key_head_dim x value_head_dim,
    float32). Tensor parallelism does not split it (the plan gathers in_proj's output: every rank
    runs every head)."""
    m = layer.attention.linear
    if layer.attention.kind != "linear" or m is None:
        return 0
    return m.conv_dim * m.conv_kernel * e + recurrent_bytes(layer)


def recurrent_bytes(layer: LayerSpec) -> int:
    """Bytes of one sequence's float32 recurrent state in a linear-attention layer (else 0)."""
    m = layer.attention.linear
    return 0 if m is None else m.value_heads * m.key_head_dim * m.value_head_dim * STATE_BYTES


def cached_tokens(layer: LayerSpec, context: int) -> int:
    """Tokens of one sequence `layer`'s cache holds once `context` tokens have gone through it.
    Full attention keeps them all; a sliding layer (DynamicSlidingWindowLayer, with
    SLIDING_WINDOW_PRICED on) keeps the last window - 1 (``full[:, :, -window + 1:]``): a Gemma 3
    with window 16 held 15 tokens on its sliding layers after generate; linear attention none."""
    if layer.attention.kind == "linear":
        return 0
    span = layers.local_span(layer)   # chunked layers: DynamicSlidingWindowLayer of the chunk
    return context if span is None else min(context, span - 1)


def attended_tokens(layer: LayerSpec, context: int) -> int:
    """Keys a step attends to in `layer` when its last token is token `context`: the cache as it
    was and the step's new tokens (DynamicSlidingWindowLayer returns the whole concatenation,
    at most window tokens for one new token)."""
    span = layers.local_span(layer)
    return context if span is None else min(context, span)


def stored_tokens(layer: LayerSpec, context: int, step: int) -> int:
    """Tokens whose K (and V) stay allocated in `layer`'s cache after a forward of `step` new
    tokens per sequence ending at token `context`. A sliding layer's kept window is a view of
    that forward's torch.cat output, so the whole concatenation stays allocated until the next
    update replaces it: after the prefill (step = context) the whole prompt, after a decode step
    min(context, window)."""
    span = layers.local_span(layer)
    return cached_tokens(layer, context) if span is None else min(context - step, span - 1) + step
