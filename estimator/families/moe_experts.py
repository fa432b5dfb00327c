"""The experts of an MoE layer as transformers 5.x runs them (integrations/moe.py), per
``experts_implementation``: "grouped_mm" (the default), "batched_mm" (what ``generate`` switches
the decode steps to on a GPU) and "eager" (a Python loop over experts; families/moe.py).

grouped_mm, S = tokens x top_k routed (token, expert) pairs, no host synchronisation:
    sort(expert ids) (cub radix sort); perm // top_k; hidden[perm // top_k] (gather S x h);
    weights[perm]; ids.int(); histc (tokens per expert); cumsum (offsets);
    the sentinel masks of transformers 5.17 (a torch-profiler trace on an H200, 2026-12-01:
    three masked_fill_ a layer, two of them out of place, i.e. a clone first): the gathered rows
    in place, the gate_up and the down outputs out of place;
    grouped GEMM gate_up (E experts, S / E rows each, 2f x h); act(gate) * up;
    grouped GEMM down (h x f); proj * weights (Mixtral: float32 weights, so a float32 product);
    inv_perm = empty_like / arange / index_put; out[inv_perm] (gather S x h);
    view(T, top_k, h).sum(1); (Mixtral: .to(dtype) of the float32 sum)
batched_mm (decode): hidden.repeat_interleave(top_k); gate_up_proj[ids] (a copy of one expert
    weight per pair: S x 2f x h elements); bmm over the S pairs; act * up; down_proj[ids]
    (S x h x f); bmm; proj * weights; view(T, top_k, h).sum(1); the gathered weights are the
    working set (S x 3 f h elements: 11.3 GB for Mixtral-8x7B at 16 tokens, measured).
The grouped GEMM is priced from its calibration grid (estimator/grouped.py); the batched path's
weight gathers and bmm are memory-bound copies.
"""
from __future__ import annotations

from ..op_builders import Op, ew
from ..workload import EXPERTS_IMPLEMENTATIONS as IMPLEMENTATIONS

MLP = "mlp"
ROUTER = "router"
INDEX_BYTES = 8
SORT_KERNELS = 10   # cub radix sort of int64 keys with indices: histogram, scan, onesweep passes (profiled: 8 onesweep a layer)
__all__ = ["IMPLEMENTATIONS", "DEFAULT", "grouped_ops", "batched_ops", "live_per_token", "grouped_gemm"]
DEFAULT = "grouped_mm"   # transformers 5.x's own default (modeling_utils.get_correct_experts_implementation)


def grouped_gemm(name: str, experts: int, rows: float, n: int, k: int, e: int) -> Op:
    """One grouped GEMM: `experts` weights (n x k), `rows` routed rows each (may be fractional)."""
    flops = 2.0 * experts * rows * n * k
    nbytes = e * (experts * n * k + experts * rows * (n + k))
    return Op(name, MLP, "grouped_gemm", flops, nbytes, (experts, rows, n, k))


def grouped_ops(h: int, f: int, n: int, k: int, t: int, e: int, w: int) -> list[Op]:
    """The grouped_mm experts after the router; `w` bytes of the routing weights."""
    s = t * k
    ops = [ew("sort_ids", ROUTER, s, 2 * INDEX_BYTES, "reduce")] * SORT_KERNELS
    ops += [ew("perm_div", ROUTER, s, 2 * INDEX_BYTES, "unary"),
            ew("gather_tokens", MLP, s * h, 2 * e, "strided"),
            ew("gather_weights", ROUTER, s, 2 * w, "strided"),
            ew("ids_to_int", ROUTER, s, INDEX_BYTES + 4, "cast"),
            ew("histc", ROUTER, s, 4, "reduce"), ew("offsets_cumsum", ROUTER, n, 8, "reduce"),
            ew("mask_rows", MLP, s * h, 2 * e, "strided"),
            grouped_gemm("experts_gate_up", n, s / n, 2 * f, h, e),
            ew("mask_gate_up.clone", MLP, s * 2 * f, 2 * e, "copy"), ew("mask_gate_up", MLP, s * 2 * f, 2 * e, "strided"),
            ew("act", MLP, s * f, 2 * e, "strided"), ew("gate_mul", MLP, s * f, 3 * e),
            grouped_gemm("experts_down", n, s / n, h, f, e),
            ew("mask_down.clone", MLP, s * h, 2 * e, "copy"), ew("mask_down", MLP, s * h, 2 * e, "strided"),
            ew("weight_mul", MLP, s * h, e + w + max(e, w), "broadcast"),
            ew("inv_perm_arange", ROUTER, s, INDEX_BYTES, "unary"),
            ew("inv_perm_put", ROUTER, s, 3 * INDEX_BYTES, "strided"),
            ew("restore_order", MLP, s * h, 2 * max(e, w), "strided"),
            Op("sum_top_k", MLP, "elementwise", float(s * h), float(max(e, w) * (s * h + t * h)), pattern="reduce")]
    if w != e:
        ops.append(ew("to_dtype", MLP, t * h, w + e, "cast"))
    return ops


def batched_ops(h: int, f: int, n: int, k: int, t: int, e: int, w: int) -> list[Op]:
    """The batched_mm experts after the router (generate's decode steps on a GPU)."""
    s = t * k
    ops = [ew("repeat_interleave", MLP, s * h, 2 * e, "strided")]
    for name, out, inner in (("gate_up", 2 * f, h), ("down", h, f)):
        weights = s * out * inner
        ops += [ew(f"gather_{name}", MLP, weights, 2 * e, "copy"),
                Op(f"bmm_{name}", MLP, "elementwise", 2.0 * weights, float(e * (weights + s * (out + inner))),
                   pattern="copy")]
        if name == "gate_up":
            ops += [ew("act", MLP, s * f, 2 * e, "strided"), ew("gate_mul", MLP, s * f, 3 * e)]
    ops += [ew("weight_mul", MLP, s * h, e + w + max(e, w), "broadcast"),
            Op("sum_top_k", MLP, "elementwise", float(s * h), float(max(e, w) * (s * h + t * h)), pattern="reduce")]
    if w != e:
        ops.append(ew("to_dtype", MLP, t * h, w + e, "cast"))
    return ops


def live_per_token(impl: str, h: int, f: int, k: int, e: int, w: int) -> int:
    """Elements of `e` bytes alive per token at the experts' busiest moment (beside the layer input).
    grouped_mm: the sorted rows, gate_up output, act and product (k of each per token);
    batched_mm: the gathered gate_up and down weights of every pair, plus the same activations."""
    acts = k * (h + 4 * f)
    if impl == "batched_mm":
        return acts + k * 3 * f * h
    return acts + (k * h * max(0, w - e)) // e
