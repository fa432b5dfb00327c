"""Warm-up that settles before timing: passes run until the running median stops moving.

On the lent H200s a host-bound model's first passes of a fresh process ran up to 2x slow, and a
1.3B OPT at 1 x 128 drifted 8.1 -> 10.8 -> 12.1 ms over 400 passes, so a fixed two warm-up
passes can leave the timed rounds in a transient. ``settle`` runs the step for at least
``min_s`` seconds and ``min_passes`` passes, then until the median of the last ``window``
passes is within ``tol`` of the median of the window before (or ``max_s`` is spent); the row
records how many passes and seconds that took and whether it settled.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

MIN_S, MAX_S, WINDOW, TOL = 0.5, 6.0, 3, 0.02


@dataclass(frozen=True)
class Warmup:
    passes: int
    seconds: float
    settled: bool            # False: max_s ran out while the median still moved by more than tol
    last_median_ms: float    # the median pass of the last window


def settle(step: Callable[[], None], min_passes: int = 2, min_s: float = MIN_S, max_s: float = MAX_S,
           window: int = WINDOW, tol: float = TOL, clock: Callable[[], float] = time.perf_counter) -> Warmup:
    """Run `step` (which must return only once its work is done) until its time settles."""
    times: list[float] = []
    t0 = clock()
    settled = False
    while True:
        a = clock()
        step()
        times.append((clock() - a) * 1e3)
        spent = clock() - t0
        if len(times) >= max(min_passes, 2 * window) and spent >= min_s:
            last = statistics.median(times[-window:])
            before = statistics.median(times[-2 * window:-window])
            if abs(last - before) <= tol * before:
                settled = True
                break
        if spent >= max_s and len(times) >= min_passes:
            break
    return Warmup(len(times), round(clock() - t0, 3), settled, statistics.median(times[-window:]))
