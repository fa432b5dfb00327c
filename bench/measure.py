"""Measurements of one case: runtime (pytest-benchmark), peak memory per GPU (CUDA allocator)
and energy (NVML counters), each a typed result with its unit in the field names, and
``Measured``, the ``measured`` block of a result row built from them.

Runtime is timed by pytest-benchmark in the test itself (``benchmark.pedantic``); ``latency``
reads its statistics. The other two trackers are small functions that run the step themselves.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from estimator.calibrate import nvml

from .rounds import median_ci


@dataclass(frozen=True)
class LatencyResult:
    runtime_ms: float                  # median of the timed rounds
    runtime_ms_rounds: list[float]
    runtime_ms_iqr: float
    runtime_ms_spread: float | None = None  # half-width of the median's 95 % CI (bench/rounds.py)


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


@dataclass(frozen=True)
class Measured:
    """The ``measured`` block of a result row; field order is the JSON key order of reports/."""

    runtime_ms: float
    runtime_ms_rounds: list[float]
    runtime_ms_iqr: float
    memory_gb: float | None
    memory_gb_per_gpu: list[float] | None
    energy_j_per_token: float | None
    energy_window_s: float | None
    power_w: float | None
    throughput_tokens_per_s: float
    runtime_ms_spread: float | None = None  # half-width of the median's 95 % CI (bench/rounds.py)
    runtime_rounds: int | None = None       # how many rounds the stopping rule took

    @classmethod
    def of(cls, latency: LatencyResult, memory: MemoryResult | None, energy: EnergyResult | None,
           tokens: int) -> "Measured":
        """None for a tracker that did not run (the CPU case has no allocator or energy counter)."""
        return cls(latency.runtime_ms, latency.runtime_ms_rounds, latency.runtime_ms_iqr,
                   memory.memory_gb if memory else None, memory.memory_gb_per_gpu if memory else None,
                   energy.energy_j_per_token if energy else None, energy.window_s if energy else None,
                   energy.power_w if energy else None, tokens / (latency.runtime_ms / 1e3),
                   latency.runtime_ms_spread, len(latency.runtime_ms_rounds))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def latency(stats: Any) -> LatencyResult:
    """From pytest-benchmark's statistics (``benchmark.stats.stats``, in seconds)."""
    lo, hi = median_ci(stats.data)
    return LatencyResult(stats.median * 1e3, [x * 1e3 for x in stats.data], stats.iqr * 1e3, (hi - lo) / 2 * 1e3)


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
