"""Power model: joules of a forward pass, summed over every GPU taking part.

Each kernel draws power between the GPU's *active* floor (clocks up, launch-bound: measured while
a host loop launches tiny kernels) and the power of a saturating kernel of its kind (measured
during a back-to-back GEMM or copy loop), interpolated by the kernel's utilization of its
bounding resource. Gaps inside a GPU's busy span draw the active floor; time before its first
and after its last kernel (a pipeline stage waiting) draws idle power.
"""
from __future__ import annotations

from .cost import OpCost


def kernel_power_w(cost: OpCost, power: dict) -> float:
    active = power["launch_bound_w"]
    top = power["gemm_w"] if cost.op.kind in ("gemm", "sdpa") else power["memory_w"]
    return active + (top - active) * cost.utilization


def layer_energy(costs: list[OpCost], power: dict) -> tuple[float, float]:
    """(joules, busy seconds) of a list of kernels run once."""
    joules = sum(c.gpu_us * 1e-6 * kernel_power_w(c, power) for c in costs)
    return joules, sum(c.gpu_us for c in costs) * 1e-6


def gpu_energy_j(kernel_j: float, busy_s: float, span_s: float, total_s: float, power: dict) -> float:
    """Energy of one GPU: its kernels, active gaps within its span, idle outside it."""
    gaps = max(0.0, span_s - busy_s)
    waiting = max(0.0, total_s - max(span_s, busy_s))
    return kernel_j + gaps * power["launch_bound_w"] + waiting * power["idle_w"]
