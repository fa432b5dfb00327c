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
        work, sync = self.host_work_us, self.sync   # locals: the same additions, in the same order
        for host, dur, blocking in steps:
            h += host
            work += host
            start = h if h > g else g
            if start0 is None:
                start0 = start
            g = start + dur
            busy += dur
            if blocking or sync:
                h = g
        self.host_work_us = work
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


class ClockMany:
    """Clock for many workloads at once (forward_many.py): every time a numpy array over the
    workloads, kernels still launched one after another (the overlap rule is a recurrence), so
    each workload's floats are those Clock gives it (tests/test_forward_many.py). Steps are
    (host_us, gpu_us array, blocking), host_us shared by all workloads."""

    def __init__(self, n: int, sync: bool = False):
        import numpy as np
        self.np = np
        self.host_us = np.zeros(n)
        self.gpu_us = np.zeros(n)
        self.host_work_us = np.zeros(n)
        self.busy_us: dict = {}
        self.first_us: dict = {}
        self.last_us: dict = {}
        self.sync = sync

    def run(self, gpu: int, steps: Sequence[tuple]) -> None:
        np = self.np
        h, g = self.host_us, self.gpu_us
        start0 = None
        busy = 0.0
        host_work = self.host_work_us
        for host, dur, blocking in steps:
            h = h + host
            host_work = host_work + host
            start = np.where(h > g, h, g)
            if start0 is None:
                start0 = start
            g = start + dur
            busy = busy + dur
            if blocking or self.sync:
                h = g
        self.host_work_us = host_work
        self._account(gpu, start0 if start0 is not None else g, g, busy)
        self.host_us, self.gpu_us = h, g

    def repeat(self, gpu: int, steps: Sequence[tuple], times: int) -> None:
        """Clock.repeat of every workload: each simulated until its own increments settle, then
        extrapolated (a workload settled keeps its state while the others go on)."""
        np = self.np
        active = np.ones(self.host_us.shape, dtype=bool)
        prev = None
        host_sum = sum(s[0] for s in steps)
        dur_sum = sum(s[1] for s in steps)
        for i in range(times):
            if not active.any():
                return
            saved = self._state(gpu)
            h0, g0 = self.host_us, self.gpu_us
            self.run(gpu, steps)
            inc = (self.host_us - h0, self.gpu_us - g0)
            self._keep(saved, gpu, active)
            if prev is not None:
                settled = active & (np.abs(inc[0] - prev[0]) < 1e-6) & (np.abs(inc[1] - prev[1]) < 1e-6)
                if settled.any():
                    left = times - i - 1
                    end = np.where(settled, self.gpu_us + inc[1] * left, self.gpu_us)
                    self.host_us = np.where(settled, self.host_us + inc[0] * left, self.host_us)
                    self.gpu_us = end
                    self.host_work_us = np.where(settled, self.host_work_us + host_sum * left, self.host_work_us)
                    busy = self.busy_us[gpu] + dur_sum * left
                    self.busy_us[gpu] = np.where(settled, busy, self.busy_us[gpu])
                    last = self.last_us[gpu]
                    self.last_us[gpu] = np.where(settled & ~(last >= end), end, last)
                    active = active & ~settled
            prev = inc

    def _state(self, gpu: int) -> tuple:
        return (self.host_us, self.gpu_us, self.host_work_us, self.busy_us.get(gpu), self.first_us.get(gpu),
                self.last_us.get(gpu))

    def _keep(self, saved: tuple, gpu: int, active) -> None:
        """Workloads not `active` get their state from before the last run back."""
        np = self.np
        h, g, work, busy, first, last = saved
        self.host_us = np.where(active, self.host_us, h)
        self.gpu_us = np.where(active, self.gpu_us, g)
        self.host_work_us = np.where(active, self.host_work_us, work)
        if busy is not None:
            self.busy_us[gpu] = np.where(active, self.busy_us[gpu], busy)
            self.first_us[gpu] = np.where(active, self.first_us[gpu], first)
            self.last_us[gpu] = np.where(active, self.last_us[gpu], last)

    def host_only(self, us: float) -> None:
        self.host_us = self.host_us + us
        self.host_work_us = self.host_work_us + us

    mirror = Clock.mirror   # the same copies of GPU `gpu`'s accounts, arrays or numbers

    def _account(self, gpu: int, start, end, busy) -> None:
        np = self.np
        self.busy_us[gpu] = self.busy_us.get(gpu, 0.0) + busy
        if gpu not in self.first_us:
            self.first_us[gpu] = start
        last = self.last_us.get(gpu, 0.0)
        self.last_us[gpu] = np.where(last >= end, last, end)

    @property
    def total_us(self):
        return self.np.where(self.host_us >= self.gpu_us, self.host_us, self.gpu_us)
