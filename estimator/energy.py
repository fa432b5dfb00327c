"""Power model: joules of a forward pass, summed over every GPU taking part.

A board under load is power-managed over its whole busy stretch, not kernel by kernel: the
calibration measured the power of a GEMM loop (``gemm_w``), a copy loop (``memory_w``) and a
forward-pass-like mix of the two (``mixed_w`` at ``mixed_compute_fraction`` of GEMM time). A
GPU's busy power P(f) is interpolated on those three points at its own compute fraction f.
Each kernel then draws between the active floor (``launch_bound_w``: clocks up, tiny kernels)
and P(f), in proportion to how much of the calibrated peak rate it reaches (small, latency-bound
kernels stay near the floor). Gaps inside a GPU's busy span draw the active floor; time before
its first and after its last kernel (a pipeline stage waiting) draws ``hot_idle_w``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GpuLoad:
    """What one GPU did in a pass, in microseconds."""
    compute_us: float = 0.0      # GEMM and attention kernels
    memory_us: float = 0.0       # memory-bound kernels and copies
    weighted_us: float = 0.0     # sum of kernel time x utilization (0..1)

    @property
    def busy_us(self) -> float:
        return self.compute_us + self.memory_us


def busy_power_w(compute_fraction: float, power: dict) -> float:
    """P(f) through (0, memory_w), (f_mix, mixed_w), (1, gemm_w); without a mix point, a line."""
    pts = [(0.0, power["memory_w"])]
    if "mixed_w" in power and 0 < power.get("mixed_compute_fraction", 0) < 1:
        pts.append((power["mixed_compute_fraction"], power["mixed_w"]))
    pts.append((1.0, power["gemm_w"]))
    f = min(1.0, max(0.0, compute_fraction))
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if f <= x1:
            return y0 + (y1 - y0) * (f - x0) / (x1 - x0)
    return pts[-1][1]


def gpu_energy_j(load: GpuLoad, span_us: float, total_us: float, power: dict) -> float:
    """Energy of one GPU: its kernels, active gaps within its span, waiting outside it."""
    floor = power["launch_bound_w"]
    f = load.compute_us / load.busy_us if load.busy_us else 0.0
    kernels = floor * load.busy_us + (busy_power_w(f, power) - floor) * load.weighted_us
    gaps = max(0.0, span_us - load.busy_us)
    waiting = max(0.0, total_us - max(span_us, load.busy_us))
    return 1e-6 * (kernels + gaps * floor + waiting * power.get("hot_idle_w", power["idle_w"]))


def power_cap_slowdown(compute_us: float, memory_us: float, window_us: float, power: dict) -> float:
    """Factor on compute-kernel time when a busy stretch would draw more than the power limit.

    Unconstrained GEMM power is the capped GEMM-loop power scaled by burst/sustained throughput
    (same energy per FLOP); memory-bound kernels in a mix draw what makes the calibrated mixed
    point consistent. If the stretch's average exceeds the limit, clocks drop until it does not:
    (P_g*tc + P_m*tm + P_i*ti) / (s*tc + tm + ti) = limit, solved for s (at least 1).
    """
    needed = ("gemm_w", "gemm_burst_tflops", "gemm_sustained_tflops", "power_limit_w")
    if compute_us <= 0 or not all(power.get(k) for k in needed):
        return 1.0
    p_gemm = power["gemm_w"] * power["gemm_burst_tflops"] / power["gemm_sustained_tflops"]
    f_mix = power.get("mixed_compute_fraction", 0.0)
    p_mem = power["memory_w"]
    if "mixed_w" in power and 0 < f_mix < 1:
        p_mem = max(p_mem, (power["mixed_w"] - f_mix * p_gemm) / (1 - f_mix))
    idle_us = max(0.0, window_us - compute_us - memory_us)
    joules = p_gemm * compute_us + p_mem * memory_us + power["launch_bound_w"] * idle_us
    s = (joules / power["power_limit_w"] - memory_us - idle_us) / compute_us
    return max(1.0, s)
