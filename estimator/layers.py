"""LayerSpec: what one decoder layer is, its attention kind and its MLP kind. A model is a list of
layers: ``ModelSpec.layer_kinds`` holds one LayerSpec per decoder layer, read by the family from
its config (``Family.layer_kinds``, with the readers of ``layer_config.py``).

Attention kinds (``Attention.kind``):
- ``full``:    causal attention over the whole context (every K/V kept);
- ``sliding``: each query attends to the last ``window`` tokens (Mistral, Phi-3, Gemma 2/3's local layers);
- ``chunked``: attention within chunks of ``chunk`` tokens (Llama 4's local layers);
- ``latent``:  multi-head latent attention (DeepSeek V2/V3 MLA: ``latent`` holds its ranks);
- ``linear``:  recurrent / linear attention with a fixed-size state and no per-token cache
               (Qwen3-Next's Gated DeltaNet: ``linear`` holds its state shape);
with flags ``rope`` (False: a NoPE layer, Llama 4's every 4th) and ``sinks`` (learned attention
sinks, gpt-oss). MLP kinds (``Mlp.kind``): ``dense``, ``experts`` (routed), ``experts+shared``
(routed experts beside an always-on shared expert).

Pricing walks *groups*: runs of consecutive layers that are priced alike (``layer_groups``); the
family hooks (qkv_ops, attention_ops, mlp_ops, mlp_params, extra_layer_params) get the group's
LayerSpec, so layers of one model may differ in attention and MLP. Kinds no family prices yet
raise EstimatorError "not modelled yet" when priced (``priced_as``); latent attention and
shared-expert MLPs are priced by the family that has them (families/deepseek.py); chunked
attention, sinks, NoPE and linear-attention layers only in a family that declares them
(``FEATURES``, ``Family.priced_features``: gpt-oss its sinks, Llama 4 chunked and NoPE layers,
Qwen3-Next its Gated DeltaNet layers, whose token mixer the family prices whole:
``Family.linear_attention_ops``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import EstimatorError

ATTENTION_KINDS = ("full", "sliding", "chunked", "latent", "linear")
MLP_KINDS = ("dense", "experts", "experts+shared")
# Sliding layers are priced by their window: layer_groups keeps them apart from full ones,
# kv_cache caps their cache and decode attention at the window, and past the window their SDPA
# gets an explicit mask (masked_attention). Off, a sliding layer is priced as a full one.
SLIDING_WINDOW_PRICED = True


@dataclass(frozen=True)
class LatentAttention:
    """Multi-head latent attention (DeepSeek V2/V3): K/V compressed to kv_lora_rank, a decoupled
    rotary key of qk_rope_head_dim; q_lora_rank None when q is projected directly."""
    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None = None


@dataclass(frozen=True)
class LinearAttention:
    """Linear / recurrent attention (Qwen3-Next's Gated DeltaNet): a fixed-size state per
    sequence, value_heads x key_head_dim x value_head_dim (float32), and a causal convolution of
    conv_kernel taps over the q, k, v channels; nothing grows with the context (kv_cache.state_bytes)."""
    key_heads: int
    value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int

    @property
    def conv_dim(self) -> int:
        """Channels of the causal convolution: q and k (key_heads x key_head_dim each) and v."""
        return 2 * self.key_heads * self.key_head_dim + self.value_heads * self.value_head_dim


@dataclass(frozen=True)
class Attention:
    kind: str = "full"
    window: int | None = None      # sliding: tokens a query attends to
    chunk: int | None = None       # chunked: tokens per attention chunk
    rope: bool = True              # False: no positional rotation in this layer (NoPE)
    sinks: bool = False            # learned attention sinks (gpt-oss)
    latent: LatentAttention | None = None   # kind "latent"
    linear: LinearAttention | None = None   # kind "linear"

    def __post_init__(self) -> None:
        if self.kind not in ATTENTION_KINDS:
            raise EstimatorError(f"unknown attention kind {self.kind!r}: use one of {', '.join(ATTENTION_KINDS)}")
        needs = {"sliding": ("window", self.window), "chunked": ("chunk", self.chunk),
                 "latent": ("latent", self.latent), "linear": ("linear", self.linear)}
        if self.kind in needs and needs[self.kind][1] is None:
            raise EstimatorError(f"{self.kind} attention needs its {needs[self.kind][0]}")


@dataclass(frozen=True)
class Mlp:
    kind: str = "dense"
    ffn: int | None = None         # this layer's FFN width when it is not the spec's `ffn`

    def __post_init__(self) -> None:
        if self.kind not in MLP_KINDS:
            raise EstimatorError(f"unknown MLP kind {self.kind!r}: use one of {', '.join(MLP_KINDS)}")


FULL = Attention()
DENSE = Mlp()
EXPERTS = Mlp("experts")


@dataclass(frozen=True)
class LayerSpec:
    """One decoder layer: its attention and its MLP."""
    attention: Attention = FULL
    mlp: Mlp = DENSE


PLAIN = LayerSpec()   # full attention, dense MLP of the spec's ffn: the hooks' default layer


def uniform(layers: int, layer: LayerSpec = LayerSpec()) -> tuple[LayerSpec, ...]:
    """`layers` identical layers."""
    return (layer,) * layers


@dataclass(frozen=True)
class LayerGroup:
    """A run of `count` consecutive layers priced alike, from layer `first` on; `layer` is the
    kind they are priced as (``priced_as``)."""
    layer: LayerSpec
    first: int
    count: int


NOT_MODELLED = ("chunked", "linear")
# what a family may declare it prices (Family.priced_features): chunked attention, sinks, NoPE
# layers, shared-expert MLPs, linear attention; layers of other families with them are refused
FEATURES = ("chunked", "sinks", "nope", "experts+shared", "linear")


def priced_as(layer: LayerSpec, priced: tuple[str, ...] = ()) -> LayerSpec:
    """The kind the estimator prices `layer` as: itself, a sliding layer as a full one while
    SLIDING_WINDOW_PRICED is off; EstimatorError for kinds not modelled yet (`priced`: the
    FEATURES the layer's family prices)."""
    a = layer.attention
    refused = [what for what, hit in ((a.kind, a.kind in NOT_MODELLED and a.kind not in priced),
                                      ("sink", a.sinks and "sinks" not in priced),
                                      ("NoPE", not a.rope and "nope" not in priced)) if hit]
    if refused:
        raise EstimatorError(f"{refused[0]} attention layers are not modelled yet")
    if a.kind == "sliding" and not SLIDING_WINDOW_PRICED:
        return replace(layer, attention=FULL)
    return layer


def local_span(layer: LayerSpec) -> int | None:
    """The tokens a local layer's cache and mask are built on: a sliding layer's window (while
    SLIDING_WINDOW_PRICED), a chunked layer's chunk (transformers caches chunked layers as
    DynamicSlidingWindowLayer(sliding_window=attention_chunk_size)); None for other layers."""
    a = layer.attention
    if a.kind == "sliding" and SLIDING_WINDOW_PRICED:
        return a.window
    return a.chunk if a.kind == "chunked" else None


def masked_attention(layer: LayerSpec, kv_len: int) -> bool:
    """Whether transformers gives `layer`'s SDPA an explicit mask over `kv_len` keys: a sliding
    layer once the keys reach its window (masking_utils._ignore_causal_mask_sdpa: kv_length >=
    local_attention_size cannot use is_causal), so no flash kernel and K/V repeated per head."""
    a = layer.attention   # a layer with sinks runs eager attention (gpt-oss: no SDPA path), no SDPA mask
    span = local_span(layer)
    return span is not None and not a.sinks and kv_len >= span


def masked_note(kinds: tuple[LayerSpec, ...], kv_len: int) -> list[str]:
    """The note of an estimate whose sliding layers run SDPA with an explicit mask at `kv_len` keys."""
    windows = sorted({k.attention.window for k in kinds if masked_attention(k, kv_len) and k.attention.kind == "sliding"})
    chunks = sorted({k.attention.chunk for k in kinds if masked_attention(k, kv_len) and k.attention.kind == "chunked"})
    if not windows and not chunks:
        return []
    what = (f"sliding-window layers (window {', '.join(map(str, windows))})" if windows else
            f"chunked-attention layers (chunk {', '.join(map(str, chunks))})")
    return [f"{what} past their window run SDPA with an "
            "explicit mask (no flash kernel, K/V repeated per head): priced as 2x the calibrated causal SDPA "
            "time (3.1x at head_dim 256), an estimate (no masked-SDPA grid is calibrated)"]


def layer_groups(kinds: tuple[LayerSpec, ...], features: tuple[str, ...] = ()) -> tuple[LayerGroup, ...]:
    """Runs of consecutive layers priced alike (the family hooks get each group's LayerSpec);
    `features`: the FEATURES the family prices."""
    groups: list[LayerGroup] = []
    for i, layer in enumerate(kinds):
        priced = priced_as(layer, features)
        if groups and groups[-1].layer == priced:
            last = groups[-1]
            groups[-1] = LayerGroup(priced, last.first, last.count + 1)
        else:
            groups.append(LayerGroup(priced, i, 1))
    return tuple(groups)


def groups_in(groups: tuple[LayerGroup, ...], first: int, count: int) -> list[tuple[LayerGroup, int]]:
    """The groups that layers first .. first + count - 1 fall in, with how many of them each holds."""
    out = []
    end = first + count
    for g in groups:
        n = min(end, g.first + g.count) - max(first, g.first)
        if n > 0:
            out.append((g, n))
    return out
