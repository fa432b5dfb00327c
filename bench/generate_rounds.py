"""The timed part of a generate case (bench/test_generate.py), with the calls it times passed in,
so that its order is tested on the CPU with fakes (tests/test_host_speed.py).

1. Warm-up until the whole call's time settles (bench/settle.py, at least two calls): the first
   generate call of a process took 3.6 s where later ones took 0.46 s, so it is never timed.
2. With the host probe on, the probe's two calls (1 and PROBE_STEPS new tokens on PROBE_TOKENS
   tokens) run twice untimed, and so does the case's one-token call. Before EVERY timed round:
   TTFT_PER_ROUND pairs of timed one-token calls, the probe's then the case's, back to back (the
   round's probe TTFT is the median of its probe calls), then GEN_PASSES_PER_ROUND calls of
   PROBE_STEPS new tokens (the probe's step time). One more step probe follows the last round.
3. The timed rounds of the whole call (``rounds`` of them; bench/rounds.py's loop: the garbage
   collector frozen and off, the pure-Python host probe before each round).
4. A round's probe: its paired TTFT, and the mean of the step probes just before and just after it.

Why so close: on the 2026-12-03 loan 5 the host flipped between two speeds 2x apart within a
second. With the probe's calls in a block of their own (three of each) before the case's
one-token calls, the case's TTFT came out 0.6-1.4x its round's probe TTFT (clm-1.1b at 1 x 128:
probe 29.9 ms, case 42.3 ms; next round 40.5 vs 24.5) while two back-to-back case calls agreed
within 5 %: the probe and the case must run within tens of milliseconds of each other. A round's
64 decode steps take seconds, so its step time is bracketed by probes before and after it. Without
the host probe, TTFT_ROUNDS calls after the rounds.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from . import host_probe
from .host_speed import cpu_probe_us
from .rounds import Rounds, StopRule, robust_rounds, timed_loop
from .settle import Warmup, settle

TTFT_ROUNDS = 7      # without the host probe: timed calls of one new token after the rounds
TTFT_PER_ROUND = 3   # with it: pairs of timed one-token calls (the probe's, the case's) before each round


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
    ttft_ms: list[float] = []
    probe_ttft: list[float] = []    # per round: the median of its paired probe calls
    steps: list[float] = []         # the step probes: one before each round, one after the last
    between = None

    if probe_gen is not None:
        for _ in range(2):   # the probe's shapes have first calls of their own: untimed
            probe_gen(1)
            probe_gen(host_probe.PROBE_STEPS)
        gen(1)               # and so has the case's one-token call

        def between() -> None:
            pair = []
            for _ in range(TTFT_PER_ROUND):
                pair.append(host_probe.timed_median_ms(lambda: probe_gen(1), 1, clock))
                ttft_ms.append(host_probe.timed_median_ms(lambda: gen(1), 1, clock))
            probe_ttft.append(statistics.median(pair))
            steps.append(host_probe.step_probe(probe_gen, probe_ttft[-1], clock))

    timed = robust_rounds(benchmark, lambda: gen(new_tokens), fixed(rounds), 0, between=between, clock=clock,
                          probe=cpu_probe, table_rounds=1)
    probes: list[host_probe.GenerateProbe] = []
    if probe_gen is not None:
        one = host_probe.timed_median_ms(lambda: probe_gen(1), host_probe.GEN_PASSES_PER_ROUND, clock)
        steps.append(host_probe.step_probe(probe_gen, one, clock))
        probes = [host_probe.GenerateProbe(t, (steps[i] + steps[i + 1]) / 2) for i, t in enumerate(probe_ttft)]
    else:
        gen(1)
        ttft_ms = [x * 1e3 for x in timed_loop(lambda: gen(1), fixed(TTFT_ROUNDS), clock=clock, probe=None).data]
    return GenerateRun(warm, timed, ttft_ms, probes)
