"""Measurements of one case: runtime (timed rounds), peak memory per GPU (CUDA allocator)
and energy (NVML counters), each a typed result with its unit in the field names;
``Measured.of`` (bench/row.py, re-exported here) builds a row's ``measured`` block from them.

Runtime is timed in the test itself (bench/rounds.py's ``robust_rounds``; generation:
bench/generate_rounds.py), with the garbage collector frozen and off; ``latency`` reads the statistics. The other trackers are small functions that run the step themselves; a
rank of a distributed case (bench/dist_worker.py) uses the same ones, with a barrier as the
fence around each timed round and an all-reduce that ends the energy window on the same step.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from estimator.calibrate import nvml

from .host_speed import gc_off
from .rounds import median_ci
from .row import Measured

__all__ = ["LatencyResult", "MemoryResult", "EnergyResult", "Measured", "latency", "timed_rounds", "sync",
           "peak_memory", "energy_counters_mj", "energy_window", "joules", "energy"]


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


def latency(stats: Any) -> LatencyResult:
    """From timed rounds in seconds: bench/rounds.py's ``Rounds`` or pytest-benchmark's ``benchmark.stats.stats``."""
    lo, hi = median_ci(stats.data)
    return LatencyResult(stats.median * 1e3, [x * 1e3 for x in stats.data], stats.iqr * 1e3, (hi - lo) / 2 * 1e3)


def timed_rounds(step: Callable[[], None], rounds: int, fence: Callable[[], None] = lambda: None) -> list[float]:
    """Wall time of each of `rounds` calls of `step` in ms, each between two calls of `fence`
    (a barrier of all ranks in a distributed case: the round ends when the slowest rank is done)."""
    times = []
    with gc_off():   # no collection inside a timed round (bench/host_speed.py)
        for _ in range(rounds):
            fence()
            t0 = time.perf_counter()
            step()
            fence()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def sync(gpus: int) -> None:
    for i in range(gpus):
        torch.cuda.synchronize(i)


def _devices(gpus: int | Sequence[int]) -> list[int]:
    return list(range(gpus)) if isinstance(gpus, int) else list(gpus)


def peak_memory(step: Callable[[], None], gpus: int | Sequence[int]) -> MemoryResult:
    """max_memory_allocated of each GPU in use during one call of `step`, in GB (10^9 bytes);
    `gpus`: how many (cuda:0 ..) or which torch indices."""
    devices = _devices(gpus)
    for i in devices:
        torch.cuda.reset_peak_memory_stats(i)
    step()
    return MemoryResult([torch.cuda.max_memory_allocated(i) / 1e9 for i in devices])


def energy_counters_mj(nvml_indices: Sequence[int]) -> list[int] | None:
    """The NVML energy counters of these GPUs in mJ, or None when any of them has none."""
    values = [nvml.energy_mj(i) for i in nvml_indices]
    return None if any(v is None for v in values) else values


def _alone(long_enough: bool) -> bool:
    return long_enough


def energy_window(step: Callable[[], None], min_window_s: float, min_iterations: int = 2,
                  agree: Callable[[bool], bool] = _alone,
                  settle: Callable[[], None] = lambda: None) -> tuple[float, int]:
    """Call `step` until at least `min_iterations` calls and `min_window_s` seconds; returns
    (window in s, calls). Distributed: `agree` turns this rank's "long enough" into every
    rank's (an all-reduce), so the window ends on the same step everywhere, and `settle` (a
    barrier) runs before the window is closed."""
    t0 = time.perf_counter()
    iterations = 0
    while iterations < min_iterations or not agree(time.perf_counter() - t0 >= min_window_s):
        step()
        iterations += 1
    settle()
    return time.perf_counter() - t0, iterations


def joules(start_mj: Sequence[int], end_mj: Sequence[int]) -> float:
    return sum(e - s for s, e in zip(start_mj, end_mj)) / 1e3


def energy(step: Callable[[], None], gpus: int, tokens_per_step: int, min_window_s: float = 1.0) -> EnergyResult:
    """Joules per token from the energy counters of every GPU in use over >= min_window_s."""
    start = energy_counters_mj(range(gpus))
    if start is None:
        return EnergyResult(None, 0.0, 0, None, "NVML energy counter unavailable")
    window, iterations = energy_window(step, min_window_s)
    end = energy_counters_mj(range(gpus))
    if end is None:
        return EnergyResult(None, window, iterations, None, "NVML energy counter unavailable")
    total_j = joules(start, end)
    return EnergyResult(total_j / (iterations * tokens_per_step), window, iterations, total_j / window)
