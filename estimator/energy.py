"""Power model: joules of a forward pass, summed over every GPU taking part.

Board power comes from the calibration's power microbenchmarks (profile.PowerModel): a GEMM loop (``gemm_w``, at the
power limit, running at ``gemm_sustained_tflops`` instead of ``gemm_burst_tflops``), a copy loop,
a forward-pass-like mix of the two (``mixed_w`` at ``mixed_compute_fraction`` of GEMM time), and
the launch-bound floor (``launch_bound_w``: clocks up, tiny kernels). Energy per unit of work is
taken as constant: an unthrottled GEMM draws ``gemm_w`` x burst/sustained, a memory-bound kernel
in a mix draws what makes the mixed point consistent. When a GPU's busy stretch would exceed the
power limit, compute kernels slow down until it does not (``power_cap_slowdown``); their energy
stays that of the work. Kernels near the launch floor draw little more than the floor (occupancy
weighting); gaps inside a GPU's busy span draw the floor; a pipeline stage waiting draws
``hot_idle_w``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .profile import PowerModel


@dataclass
class GpuLoad:
    """What one GPU did in a pass, in microseconds (compute kernels already slowed by the cap)."""
    compute_us: float = 0.0       # GEMM and attention kernels
    memory_us: float = 0.0        # memory-bound kernels and copies
    compute_occ_us: float = 0.0   # sum of compute kernel time x occupancy (0..1)
    memory_occ_us: float = 0.0    # sum of memory kernel time x occupancy
    slowdown: float = 1.0         # power-cap factor applied to compute kernels

    @property
    def busy_us(self) -> float:
        return self.compute_us + self.memory_us


def unconstrained_powers_w(power: PowerModel) -> tuple[float, float]:
    """(GEMM, memory-bound) power of kernels running free of the power limit."""
    p_gemm = power.gemm_w
    if power.gemm_burst_tflops and power.gemm_sustained_tflops:
        p_gemm *= power.gemm_burst_tflops / power.gemm_sustained_tflops
    f_mix = power.mixed_compute_fraction or 0.0
    p_mem = power.memory_w
    if power.mixed_w is not None and 0 < f_mix < 1:
        p_mem = max(p_mem, (power.mixed_w - f_mix * p_gemm) / (1 - f_mix))
    return p_gemm, p_mem


def gpu_energy_j(load: GpuLoad, span_us: float, total_us: float, power: PowerModel) -> float:
    """Energy of one GPU: its kernels, active gaps within its span, waiting outside it."""
    floor = power.launch_bound_w
    p_gemm, p_mem = unconstrained_powers_w(power)
    kernels = (floor * load.busy_us + (p_gemm / load.slowdown - floor) * load.compute_occ_us
               + (p_mem - floor) * load.memory_occ_us)
    gaps = max(0.0, span_us - load.busy_us)
    waiting = max(0.0, total_us - max(span_us, load.busy_us))
    hot_idle_w = power.idle_w if power.hot_idle_w is None else power.hot_idle_w
    return 1e-6 * (kernels + gaps * floor + waiting * hot_idle_w)


def power_cap_slowdown(compute_us: float, memory_us: float, window_us: float, power: PowerModel) -> float:
    """Factor on compute-kernel time when a busy stretch would draw more than the power limit.

    Unconstrained GEMM power is the capped GEMM-loop power scaled by burst/sustained throughput
    (same energy per FLOP); memory-bound kernels in a mix draw what makes the calibrated mixed
    point consistent. If the stretch's average exceeds the limit, clocks drop until it does not:
    (P_g*tc + P_m*tm + P_i*ti) / (s*tc + tm + ti) = limit, solved for s (at least 1).
    """
    needed = (power.gemm_w, power.gemm_burst_tflops, power.gemm_sustained_tflops, power.power_limit_w)
    if compute_us <= 0 or not all(needed):
        return 1.0
    p_gemm, p_mem = unconstrained_powers_w(power)
    idle_us = max(0.0, window_us - compute_us - memory_us)
    joules = p_gemm * compute_us + p_mem * memory_us + power.launch_bound_w * idle_us
    s = (joules / power.power_limit_w - memory_us - idle_us) / compute_us
    return max(1.0, s)


# -- the two rules above over numpy arrays of many workloads (forward_many.py): the same
# arithmetic in the same order, so the same floats (tests/test_forward_many.py holds them equal)

def _positive(x):
    """max(0.0, x) of each element (0.0 unless x > 0, as Python's max)."""
    import numpy as np
    return np.where(x > 0.0, x, 0.0)


def gpu_energy_j_many(load: GpuLoad, span_us, total_us, power: PowerModel):
    """gpu_energy_j of a GpuLoad whose fields are arrays over workloads."""
    import numpy as np
    floor = power.launch_bound_w
    p_gemm, p_mem = unconstrained_powers_w(power)
    kernels = (floor * load.busy_us + (p_gemm / load.slowdown - floor) * load.compute_occ_us
               + (p_mem - floor) * load.memory_occ_us)
    gaps = _positive(span_us - load.busy_us)
    busiest = np.where(span_us >= load.busy_us, span_us, load.busy_us)   # max(span, busy)
    waiting = _positive(total_us - busiest)
    hot_idle_w = power.idle_w if power.hot_idle_w is None else power.hot_idle_w
    return 1e-6 * (kernels + gaps * floor + waiting * hot_idle_w)


def power_cap_slowdown_many(compute_us, memory_us, window_us, power: PowerModel):
    """power_cap_slowdown of arrays of busy stretches."""
    import numpy as np
    needed = (power.gemm_w, power.gemm_burst_tflops, power.gemm_sustained_tflops, power.power_limit_w)
    if not all(needed):
        return np.ones(np.shape(compute_us))
    p_gemm, p_mem = unconstrained_powers_w(power)
    idle_us = _positive(window_us - compute_us - memory_us)
    joules = p_gemm * compute_us + p_mem * memory_us + power.launch_bound_w * idle_us
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (joules / power.power_limit_w - memory_us - idle_us) / compute_us
    return np.where(compute_us <= 0, 1.0, np.where(s > 1.0, s, 1.0))
