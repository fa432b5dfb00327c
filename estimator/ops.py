"""forward_ops: the kernels one eager forward pass launches, with FLOPs and bytes moved.

The sequence follows what transformers' eager modules do, kernel by kernel (what differs between
families comes from estimator.families), because for memory-bound parts and for host overhead the number
of kernels matters as much as the arithmetic. Notation: T tokens (batch x seq), h hidden, f FFN
width, e bytes per element, V vocabulary. GEMM FLOPs are 2·m·n·k; causal attention FLOPs are
4·b·H·s²·d / 2 (QKᵀ and PV, half the scores masked), as in FlashAttention's accounting.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import ModelSpec

FP32 = 4  # bytes: RMSNorm and softmax statistics are computed in float32
ATTENTION_PROJECTIONS = "attention projections"   # breakdown group of q/k/v/o GEMMs


@dataclass(frozen=True)
class Op:
    name: str
    group: str            # breakdown group, e.g. "mlp", "attention", "norms", "lm head"
    kind: str             # gemm | sdpa | elementwise | comm
    flops: float
    bytes: float          # device-memory bytes read + written
    shape: tuple = ()     # gemm: (m, n, k); sdpa: (batch*heads, seq, head_dim)
    pattern: str = ""     # elementwise: the memory-access pattern timed by calibration (calibrate/elementwise.py)

    def __post_init__(self) -> None:
        # Ops key every pricing memo: hash the fields once, not at every lookup (a generation
        # estimate looks up ~40,000 of them)
        object.__setattr__(self, "_hash", hash((self.name, self.group, self.kind, self.flops, self.bytes,
                                                self.shape, self.pattern)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True)
class ForwardOps:
    """Kernels before the first layer, in one decoder layer, and after the last layer."""
    pre: tuple[Op, ...]
    layer: tuple[Op, ...]
    post: tuple[Op, ...]


def gemm(name: str, group: str, m: int, n: int, k: int, e: int, bias: bool = False) -> Op:
    nbytes = e * (m * k + n * k + m * n + (n if bias else 0))
    return Op(name, group, "gemm", 2.0 * m * n * k, nbytes, (m, n, k))


def ew(name: str, group: str, elems: float, bytes_per_elem: float, pattern: str = "binary") -> Op:
    """Elementwise kernel over `elems` elements moving `bytes_per_elem` bytes per element."""
    return Op(name, group, "elementwise", float(elems), float(elems * bytes_per_elem), pattern=pattern)


def qkv_projections(spec: ModelSpec, t: int, qd: int, kvd: int, e: int) -> list[Op]:
    """Separate q, k and v projections of the normed input (q/kv widths `qd`, `kvd` of one shard)."""
    g, h, bias = ATTENTION_PROJECTIONS, spec.hidden, spec.qkv_bias
    return [gemm("q_proj", g, t, qd, h, e, bias), gemm("k_proj", g, t, kvd, h, e, bias),
            gemm("v_proj", g, t, kvd, h, e, bias)]


def sdpa(group: str, batch: int, heads: int, kv_heads: int, seq: int, d: int, e: int) -> Op:
    flops = 4.0 * batch * heads * seq * seq * d / 2
    nbytes = e * batch * seq * d * (2 * heads + 2 * kv_heads)
    return Op("sdpa", group, "sdpa", flops, nbytes, (batch * heads, seq, d))


def sdpa_math(group: str, batch: int, heads: int, kv_heads: int, seq: int, d: int, e: int) -> list[Op]:
    """torch's math SDPA backend, which float32 attention with grouped K/V heads
    (``enable_gqa``) falls back to: neither flash nor cuDNN attention takes float32, and the
    memory-efficient kernel takes no ``enable_gqa`` (a torch-profiler trace of clm-60m in
    float32 on an H200: ``_scaled_dot_product_attention_math``, 1.8 ms a layer, 41 % of the
    pass). It repeats K and V to every head, scales q and k, materialises the full
    (batch, heads, seq, seq) scores with two batched matmuls (no causal skipping), adds the
    mask in place and runs ``_safe_softmax`` (softmax, isneginf, all, where)."""
    bh, scores, qk = batch * heads, batch * heads * seq * seq, batch * heads * seq * d
    ops = [ew(f"repeat_{x}", group, qk, 2 * e, "transpose") for x in "kv"] if kv_heads < heads else []
    ops += [ew(f"scale_{x}", group, qk, 2 * e, "unary") for x in "qk"]
    ops.append(gemm("scores_bmm", group, bh * seq, seq, d, e))
    ops += [ew("mask_add", group, scores, 2 * e, "broadcast"), ew("softmax", group, scores, 2 * e, "reduce"),
            ew("isneginf", group, scores, e + 1, "unary"), ew("all_neginf", group, scores, 1, "reduce"),
            ew("where", group, scores, 2 * e + 1, "binary")]
    ops.append(gemm("pv_bmm", group, bh * seq, d, seq, e))
    return ops


def rms_norm(name: str, group: str, t: int, h: int, e: int) -> list[Op]:
    """LlamaRMSNorm: to(fp32), pow, mean, +eps, rsqrt, mul, to(dtype), weight*x."""
    ops = [ew(f"{name}.to_fp32", group, t * h, e + FP32, "cast")] if e != FP32 else []
    ops += [ew(f"{name}.pow", group, t * h, 2 * FP32, "unary"), ew(f"{name}.mean", group, t * h, FP32, "reduce"),
            ew(f"{name}.add_eps", group, t, 2 * FP32, "unary"), ew(f"{name}.rsqrt", group, t, 2 * FP32, "unary"),
            ew(f"{name}.mul", group, t * h, 2 * FP32, "broadcast")]
    ops += [ew(f"{name}.to_dtype", group, t * h, FP32 + e, "cast")] if e != FP32 else []
    return ops + [ew(f"{name}.weight", group, t * h, 2 * e, "binary")]


def layer_norm(name: str, group: str, t: int, h: int, e: int) -> list[Op]:
    return [ew(name, group, t * h, 2 * e, "unary")]


def rotary(name: str, t: int, dim: int, e: int) -> list[Op]:
    """apply_rotary_pos_emb on one of q/k: x*cos, -x2, cat, rot*sin, add."""
    g = "rotary"
    return [ew(f"{name}.mul_cos", g, t * dim, 2 * e, "strided"), ew(f"{name}.neg", g, t * dim / 2, 2 * e, "half_neg"),
            ew(f"{name}.cat", g, t * dim, 2 * e, "strided_cat"), ew(f"{name}.mul_sin", g, t * dim, 2 * e, "binary"),
            ew(f"{name}.add", g, t * dim, 3 * e, "strided")]


def activation(name: str, group: str, elems: int, e: int, kind: str) -> list[Op]:
    if kind == "gelu_new":  # NewGELUActivation: 8 eager kernels (pow, mul, add, mul, tanh, add, mul, mul)
        per = [2, 2, 3, 2, 2, 2, 2, 3]
        return [ew(f"{name}.{i}", group, elems, b * e, "binary" if b == 3 else "unary") for i, b in enumerate(per)]
    return [ew(name, group, elems, 2 * e, "unary")]


def dense_mlp(spec: ModelSpec, t: int, f: int, e: int) -> list[Op]:
    """gate/act/up/mul/down (gated) or fc1/act/fc2 over `t` tokens, FFN width `f` of one shard."""
    h, mlp = spec.hidden, "mlp"
    if spec.gated_mlp:
        ops = [gemm("gate_proj", mlp, t, f, h, e, spec.mlp_bias)] + activation("act", mlp, t * f, e, spec.activation)
        ops += [gemm("up_proj", mlp, t, f, h, e, spec.mlp_bias), ew("gate_mul", mlp, t * f, 3 * e)]
    else:
        ops = [gemm("fc1", mlp, t, f, h, e, spec.mlp_bias)] + activation("act", mlp, t * f, e, spec.activation)
    return ops + [gemm("down_proj", mlp, t, h, f, e, spec.mlp_bias)]


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
    layer += spec.arch.qkv_ops(spec, t, qd, kvd, e)
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

    pre = [ew("embed_tokens", "embeddings", t * spec.proj_dim, 2 * e)] + arch.embedding_ops(spec, batch, seq, e)
    if spec.learned_positions:
        pre += [ew("embed_positions", "embeddings", t * h, 2 * e), ew("add_positions", "embeddings", t * h, 3 * e)]
    if spec.proj_dim != h:
        pre.append(gemm("project_in", "embeddings", t, h, spec.proj_dim, e))
    pre += spec.arch.pre_layer_ops(spec, seq, e)
    post = norm("final_norm", "final norm", t, h, e) if arch.has_final_norm(spec) else []
    if spec.proj_dim != h:
        post.append(gemm("project_out", "lm head", t, spec.proj_dim, h, e))
    post.append(gemm("lm_head", "lm head", t, v // shards, spec.proj_dim, e))
    post += arch.head_ops(spec, t, v // shards, e)
    return ForwardOps(tuple(pre), tuple(layer), tuple(post))
