"""What one decoder layer keeps in transformers' DynamicCache: bytes per cached token and how many
tokens it holds at a context length. The one place the K/V width of a layer is written: ops.py
(the cache copies of a forward), decode.py (the cache concatenation and attention of a decode
step), memory.py and generation.py (cache bytes) all ask here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import EstimatorError
from . import layers

if TYPE_CHECKING:
    from .layers import LayerSpec
    from .spec import ModelSpec


def cache_bytes_per_token(spec: ModelSpec, layer: LayerSpec, e: int, shards: int = 1) -> int:
    """Bytes one token adds to `layer`'s cache on one of `shards` tensor-parallel ranks: K and V,
    each (kv heads of the rank) x head_dim elements of `e` bytes."""
    kind = layer.attention.kind
    if kind in ("latent", "linear"):
        raise EstimatorError(f"the cache of {kind} attention layers is not modelled yet")
    return 2 * max(1, spec.kv_heads // shards) * spec.head_dim * e


def cached_tokens(layer: LayerSpec, context: int) -> int:
    """Tokens of one sequence in `layer`'s cache once `context` tokens have gone through it.
    Full (and, today, sliding and chunked) attention keeps them all; with SLIDING_WINDOW_PRICED on
    (issue 24, part 2) a sliding layer keeps its window."""
    a = layer.attention
    if a.kind == "linear":
        return 0
    if a.kind == "sliding" and layers.SLIDING_WINDOW_PRICED:
        # TODO(issue 24, part 2): DynamicSlidingWindowLayer keeps the whole prefill and trims to
        # window - 1 tokens on later updates; check against transformers before turning this on
        return min(context, a.window)
    return context
