"""forward_ops: the kernels one eager forward pass launches, with FLOPs and bytes moved.

The sequence follows what transformers' eager modules do, kernel by kernel (what differs between
families comes from the spec's family, ``spec.arch``), because for memory-bound parts and for
host overhead the number of kernels matters as much as the arithmetic. Notation: T tokens
(batch x seq), h hidden, f FFN width, e bytes per element, V vocabulary. The kernel builders
(Op, gemm, ew, ...) live in op_builders.py and are re-exported here.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

from . import fp8, kv_cache   # kv_cache called through the module: the one place a layer's cache is sized
from .layers import groups_in
from .op_builders import (ATTENTION_PROJECTIONS, FP32, Op, activation, ew, gemm, layer_norm, rms_norm,
                          rotary, sdpa, sdpa_math)

if TYPE_CHECKING:
    from .layers import LayerGroup, LayerSpec
    from .spec import ModelSpec

__all__ = ["ATTENTION_PROJECTIONS", "FP32", "ForwardOps", "LayerOps", "Op", "activation", "ew", "forward_ops", "gemm",
           "layer_norm", "rms_norm", "rotary", "sdpa", "sdpa_math"]


@dataclass(frozen=True)
class LayerOps:
    """The kernels of one decoder layer of a group of layers priced alike (layers.LayerGroup)."""
    group: LayerGroup
    ops: tuple[Op, ...]


@dataclass(frozen=True)
class ForwardOps:
    """Kernels before the first layer, in each group of decoder layers, and after the last layer."""
    pre: tuple[Op, ...]
    layers: tuple[LayerOps, ...]
    post: tuple[Op, ...]

    @property
    def layer(self) -> tuple[Op, ...]:
        """The kernels of a decoder layer, for a model whose layers form one group."""
        if len(self.layers) != 1:
            raise ValueError(f"{len(self.layers)} groups of layers: walk ForwardOps.layers")
        return self.layers[0].ops

    def layers_in(self, first: int, count: int) -> list[tuple[LayerOps, int]]:
        """The groups layers first .. first + count - 1 fall in, with how many of them each holds."""
        by_group = {g.group: g for g in self.layers}
        return [(by_group[g], n) for g, n in groups_in(tuple(by_group), first, count)]

    def kernels_per_layer(self) -> float:
        """Kernels a decoder layer launches, averaged over the layers."""
        layers = sum(g.group.count for g in self.layers)
        return sum(len(g.ops) * g.group.count for g in self.layers) / layers

    def with_layers(self, rebuild) -> ForwardOps:
        """The same pass with each group's kernels replaced by rebuild(layer kind, its kernels)."""
        return replace(self, layers=tuple(LayerOps(g.group, tuple(rebuild(g.group.layer, g.ops)))
                                          for g in self.layers))


@lru_cache(maxsize=512)
def forward_ops(spec: ModelSpec, batch: int, seq: int, e: int, shards: int = 1, cuda: bool = True) -> ForwardOps:
    """Kernels of model(input_ids) for `batch` x `seq`; `shards` > 1 splits heads/FFN (tensor
    parallel); `cuda` False for a CPU, whose attention backends differ."""
    t, h, v = batch * seq, spec.hidden, spec.vocab
    arch = spec.arch

    def norm(name: str, group: str, rows: int, width: int, e: int) -> list[Op]:
        return arch.norm_ops(spec, name, group, rows, width, e)

    layers = tuple(LayerOps(g, tuple(layer_ops(spec, g.layer, batch, seq, e, shards, cuda)))
                   for g in spec.layer_groups)
    if spec.fp8 is not None:   # FP8 weights: their GEMMs read 1-byte weights (fp8.py)
        layers = tuple(LayerOps(g.group, tuple(fp8.layer_ops(spec, g.group.layer, g.group.first, g.ops, e)))
                       for g in layers)
    embed = arch.embed_dim(spec)   # token table and LM head input width (OPT: word_embed_proj_dim)
    pre = [ew("embed_tokens", "embeddings", t * embed, 2 * e)] + arch.embedding_ops(spec, batch, seq, e)
    pre += arch.pre_layer_ops(spec, seq, e)
    post = norm("final_norm", "final norm", t, h, e) if arch.has_final_norm(spec) else []
    post += arch.head_input_ops(spec, t, e)
    head = gemm("lm_head", "lm head", t, v // shards, embed, e, arch.head_bias(spec))
    post.append(fp8.fp8_gemm(head, spec.fp8, e) if fp8.head_converted(spec) else head)
    post += arch.head_ops(spec, t, v // shards, e)
    return ForwardOps(tuple(pre), layers, tuple(post))


def layer_ops(spec: ModelSpec, layer: LayerSpec, batch: int, seq: int, e: int, shards: int = 1,
              cuda: bool = True) -> list[Op]:
    """Kernels of one decoder layer of kind `layer` over `batch` x `seq` tokens (the family's
    hooks get the layer: its attention kind and its MLP)."""
    t, h, f = batch * seq, spec.hidden, spec.layer_ffn(layer) // shards
    heads, kv = max(1, spec.heads // shards), max(1, spec.kv_heads // shards)
    qd, kvd = heads * spec.head_dim, kv * spec.head_dim
    arch = spec.arch
    ops = arch.norm_ops(spec, "input_norm", "norms", t, h, e)
    if layer.attention.kind == "linear":   # a recurrent token mixer: the family prices it whole
        ops += arch.linear_attention_ops(spec, layer, batch, seq, e, shards)
    else:
        ops += _attention_block(spec, layer, batch, seq, e, shards, cuda, heads, kv, qd, kvd)
    ops += arch.sublayer_output_ops(spec, "post_attention_norm", t, e)
    ops.append(ew("residual_attn", "residuals", t * h, 3 * e))
    ops += arch.norm_ops(spec, "post_norm", "norms", t, h, e)
    ops += arch.mlp_ops(spec, t, f, e, layer=layer)
    ops += arch.sublayer_output_ops(spec, "post_feedforward_norm", t, e)
    ops.append(ew("residual_mlp", "residuals", t * h, 3 * e))
    return ops


def _attention_block(spec: ModelSpec, layer: LayerSpec, batch: int, seq: int, e: int, shards: int, cuda: bool,
                     heads: int, kv: int, qd: int, kvd: int) -> list[Op]:
    """An attention layer's token mixer: q/k/v, the cache update, attention and o_proj."""
    t, h, arch = batch * seq, spec.hidden, spec.arch
    ops = arch.qkv_ops(spec, t, qd, kvd, e, layer=layer)
    if spec.use_cache:  # DynamicLayer.update: torch.cat([empty, k]) copies K and V
        per_tensor = kv_cache.cache_bytes_per_token(spec, layer, e, shards) // (2 * e)   # elements of K (of V) per token
        ops += [ew("cache_k", "kv cache", t * per_tensor, 2 * e, "strided_cat"),
                ew("cache_v", "kv cache", t * per_tensor, 2 * e, "strided_cat")]
    ops += arch.attention_ops(spec, batch, seq, heads, kv, e, cuda, layer=layer)
    od = arch.attention_out_dim(spec, heads)   # the attention output's width (MLA: heads x v_head_dim)
    ops.append(ew("attn_transpose", "attention", t * od, 2 * e, "transpose"))
    ops.append(gemm("o_proj", ATTENTION_PROJECTIONS, t, h, od, e, spec.out_bias))
    return ops
