"""Board power of GPU 0 under several loads, from NVML energy counters.

Each reading is an energy window: work runs back to back between two ticks of the GPU's energy
counter. The keys of ``measure_power``'s result are the profile's ``power`` section, which the
model side (estimator/profile.py, energy.py) reads: keep them as they are.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from . import nvml
from .grids import GIB, MB
from .timing import Log, Timer, free, median, sync

WINDOW_S = 1.0   # an energy window: >= 1 s, so that the counter's resolution stays below 1 %


class _Stepper:
    """Calls a GPU work step back to back, keeping at most `in_flight` steps queued (or idles)."""

    def __init__(self, step: Optional[Callable[[], None]], in_flight: int) -> None:
        self.step, self.in_flight, self.pending = step, in_flight, deque()

    def __call__(self) -> None:
        """One step (or 1 ms of sleep when there is no step)."""
        if self.step is None:
            time.sleep(0.001)
            return
        self.step()
        ev = torch.cuda.Event()
        ev.record()
        self.pending.append(ev)
        if len(self.pending) > self.in_flight:
            self.pending.popleft().synchronize()


def _next_energy_tick(index: int, stepper: _Stepper) -> tuple[Optional[int], float, int]:
    """Keep stepping until GPU `index`'s energy counter moves (<= 0.3 s): (mJ, time, steps)."""
    prev, steps, t_end = nvml.energy_mj(index), 0, time.perf_counter() + 0.3
    while True:
        stepper()
        steps += 1
        now = nvml.energy_mj(index)
        if now != prev or time.perf_counter() > t_end:
            return now, time.perf_counter(), steps


def _energy_window(index: int, seconds: float, step: Optional[Callable[[], None]] = None,
                   others: Sequence[int] = (), in_flight: int = 4,
                   busy: Optional[Callable[[], bool]] = None) -> dict[str, Any]:
    """Run step() back to back (or idle) between two ticks of GPU `index`'s energy counter.

    The window lasts at least `seconds`, and also while busy() is true (at most 60 s).
    Returns watts (of `index` and of each of `others`), the window in s, the steps done between
    the ticks and their GPU time (from events), and the SM clock read near the window's end.
    """
    stepper = _Stepper(step, in_flight)
    e0, t0, _ = _next_energy_tick(index, stepper)
    others0 = [nvml.energy_mj(i) for i in others]
    events = [torch.cuda.Event(enable_timing=True) for _ in range(2)] if step else []
    if events:
        events[0].record()
    steps, clock = 0, None
    while time.perf_counter() - t0 < seconds or (busy and busy() and time.perf_counter() - t0 < 60):
        stepper()
        steps += 1
        if clock is None and time.perf_counter() - t0 > 0.85 * seconds:
            clock = nvml.sm_clock_mhz(index)
    e1, t1, extra = _next_energy_tick(index, stepper)
    others1 = [nvml.energy_mj(i) for i in others]
    if events:
        events[1].record()
        events[1].synchronize()
    window = t1 - t0
    watts = lambda a, b: None if a is None or b is None else (b - a) / 1000.0 / window  # noqa: E731
    return {"w": watts(e0, e1), "others_w": [watts(a, b) for a, b in zip(others0, others1)],
            "window_s": window, "steps": steps + extra, "clock_mhz": clock,
            "gpu_s": events[0].elapsed_time(events[1]) / 1000.0 if events else None}


def _gemm_burst_tflops(a: torch.Tensor, w: torch.Tensor, flops: float, calls: int = 5) -> float:
    """TFLOP/s of the first few back-to-back GEMMs (each timed on its own) of a cool GPU."""
    times = []
    for _ in range(calls):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        F.linear(a, w)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
    return flops / median(times) / 1e12


def _idle_power(index: int, seconds: float, others: Sequence[int],
                idle_task: Optional[Callable[[], None]]) -> dict[str, Any]:
    """Energy window with nothing running on the GPU (idle_task may use the CPU meanwhile)."""
    worker = threading.Thread(target=idle_task or (lambda: None), daemon=True)
    worker.start()
    idle = _energy_window(index, seconds, None, others=others, busy=worker.is_alive)
    worker.join()
    return idle


def _launch_power(device: torch.device, index: int, seconds: float) -> dict[str, Any]:
    """Energy window of back-to-back tiny eager ops (x.add_(1) on 1024 elements)."""
    small = torch.ones(1024, device=device)

    def launches() -> None:
        """Fifty tiny kernels."""
        for _ in range(50):
            small.add_(1)

    return _energy_window(index, seconds, launches)


