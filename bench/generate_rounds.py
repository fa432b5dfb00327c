"""The timed part of a generate case (bench/test_generate.py), with the calls it times passed in,
so that its order is tested on the CPU with fakes (tests/test_host_speed.py).

1. Warm-up until the whole call's time settles (bench/settle.py, at least two calls): the first
   generate call of a process took 3.6 s where later ones took 0.46 s, so it is never timed.
2. With the host probe on, the probe's two calls (1 and PROBE_STEPS new tokens on PROBE_TOKENS
   tokens) run twice untimed, then GEN_PASSES_PER_ROUND times each, timed, before EVERY timed round:
   each round has its own probe (bench/host_probe.py's per-round estimate).
3. The timed rounds of the whole call (``rounds`` of them; bench/rounds.py's loop: the garbage
   collector frozen and off, the pure-Python host probe before each round).
4. TTFT: TTFT_PER_ROUND timed calls of one new token right after each round's probe block (one
   untimed call of one new token first), so that the time to first token is measured at the host
   speed its round's probe saw: timed in a block of its own after the rounds (2026-12-03 loan 2),
   TTFT ran 10-60 % away from the probes' moment on host-bound cases, while the host moved 1-3.6x
   between rounds of one case. Without the host probe, TTFT_ROUNDS calls after the rounds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from . import host_probe
from .host_speed import cpu_probe_us
from .rounds import Rounds, StopRule, robust_rounds, timed_loop
from .settle import Warmup, settle

TTFT_ROUNDS = 7      # without the host probe: timed calls of one new token after the rounds
TTFT_PER_ROUND = 2   # with it: timed calls of one new token after each round's probe block


@dataclass(frozen=True)
class GenerateRun:
    warm: Warmup
    rounds: Rounds                           # the whole calls, in seconds, with their host probes
    ttft_ms_rounds: list[float]
    probes: list[host_probe.GenerateProbe]   # one per timed round; empty with the host probe off


def fixed(rounds: int) -> StopRule:
    """Exactly `rounds` rounds (generate's calls are long: no early stop, no more)."""
    return StopRule(min_rounds=rounds, max_rounds=rounds)


def measure_generate(gen: Callable[[int], None], probe_gen: Callable[[int], None] | None, new_tokens: int,
                     rounds: int, warmup: int, benchmark: Any,
                     clock: Callable[[], float] = time.perf_counter,
                     cpu_probe: Callable[[], float] | None = cpu_probe_us) -> GenerateRun:
    """`gen(k)`: one generate call of k new tokens on the case's input, done when it returns;
    `probe_gen(k)`: the same on the probe's input (None: host probe off)."""
    warm = settle(lambda: gen(new_tokens), min_passes=max(2, warmup), min_s=1.0, max_s=8.0, window=3, clock=clock)
    probes: list[host_probe.GenerateProbe] = []
    ttft_ms: list[float] = []
    between = None
    if probe_gen is not None:
        for _ in range(2):   # the probe's shapes have first calls of their own: untimed
            probe_gen(1)
            probe_gen(host_probe.PROBE_STEPS)
        gen(1)               # and so has the case's one-token call

        def between() -> None:
            probes.append(host_probe.generate_probe(probe_gen, clock))
            for _ in range(TTFT_PER_ROUND):
                t0 = clock()
                gen(1)
                ttft_ms.append((clock() - t0) * 1e3)

    timed = robust_rounds(benchmark, lambda: gen(new_tokens), fixed(rounds), 0, between=between, clock=clock,
                          probe=cpu_probe, table_rounds=1)
    if probe_gen is None:
        gen(1)
        ttft_ms = [x * 1e3 for x in timed_loop(lambda: gen(1), fixed(TTFT_ROUNDS), clock=clock, probe=None).data]
    return GenerateRun(warm, timed, ttft_ms, probes)
