"""The kernel builders: one eager kernel (or a fixed run of them) as an Op with FLOPs and bytes moved.

A leaf module (it imports nothing of the estimator): the families build their layers from these,
and ops.forward_ops strings a forward pass together. Notation: T tokens, h hidden, e bytes per
element. GEMM FLOPs are 2·m·n·k; causal attention FLOPs are 4·b·H·s²·d / 2 (QKᵀ and PV, half the
scores masked), as in FlashAttention's accounting.
"""
from __future__ import annotations

from dataclasses import dataclass

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
        try:
            key = hash((self.name, self.group, self.kind, self.flops, self.bytes, self.shape, self.pattern))
        except TypeError:   # sizes as numpy arrays (forward_many.py: one Op per kernel for many workloads)
            key = None
        object.__setattr__(self, "_hash", key)

    def __hash__(self) -> int:
        if self._hash is None:
            raise TypeError("an Op of many workloads (array sizes) is not hashable")
        return self._hash


def as_float(x):
    """float(x); sizes given as a numpy array (forward_many.py prices many workloads at once) as they are."""
    return x if hasattr(x, "ndim") else float(x)


def gemm(name: str, group: str, m: int, n: int, k: int, e: int, bias: bool = False) -> Op:
    nbytes = e * (m * k + n * k + m * n + (n if bias else 0))
    return Op(name, group, "gemm", 2.0 * m * n * k, nbytes, (m, n, k))


def ew(name: str, group: str, elems: float, bytes_per_elem: float, pattern: str = "binary") -> Op:
    """Elementwise kernel over `elems` elements moving `bytes_per_elem` bytes per element."""
    return Op(name, group, "elementwise", as_float(elems), as_float(elems * bytes_per_elem), pattern=pattern)


def sdpa(group: str, batch: int, heads: int, kv_heads: int, seq: int, d: int, e: int) -> Op:
    flops = 4.0 * batch * heads * seq * seq * d / 2
    nbytes = e * batch * seq * d * (2 * heads + 2 * kv_heads)
    return Op("sdpa", group, "sdpa", flops, nbytes, (batch * heads, seq, d))


MASKED = "masked"   # Op.pattern of an SDPA given an explicit mask (cost.py: no masked grid calibrated)
ODD_ROW_SOFTMAX = "odd_row_softmax"   # Op.pattern of a softmax over rows of an odd length (cost.py)
FLOAT32_GEMM = "float32"   # Op.pattern of a GEMM that runs in float32 whatever the model's dtype (cost.py)


def bmm32(name: str, group: str, batch: int, m: int, n: int, k: int) -> Op:
    """A float32 batched matmul of `batch` (m x k) @ (k x n), priced as one float32 GEMM of
    batch*m rows (the delta rule of linear attention runs in float32)."""
    return Op(name, group, "gemm", 2.0 * batch * m * n * k, float(FP32 * batch * (m * k + n * k + m * n)),
              (batch * m, n, k), FLOAT32_GEMM)


def sdpa_masked(group: str, batch: int, heads: int, q_len: int, kv_len: int, d: int, e: int) -> Op:
    """SDPA with an explicit boolean mask (a sliding window past its window: transformers cannot
    skip the mask): no flash kernel, the memory-efficient one computes every score of the
    q_len x kv_len block (no causal skipping) and reads the mask; K/V come repeated to every head.
    Priced from the causal grid at (batch*heads, q_len, d), scaled in cost.py (masked_sdpa_factor)."""
    flops = 4.0 * batch * heads * q_len * kv_len * d
    nbytes = e * batch * heads * d * (2 * q_len + 2 * kv_len) + batch * q_len * kv_len
    return Op("sdpa", group, "sdpa", flops, nbytes, (batch * heads, q_len, d), MASKED)


def repeat_kv(group: str, batch: int, heads: int, kv: int, seq: int, d: int, e: int) -> list[Op]:
    """transformers' repeat_kv on K and V when heads > kv heads (expand + reshape copies both):
    eager attention, and SDPA given a mask (``use_gqa_in_sdpa`` is false then)."""
    if heads == kv:
        return []
    return [ew(f"repeat_{x}", group, batch * heads * seq * d, 2 * e, "strided") for x in "kv"]


def decode_attention(batch: int, heads: int, kv_heads: int, kv_len: int, d: int, e: int) -> Op:
    """SDPA of one query per head over `kv_len` cached keys: reads K and V once (memory-bound);
    shape (batch x heads, 1, kv_len, head_dim) tells cost.py to price it as a decode kernel."""
    flops = 4.0 * batch * heads * kv_len * d
    nbytes = e * batch * d * (2 * heads + 2 * kv_heads * kv_len)
    return Op("sdpa", "attention", "sdpa", flops, nbytes, (batch * heads, 1, kv_len, d))


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