def _gemm_power(device: torch.device, index: int, seconds: float, n: int = 8192) -> dict[str, Any]:
    """Energy window of back-to-back fp16 n^3 GEMMs, with sustained and burst TFLOP/s."""
    a = torch.randn(n, n, device=device, dtype=torch.float16)
    w = torch.randn(n, n, device=device, dtype=torch.float16)
    flops = 2.0 * n * n * n
    F.linear(a, w)
    sync(device)
    burst = _gemm_burst_tflops(a, w, flops)
    gemm = _energy_window(index, seconds, lambda: F.linear(a, w), in_flight=3)
    gemm["sustained_tflops"] = flops * gemm["steps"] / gemm["gpu_s"] / 1e12
    gemm["burst_tflops"] = burst
    return gemm


def _memory_power(device: torch.device, index: int, seconds: float) -> dict[str, Any]:
    """Energy window of back-to-back 1 GiB device-to-device copies."""
    src = torch.empty(GIB // 2, device=device, dtype=torch.float16).fill_(1.0)
    dst = torch.empty_like(src)
    return _energy_window(index, seconds, lambda: dst.copy_(src))


def _mixed_power(device: torch.device, index: int, seconds: float) -> dict[str, Any]:
    """Power of a forward-pass-like mix: one GEMM, then elementwise kernels of about its time."""
    n = 4096
    a = torch.randn(4 * n, n, device=device, dtype=torch.float16)
    w = torch.randn(n, n, device=device, dtype=torch.float16)
    x = torch.randn(64 * MB, device=device, dtype=torch.float16)
    y = torch.randn(64 * MB, device=device, dtype=torch.float16)
    timer = Timer(device, target_ms=5.0)
    t_gemm = timer.per_call_us(lambda: F.linear(a, w))
    t_add = timer.per_call_us(lambda: x + y)
    adds = max(1, round(t_gemm / t_add))

    def step() -> None:
        F.linear(a, w)
        for _ in range(adds):
            x + y
    out = _energy_window(index, seconds, step)
    del a, w, x, y
    return {"w": out["w"], "compute_fraction": round(t_gemm / (t_gemm + adds * t_add), 3)}


def _round(v: Any, digits: int = 2) -> Any:
    """Round floats (also inside lists) for a readable profile."""
    if isinstance(v, float):
        return round(v, digits)
    if isinstance(v, list):
        return [_round(x, digits) for x in v]
    return v


def measure_power(device: torch.device, gpu_count: int, quick: bool = False, log: Log = print,
                  idle_task: Optional[Callable[[], None]] = None) -> dict[str, Any]:
    """Board power of GPU 0 idle, launch-bound, GEMM-bound and copy-bound, from NVML energy.

    `idle_task` (CPU-only work, such as imports) runs in a thread during the idle window, which
    is stretched until it ends: the GPU stays idle meanwhile, so the reading is unaffected.
    """
    index = nvml.nvml_index(device.index or 0)
    if nvml.energy_mj(index) is None:
        log("power: NVML energy counters unavailable, skipped")
        return {}
    seconds = WINDOW_S   # quick or not: a 1.5 s window read no better than 1 s (issue 25)
    sync(device)
    idle = _idle_power(index, seconds, [nvml.nvml_index(i) for i in range(gpu_count)], idle_task)
    launch = _launch_power(device, index, seconds)
    gemm = _gemm_power(device, index, seconds)
    hot_idle = _energy_window(index, 1.0)  # right after the GEMM loop: idle but hot
    memory = _memory_power(device, index, seconds)
    mixed = _mixed_power(device, index, seconds)
    free(device)
    out = {"idle_w": idle["w"], "launch_bound_w": launch["w"], "gemm_w": gemm["w"],
           "memory_w": memory["w"], "hot_idle_w": hot_idle["w"], "mixed_w": mixed["w"],
           "mixed_compute_fraction": mixed["compute_fraction"], "gemm_sustained_tflops": gemm["sustained_tflops"],
           "gemm_burst_tflops": gemm["burst_tflops"], "gemm_sm_clock_mhz": gemm["clock_mhz"],
           "max_sm_clock_mhz": nvml.max_sm_clock_mhz(index),
           "power_limit_w": nvml.power_limit_w(index), "idle_w_per_gpu": idle["others_w"]}
    out = {k: _round(v) for k, v in out.items()}
    log("power: idle {idle_w} W, launch-bound {launch_bound_w} W, gemm {gemm_w} W "
        "({gemm_sustained_tflops} TFLOP/s sustained, {gemm_burst_tflops} burst), "
        "memory {memory_w} W, hot idle {hot_idle_w} W, mixed {mixed_w} W".format(**out))
    return out
