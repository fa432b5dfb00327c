"""forward_ops: the kernels one eager forward pass launches, with FLOPs and bytes moved.

The sequence follows what transformers' eager modules do, kernel by kernel (what differs between
families comes from the spec's family, ``spec.arch``), because for memory-bound parts and for
host overhead the number of kernels matters as much as the arithmetic. Notation: T tokens
(batch x seq), h hidden, f FFN width, e bytes per element, V vocabulary. The kernel builders
(Op, gemm, ew, ...) live in op_builders.py and are re-exported here.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from .op_builders import (ATTENTION_PROJECTIONS, FP32, Op, activation, ew, gemm, layer_norm, rms_norm,
                          rotary, sdpa, sdpa_math)

if TYPE_CHECKING:
    from .spec import ModelSpec

__all__ = ["ATTENTION_PROJECTIONS", "FP32", "ForwardOps", "Op", "activation", "ew", "forward_ops", "gemm",
           "layer_norm", "rms_norm", "rotary", "sdpa", "sdpa_math"]


@dataclass(frozen=True)
class ForwardOps:
    """Kernels before the first layer, in one decoder layer, and after the last layer."""
    pre: tuple[Op, ...]
    layer: tuple[Op, ...]
    post: tuple[Op, ...]


@lru_cache(maxsize=512)
def forward_ops(spec: ModelSpec, batch: int, seq: int, e: int, shards: int = 1, cuda: bool = True) -> ForwardOps:
    """Kernels of model(input_ids) for `batch` x `seq`; `shards` > 1 splits heads/FFN (tensor
    parallel); `cuda` False for a CPU, whose attention backends differ."""
    t, h, f, v = batch * seq, spec.hidden, spec.ffn // shards, spec.vocab
    heads, kv = max(1, spec.heads // shards), max(1, spec.kv_heads // shards)
    qd, kvd = heads * spec.head_dim, kv * spec.head_dim
    layer: list[Op] = []
    attn = ATTENTION_PROJECTIONS
    arch = spec.arch

    def norm(name: str, group: str, rows: int, width: int, e: int) -> list[Op]:
        return arch.norm_ops(spec, name, group, rows, width, e)

    layer += norm("input_norm", "norms", t, h, e)
    layer += arch.qkv_ops(spec, t, qd, kvd, e)
    if spec.use_cache:  # DynamicLayer.update: torch.cat([empty, k]) copies K and V
        layer += [ew("cache_k", "kv cache", t * kvd, 2 * e, "strided_cat"),
                  ew("cache_v", "kv cache", t * kvd, 2 * e, "strided_cat")]
    layer += arch.attention_ops(spec, batch, seq, heads, kv, e, cuda)
    layer.append(ew("attn_transpose", "attention", t * qd, 2 * e, "transpose"))
    layer.append(gemm("o_proj", attn, t, h, qd, e, spec.out_bias))
    layer += arch.sublayer_output_ops(spec, "post_attention_norm", t, e)
    layer.append(ew("residual_attn", "residuals", t * h, 3 * e))
    layer += norm("post_norm", "norms", t, h, e)
    layer += arch.mlp_ops(spec, t, f, e)
    layer += arch.sublayer_output_ops(spec, "post_feedforward_norm", t, e)
    layer.append(ew("residual_mlp", "residuals", t * h, 3 * e))

    embed = arch.embed_dim(spec)   # token table and LM head input width (OPT: word_embed_proj_dim)
    pre = [ew("embed_tokens", "embeddings", t * embed, 2 * e)] + arch.embedding_ops(spec, batch, seq, e)
    pre += arch.pre_layer_ops(spec, seq, e)
    post = norm("final_norm", "final norm", t, h, e) if arch.has_final_norm(spec) else []
    post += arch.head_input_ops(spec, t, e)
    post.append(gemm("lm_head", "lm head", t, v // shards, embed, e))
    post += arch.head_ops(spec, t, v // shards, e)
    return ForwardOps(tuple(pre), tuple(layer), tuple(post))
