"""Price one kernel on one device: GPU time from the calibrated tables, and what bounds it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import fp8
from .device import GB, DeviceSpec
from .op_builders import FLOAT32_GEMM, MASKED, ODD_ROW_SOFTMAX
from .ops import Op
from .profile import Profile

# ESTIMATE, not measured: an SDPA given an explicit mask (sliding layers past their window) runs
# without causal skipping over every score; no masked-SDPA grid is calibrated, so it is priced as
# the causal grid's time at its shape times a factor: twice the scores computed, and at head_dim
# 256 a slower kernel besides. Fitted on H200 rows: Mistral 7B's generate at 8k context (head_dim
# 128) wants 2x or less; Gemma 3 4B at 1 x 16384 (head_dim 256; cuDNN's kernel, 34 calls 257 ms in
# the kernel profile of reports/probes/h200-2026-12-03/loan5) wants 3.1x, where 2x left it 12.6 %
# fast. Estimates with such layers say so in a note (layers.masked_note).
MASKED_SDPA_FACTOR = 2.0          # head_dim <= 128
MASKED_SDPA_FACTOR_WIDE = 3.1     # head_dim > 128 (Gemma's 256)


def masked_sdpa_factor(head_dim: int) -> float:
    """The masked SDPA's time over the causal grid's at its shape (the estimate above)."""
    return MASKED_SDPA_FACTOR if head_dim <= 128 else MASKED_SDPA_FACTOR_WIDE

# A softmax over rows of an odd length (gpt-oss's scores with their sink column: keys + 1) cannot
# use vectorized loads: on the H200 of 2026-12-03 (loan 5, reports/probes/h200-2026-12-03/loan5/
# prof-gpt-oss-20b-8x2048.txt) cunn_SoftMaxForwardReg over 8 x 64 x 2048 rows of 2049 bf16 took
# 11.7 ms per call where the calibrated reduce pattern prices its 8.6 GB at 2.2 ms. Priced as the
# reduce pattern's time above the launch floor times this factor. One kernel profile: an estimate.
ODD_ROW_SOFTMAX_FACTOR = 5.4


@dataclass(frozen=True)
class OpCost:
    op: Op
    gpu_us: float
    bound: str          # compute | memory | latency (kernel floor)
    utilization: float  # occupancy 0..1: 1 - launch floor / kernel time (drives the power model)


def matmul_key(dtype: str, tf32: bool) -> str:
    return "tf32" if dtype == "float32" and tf32 else dtype


COMPUTE_OPS = ("gemm", "sdpa", "grouped_gemm")   # kernels with a FLOP roofline
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}   # activations of an FP8-weight GEMM


def price(op: Op, device: DeviceSpec, profile: Profile, dtype: str, tf32: bool = False) -> OpCost:
    """Calibrated time of `op` (price_all of one kernel)."""
    return price_all((op,), device, profile, dtype, tf32)[0]


def price_all(ops: tuple[Op, ...] | list[Op], device: DeviceSpec, profile: Profile, dtype: str,
              tf32: bool = False) -> list[OpCost]:
    """Calibrated time of each of `ops`; datasheet peaks classify the bound, kernel occupancy
    drives the power model. Pure; not memoized per op (a new workload's ops are new: a per-op
    memo missed 99 % of the time, and its entries pushed table lookups out): the table lookups
    below are memoized on the profile, and schedule.Pass.price memoizes whole kernel lists. What
    does not depend on the kernel (peaks, the launch floor) is read once per list."""
    key, fp32_key = matmul_key(dtype, tf32), matmul_key("float32", tf32)
    peak_flops = device.matmul_tflops(dtype, tf32) * 1e12
    peak_bw = device.memory_bandwidth_gb_s * GB
    floor = profile.floor_us
    latency = floor * 1.05
    elementwise_us = profile.elementwise_us
    out = []
    append = out.append
    for op in ops:
        kind = op.kind
        if kind == "elementwise":   # most kernels of a pass
            if op.pattern == ODD_ROW_SOFTMAX:   # the reduce pattern, slowed above the launch floor
                t = elementwise_us("reduce", op.bytes)
                t = floor + (t - floor) * ODD_ROW_SOFTMAX_FACTOR if t > floor else t
            else:
                t = elementwise_us(op.pattern, op.bytes)
        elif kind == "gemm":   # a float32 matmul inside a lower-precision model runs on the float32 grid
            t = profile.gemm_us(*op.shape, key if op.pattern != FLOAT32_GEMM else fp32_key)
            if op.pattern == fp8.PATTERN:             # FP8 weights: from the 16-bit GEMM (fp8.py)
                t = fp8.gemm_us(op, t, DTYPE_BYTES.get(dtype, 2), peak_flops, peak_bw)
            t = max(t, floor)
        elif kind == "grouped_gemm":                   # MoE experts, transformers' grouped_mm
            t = profile.grouped_gemm_us(*op.shape, key)
            if op.pattern == fp8.PATTERN:
                t = fp8.gemm_us(op, t, DTYPE_BYTES.get(dtype, 2), peak_flops, peak_bw)
            t = max(t, floor)
        elif kind == "sdpa" and len(op.shape) == 4:   # decode: one query per head over the cache
            t = profile.copy_us(op.bytes / 2)          # reads K and V once: memory-bound
        elif kind == "sdpa":
            t = max(profile.sdpa_us(*op.shape, key) * (masked_sdpa_factor(op.shape[2]) if op.pattern == MASKED else 1.0),
                    floor)
        else:
            t = elementwise_us(op.pattern, op.bytes)
        if t <= latency:
            bound = "latency"
        else:
            compute = op.flops / peak_flops if kind in COMPUTE_OPS else 0.0
            bound = "compute" if compute >= op.bytes / peak_bw else "memory"
        # Power follows occupancy, not efficiency: a long strided copy keeps the board as busy as
        # a fast one, while a kernel near the launch floor is mostly latency.
        append(OpCost(op, t, bound, max(0.0, 1.0 - floor / t)))
    return out


# Bound of a kernel priced for many workloads (price_many): a code per workload, BOUND_NAMES[code].
BOUND_NAMES = ("latency", "memory", "compute", "communication")
LATENCY, MEMORY, COMPUTE, COMMUNICATION = range(4)


@dataclass(frozen=True)
class OpCostMany:
    """OpCost of one kernel for many workloads at once: `op`'s sizes, `gpu_us`, `bound` (codes of
    BOUND_NAMES) and `utilization` are numpy arrays over the workloads (or numbers shared by all)."""
    op: Op
    gpu_us: Any
    bound: Any
    utilization: Any


def price_many(ops: tuple[Op, ...] | list[Op], device: DeviceSpec, profile: Profile, dtype: str,
               tf32: bool = False) -> list[OpCostMany]:
    """price_all for kernels whose sizes are numpy arrays over many workloads (forward_many.py):
    the same tables, rules and floats, one array per kernel. Kinds other than gemm, sdpa (not a
    decode one) and elementwise raise NotImplementedError (the caller prices those one by one)."""
    import numpy as np
    key = matmul_key(dtype, tf32)
    peak_flops = device.matmul_tflops(dtype, tf32) * 1e12
    peak_bw = device.memory_bandwidth_gb_s * GB
    floor = profile.floor_us
    latency = floor * 1.05
    out = []
    looked_up: dict[tuple, Any] = {}   # kernels of equal sizes (the same values, not just alike) looked up once
    for op in ops:
        kind = op.kind
        sizes = op.shape if kind in ("gemm", "sdpa") else (op.bytes,)
        same = (kind, op.pattern) + tuple(x.tobytes() if hasattr(x, "ndim") else x for x in sizes)
        t = looked_up.get(same)
        if op.pattern in (FLOAT32_GEMM, fp8.PATTERN, ODD_ROW_SOFTMAX):   # the float32 grid, FP8 weights: one by one
            raise NotImplementedError(f"{op.pattern} kernels are priced one workload at a time")
        if t is not None:
            pass
        elif kind == "gemm":
            t = np.maximum(profile.gemm_us_many(*op.shape, key), floor)
        elif kind == "sdpa" and len(op.shape) == 3 and not hasattr(op.shape[2], "ndim"):
            t = np.maximum(profile.sdpa_us_many(op.shape[0], op.shape[1], op.shape[2], key)
                           * (masked_sdpa_factor(op.shape[2]) if op.pattern == MASKED else 1.0), floor)
        elif kind == "elementwise":
            t = profile.elementwise_us_many(op.pattern, op.bytes)
        else:
            raise NotImplementedError(f"{kind} kernels are priced one workload at a time")
        looked_up[same] = t
        compute = op.flops / peak_flops if kind in COMPUTE_OPS else 0.0
        memory = op.bytes / peak_bw
        bound = np.where(t <= latency, LATENCY, np.where(compute >= memory, COMPUTE, MEMORY))
        occupancy = 1.0 - floor / t
        out.append(OpCostMany(op, t, bound, np.where(occupancy > 0.0, occupancy, 0.0)))
    return out
