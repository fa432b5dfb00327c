"""Price one kernel on one device: GPU time from the calibrated tables, and what bounds it."""
from __future__ import annotations

from dataclasses import dataclass

from . import fp8
from .device import GB, DeviceSpec
from .op_builders import FLOAT32_GEMM, MASKED
from .ops import Op
from .profile import Profile

# ESTIMATE, not measured: an SDPA given an explicit mask (sliding layers past their window) runs
# the memory-efficient kernel over every score, not flash over the causal half; no masked-SDPA
# grid is calibrated, so it is priced as the causal grid's time at its shape times this factor
# (twice the scores computed). Estimates with such layers say so in a note (layers.masked_note).
MASKED_SDPA_FACTOR = 2.0


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
    out = []
    for op in ops:
        kind = op.kind
        if kind == "gemm":   # a float32 matmul inside a lower-precision model runs on the float32 grid
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
            t = max(profile.sdpa_us(*op.shape, key) * (MASKED_SDPA_FACTOR if op.pattern == MASKED else 1.0),
                    floor)
        else:
            t = profile.elementwise_us(op.pattern, op.bytes)
        compute = op.flops / peak_flops if kind in COMPUTE_OPS else 0.0
        memory = op.bytes / peak_bw
        if t <= latency:
            bound = "latency"
        else:
            bound = "compute" if compute >= memory else "memory"
        # Power follows occupancy, not efficiency: a long strided copy keeps the board as busy as
        # a fast one, while a kernel near the launch floor is mostly latency.
        out.append(OpCost(op, t, bound, max(0.0, 1.0 - floor / t)))
    return out
