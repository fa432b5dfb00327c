"""Timing primitives of the calibration: per-call time of a callable on GPU or CPU.

GPU timing uses CUDA events around a loop of back-to-back calls. For ops shorter than their
host-side launch cost, the stream is first blocked with a spin kernel (``torch.cuda._sleep``)
long enough for the whole loop to be queued, so the events measure GPU time per call, not the
Python launch rate (that is measured separately as ``launch_us`` and ``host``).
"""
from __future__ import annotations

import gc
import statistics
import time
from typing import Any, Callable, Iterable

import torch

from . import nvml

Log = Callable[[str], None]


def median(values: Iterable[float]) -> float:
    """Median as a float (the mean of the two middle values for an even count)."""
    return float(statistics.median(values))


def sync(device: torch.device) -> None:
    """Wait for the device (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    """Return cached memory after a benchmark section."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def target_ms(kind: str, quick: bool) -> float:
    """Length of one timed loop: GPU points cost ~3 loops, so ~15 ms each (CPU ~30 ms)."""
    if kind == "gpu":
        return 3.0 if quick else 5.0
    return 5.0 if quick else 10.0


def sleep_cycles_per_us(device: torch.device) -> float:
    """Clock cycles per microsecond of torch.cuda._sleep (never below the max SM clock)."""
    torch.cuda._sleep(1000)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(10_000_000)
    end.record()
    end.synchronize()
    measured = 10_000_000 / max(start.elapsed_time(end) * 1000.0, 1.0)
    max_clock = nvml.max_sm_clock_mhz(nvml.nvml_index(device.index or 0)) or 0.0
    return max(measured, max_clock)  # assume the fastest clock: a longer spin is the safe side


class Timer:
    """Per-call time of a zero-argument callable: CUDA events (GPU) or wall clock (CPU)."""

    def __init__(self, device: torch.device, target_ms: float, loops: int = 3,
                 max_prefilled: int = 128) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.target_us = target_ms * 1000.0
        self.loops = loops
        self.max_prefilled = max_prefilled
        self.can_prefill = self.cuda and hasattr(torch.cuda, "_sleep")
        self.cycles_per_us = sleep_cycles_per_us(device) if self.can_prefill else 0.0
        self.last_enqueue_us = 0.0  # host time the last elapsed_us() took to queue its loop

    def host_us(self, fn: Callable[[], Any], n: int = 3) -> float:
        """Host wall time per call to enqueue fn (synchronised only after the loop)."""
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t1 = time.perf_counter()
        sync(self.device)
        return (t1 - t0) * 1e6 / n

    def elapsed_us(self, fn: Callable[[], Any], reps: int, prefill_us: float = 0.0) -> float:
        """Total time of `reps` back-to-back calls; on GPU optionally after a queue-filling spin."""
        t0 = time.perf_counter()
        if not self.cuda:
            for _ in range(reps):
                fn()
            self.last_enqueue_us = (time.perf_counter() - t0) * 1e6
            return self.last_enqueue_us
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if prefill_us > 0 and self.can_prefill:
            torch.cuda._sleep(int(prefill_us * self.cycles_per_us))
        start.record()
        for _ in range(reps):
            fn()
        self.last_enqueue_us = (time.perf_counter() - t0) * 1e6
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1000.0

    def prefill_for(self, reps: int, host_us: float) -> float:
        """Spin time (us) long enough for the host to queue `reps` calls before the GPU starts."""
        return reps * host_us * 1.3 + 100.0

    def per_call_us(self, fn: Callable[[], Any], warmup: int = 1) -> float:
        """Median over `loops` loops of the per-call time, each loop about target_ms long."""
        for _ in range(warmup):  # first calls of a shape pick kernels, build plans (~ms)
            fn()
        host = self.host_us(fn, 1)
        if not self.cuda:
            est, prefill = host, False
        else:
            spin = self.prefill_for(1, host)
            est = self.elapsed_us(fn, 1, prefill_us=spin)
            # A callable that waits for the GPU (a device-to-host copy inside, as in torch's
            # per-group grouped_mm fallback for float16) waited for the spin too: its host time is
            # its GPU time, and a spin would only stall every loop (the 67 s grouped float16 stage).
            blocks = self.can_prefill and self.last_enqueue_us >= 0.9 * spin
            if blocks:   # once may be the host stalling (a 1 MB copy was timed launch-bound at 7.2 us
                est = self.elapsed_us(fn, 1, prefill_us=spin)   # where it takes 2.1): ask again
                blocks = self.last_enqueue_us >= 0.9 * spin
            prefill = self.can_prefill and not blocks and est < 2.0 * host
            if prefill:  # short op: its host time sizes the spin, so measure it properly
                host = self.host_us(fn, 3)
        result = self._loops(fn, est, host, prefill)
        if result < 0.5 * est:  # the estimate caught a one-off stall (first call, page faults)
            result = self._loops(fn, result, host, prefill)
        return result

    def _reps(self, est: float, host: float, prefill: bool) -> int:
        """Calls per loop so that one loop (spin included) lasts about target_ms."""
        if prefill:  # the loop costs a spin of ~1.3 host times per call plus the calls
            return max(16, min(self.max_prefilled, round(self.target_us / (1.3 * host + est))))
        return max(1, min(100_000, round(self.target_us / max(est, 0.1))))

    def _loops(self, fn: Callable[[], Any], est: float, host: float, prefill: bool) -> float:
        """Median per-call time of `loops` loops; longer spins if the host fell behind one."""
        loops = 1 if (not self.cuda and est > 150_000) else self.loops  # very slow CPU points
        for _ in range(3):
            reps = self._reps(est, host, prefill)
            spin = self.prefill_for(reps, host) if prefill else 0.0
            times, queued = [], []
            for i in range(2 * loops):
                if i >= loops and max(times) < 1.5 * min(times):
                    break  # the loops agree; otherwise up to `loops` more outvote a transient
                times.append(self.elapsed_us(fn, reps, spin) / reps)
                queued.append(self.last_enqueue_us)
            if not prefill or median(queued) < spin:
                break
            host = median(queued) / reps  # the GPU may have waited for the host: spin longer
        return median(times)
