"""Host/GPU overlap of an eager forward pass.

PyTorch eager launches kernels asynchronously: the host spends ``host_us`` per kernel (Python,
dispatch, launch) and the GPU starts a kernel at max(its launch, the previous kernel's end).
A model is host-bound when launches arrive slower than the GPU finishes them (small models) and
GPU-bound otherwise. Decoder layers repeat, so after a few layers the per-layer increments settle
and the rest is extrapolated: the simulation costs a few layers, not all of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


@dataclass(frozen=True)
class GpuTime:
    """One GPU's part of a pass: kernel time and the span from its first kernel to its last."""
    gpu: int
    busy_us: float
    first_us: float
    last_us: float

    @property
    def span_us(self) -> float:
        return self.last_us - self.first_us


@dataclass
class Clock:
    host_us: float = 0.0
    gpu_us: float = 0.0          # end of the last kernel on the critical path
    busy_us: dict = field(default_factory=dict)   # gpu index -> kernel time
    first_us: dict = field(default_factory=dict)  # gpu index -> first kernel start
    last_us: dict = field(default_factory=dict)   # gpu index -> last kernel end
    host_work_us: float = 0.0   # host time spent launching (not waiting on blocking copies)
    sync: bool = False   # CPU execution: the host computes each kernel itself, nothing overlaps

    def run(self, gpu: int, steps: Sequence[tuple[float, float, bool]]) -> None:
        """Launch kernels (host_us, gpu_us, blocking) one after another on `gpu`. A blocking step
        (a cross-device .to() without non_blocking) makes the host wait until the GPU is done."""
        h, g = self.host_us, self.gpu_us
        start0 = None
        busy = 0.0
        for host, dur, blocking in steps:
            h += host
            self.host_work_us += host
            start = h if h > g else g
            if start0 is None:
                start0 = start
            g = start + dur
            busy += dur
            if blocking or self.sync:
                h = g
        self._account(gpu, start0 if start0 is not None else g, g, busy)
        self.host_us, self.gpu_us = h, g

    def repeat(self, gpu: int, steps: Sequence[tuple[float, float]], times: int) -> None:
        """`times` identical layers; simulated until the increments settle, then extrapolated."""
        prev = None
        for i in range(times):
            h0, g0 = self.host_us, self.gpu_us
            self.run(gpu, steps)
            inc = (self.host_us - h0, self.gpu_us - g0)
            if prev is not None and abs(inc[0] - prev[0]) < 1e-6 and abs(inc[1] - prev[1]) < 1e-6:
                left = times - i - 1
                self.host_us += inc[0] * left
                self.gpu_us += inc[1] * left
                self.host_work_us += sum(s[0] for s in steps) * left
                self._account(gpu, self.gpu_us, self.gpu_us, sum(s[1] for s in steps) * left)
                return
            prev = inc

    def host_only(self, us: float) -> None:
        """Host work before any kernel (generate's set-up)."""
        self.host_us += us
        self.host_work_us += us

    def mirror(self, gpu: int, gpus: int) -> None:
        """GPUs 0 .. gpus-1 other than `gpu` did exactly what `gpu` did (replicas)."""
        for g in range(gpus):
            if g != gpu:
                self.busy_us[g] = self.busy_us[gpu]
                self.first_us[g] = self.first_us[gpu]
                self.last_us[g] = self.last_us[gpu]

    def gpu_times(self) -> tuple[GpuTime, ...]:
        """Every GPU that ran kernels, in the order it first did."""
        return tuple(GpuTime(g, busy, self.first_us[g], self.last_us[g]) for g, busy in self.busy_us.items())

    def _account(self, gpu: int, start: float, end: float, busy: float) -> None:
        self.busy_us[gpu] = self.busy_us.get(gpu, 0.0) + busy
        self.first_us.setdefault(gpu, start)
        self.last_us[gpu] = max(self.last_us.get(gpu, 0.0), end)

    @property
    def total_us(self) -> float:
        return max(self.host_us, self.gpu_us)
