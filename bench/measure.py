"""Measurements of one case: peak memory per GPU (CUDA allocator) and energy (NVML counters).

Runtime is measured by pytest-benchmark in the test itself (``benchmark.pedantic``); these are
the other two trackers, each a small function returning a typed result with its unit in the name.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from estimator import nvml


@dataclass(frozen=True)
class MemoryResult:
    memory_gb_per_gpu: list[float]

    @property
    def memory_gb(self) -> float:
        return max(self.memory_gb_per_gpu)


@dataclass(frozen=True)
class EnergyResult:
    energy_j_per_token: float | None   # None: no NVML energy counter
    window_s: float
    iterations: int
    power_w: float | None              # average over all GPUs in use, summed
    reason: str | None = None


def sync(gpus: int) -> None:
    for i in range(gpus):
        torch.cuda.synchronize(i)


def peak_memory(step: Callable[[], None], gpus: int) -> MemoryResult:
    """max_memory_allocated of each GPU in use during one call of `step`, in GB (10^9 bytes)."""
    for i in range(gpus):
        torch.cuda.reset_peak_memory_stats(i)
    step()
    return MemoryResult([torch.cuda.max_memory_allocated(i) / 1e9 for i in range(gpus)])


def energy(step: Callable[[], None], gpus: int, tokens_per_step: int, min_window_s: float = 1.0) -> EnergyResult:
    """Joules per token from the energy counters of every GPU in use over >= min_window_s."""
    start = [nvml.energy_mj(i) for i in range(gpus)]
    if any(s is None for s in start):
        return EnergyResult(None, 0.0, 0, None, "NVML energy counter unavailable")
    t0 = time.perf_counter()
    iterations = 0
    while iterations < 2 or time.perf_counter() - t0 < min_window_s:
        step()
        iterations += 1
    window = time.perf_counter() - t0
    end = [nvml.energy_mj(i) for i in range(gpus)]
    if any(e is None for e in end):
        return EnergyResult(None, window, iterations, None, "NVML energy counter unavailable")
    joules = sum(e - s for s, e in zip(start, end)) / 1e3
    return EnergyResult(joules / (iterations * tokens_per_step), window, iterations, joules / window)
