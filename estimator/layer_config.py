"""Reading a config's per-layer kinds (layers.py's LayerSpec) from the fields transformers uses:
``layer_types`` (transformers 5.x writes it for every model with mixed layers), else the older
fields each family derives it from (``sliding_window``, ``sliding_window_pattern``,
``use_sliding_window`` / ``max_window_layers``, ``mlp_only_layers`` / ``decoder_sparse_step``).
Families call these from their ``layer_kinds`` hook; errors are one-line EstimatorErrors.
"""
from __future__ import annotations

from .config_fields import optional_bool, optional_size
from .errors import EstimatorError
from .layers import DENSE, Attention, LayerSpec, LinearAttention, Mlp

# transformers' layer_types names -> our attention kinds
LAYER_TYPES = {"full_attention": "full", "sliding_attention": "sliding", "chunked_attention": "chunked",
               "linear_attention": "linear"}


def sliding_window(cfg: dict) -> int | None:
    """The config's sliding_window (None when absent or null)."""
    return optional_size(cfg, "sliding_window", None)


def attention_of(kind: str, cfg: dict, default_window: int | None = None) -> Attention:
    """An Attention of `kind` with the window (`default_window` when the config has none) or
    chunk size the config gives it."""
    if kind == "sliding":
        window = optional_size(cfg, "sliding_window", default_window)
        if window is None:
            raise EstimatorError("sliding_attention layers need a sliding_window")
        return Attention("sliding", window=window)
    if kind == "chunked":
        chunk = optional_size(cfg, "attention_chunk_size", None)
        if chunk is None:
            raise EstimatorError("chunked_attention layers need an attention_chunk_size")
        return Attention("chunked", chunk=chunk)
    if kind == "linear":
        return Attention("linear", linear=linear_attention(cfg))
    return Attention(kind)


def linear_attention(cfg: dict) -> LinearAttention:
    """The Gated DeltaNet shape of a config's linear_attention layers: Qwen3NextConfig's
    linear_* fields, with its defaults (16 key heads, 32 value heads of 128, a 4-tap conv).
    Only families that price linear attention (layers.FEATURES) accept such layers."""
    key_heads = optional_size(cfg, "linear_num_key_heads", 16)
    value_heads = optional_size(cfg, "linear_num_value_heads", 32)
    if value_heads % key_heads:
        raise EstimatorError(f"linear_num_value_heads {value_heads} is not a multiple of "
                             f"linear_num_key_heads {key_heads}")
    return LinearAttention(key_heads=key_heads, value_heads=value_heads,
                           key_head_dim=optional_size(cfg, "linear_key_head_dim", 128),
                           value_head_dim=optional_size(cfg, "linear_value_head_dim", 128),
                           conv_kernel=optional_size(cfg, "linear_conv_kernel_dim", 4))


def attention_kinds(cfg: dict, layers: int, default: list[str], default_window: int | None = None) -> list[Attention]:
    """Each layer's attention: from ``layer_types`` when the config has it, else `default` (our
    kind names, one per layer, as the family's config class derives them); sliding layers get
    the config's sliding_window, else `default_window` (transformers' default)."""
    types = cfg.get("layer_types")
    if types is None:
        kinds = default
    else:
        if not isinstance(types, list) or len(types) != layers:
            raise EstimatorError(f"layer_types must be a list of {layers} layer types (one per layer)")
        unknown = [t for t in types if t not in LAYER_TYPES]
        if unknown:
            raise EstimatorError(f"unknown layer type {unknown[0]!r:.60} in layer_types: use one of "
                                 f"{', '.join(LAYER_TYPES)}")
        kinds = [LAYER_TYPES[t] for t in types]
    cache: dict[str, Attention] = {}   # one object per kind: the spec's tuple repeats them
    for k in kinds:
        if k not in cache:
            cache[k] = attention_of(k, cfg, default_window)
    return [cache[k] for k in kinds]


def every_layer_sliding(cfg: dict, layers: int) -> list[str]:
    """Mistral, Mixtral, Phi-3: every layer slides when sliding_window is set (null: none)."""
    return ["sliding" if sliding_window(cfg) is not None else "full"] * layers


def sliding_from_layer(cfg: dict, layers: int) -> list[str]:
    """Qwen2 / Qwen3: with use_sliding_window, layers from max_window_layers on slide."""
    if not optional_bool(cfg, "use_sliding_window", False) or sliding_window(cfg) is None:
        return ["full"] * layers
    start = optional_size(cfg, "max_window_layers", layers)
    return ["sliding" if i >= start else "full" for i in range(layers)]


def sliding_pattern(layers: int, pattern: int) -> list[str]:
    """Gemma 2 (pattern 2) / Gemma 3 (sliding_window_pattern, 6): every pattern-th layer is full."""
    return ["sliding" if (i + 1) % pattern else "full" for i in range(layers)]


def sparse_mlp_kinds(cfg: dict, layers: int, dense_ffn_key: str) -> list[Mlp]:
    """Qwen3-MoE: layer i routes to experts unless it is in mlp_only_layers or (i + 1) is not a
    multiple of decoder_sparse_step; its dense layers are `dense_ffn_key` wide."""
    only = cfg.get("mlp_only_layers") or []
    if not isinstance(only, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in only):
        raise EstimatorError(f"mlp_only_layers must be a list of layer indices, got {only!r:.60}")
    step = optional_size(cfg, "decoder_sparse_step", 1)
    dense = Mlp("dense", ffn=optional_size(cfg, dense_ffn_key, None)) if only or step != 1 else DENSE
    experts = Mlp("experts")
    return [dense if i in only or (i + 1) % step else experts for i in range(layers)]


def layer_specs(attention: list[Attention], mlp: list[Mlp]) -> tuple[LayerSpec, ...]:
    """One LayerSpec per layer (equal layers share one object)."""
    cache: dict[tuple[Attention, Mlp], LayerSpec] = {}
    return tuple(cache.setdefault((a, m), LayerSpec(a, m)) for a, m in zip(attention, mlp, strict=True))
