"""How many timed rounds a case gets: until its median is known within 2 %, with a cap.

Host-bound rows (small models, small batches) moved 1.5-2x between runs minutes apart, and single
rounds spike (one 16 x 1024 round took 1.8x the median), so a fixed five rounds can leave a median
that another run does not reproduce. The rule here keeps timing until the distribution-free 95 %
confidence interval of the median, from order statistics, is within +-2 % of the median, or the
cap (50 rounds, or 10 s of timed rounds) is reached; the row records that half-width as its spread.
GPU-bound rows are tight after the first rounds and stop at the minimum.

Every round is timed with the garbage collector frozen and off, and with the host's speed (a
pure-Python probe, bench/host_speed.py) timed right before it; ``round_drift`` says how far the
case's own rounds moved while it ran (a case that moved more than its bound is marked unstable).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from math import comb
from typing import Any, Callable, Sequence

from .host_speed import cpu_probe_us, gc_off

CONFIDENCE = 0.95
# pytest-benchmark's own rounds after ours (its table; bench rows use ours): a few passes, so a
# case costs little more and the fixture is used (else it warns "fixture was not used").
TABLE_ROUNDS = 3


def median_ci(samples: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Order-statistics confidence interval of the median: [x_(k), x_(n+1-k)] (1-based) for the
    largest k whose coverage 1 - 2 P(B <= k-1), B ~ Binomial(n, 1/2), is at least `confidence`;
    (min, max) when n is too small for that confidence (n < 6 for 95 %)."""
    xs = sorted(samples)
    n = len(xs)
    if n == 0:
        raise ValueError("no samples")
    k, tail = 1, 0.5 ** n  # tail = P(B <= k - 1)
    while k < (n + 1) // 2:
        wider = tail + comb(n, k) * 0.5 ** n
        if 1 - 2 * wider < confidence:
            break
        k, tail = k + 1, wider
    return xs[k - 1], xs[n - k]


def relative_spread(samples: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """Half-width of the median's confidence interval over the median (0.02 = +-2 %)."""
    lo, hi = median_ci(samples, confidence)
    mid = statistics.median(samples)
    return (hi - lo) / 2 / mid if mid > 0 else float("inf")


@dataclass(frozen=True)
class StopRule:
    """Stop after `min_rounds` once the median is known within `spread`, or at the cap."""

    min_rounds: int = 5
    spread: float = 0.02
    max_rounds: int = 50
    max_s: float = 10.0   # seconds of timed rounds

    def done(self, samples_s: Sequence[float]) -> bool:
        n = len(samples_s)
        if n < self.min_rounds:
            return False
        return (n >= self.max_rounds or sum(samples_s) >= self.max_s
                or relative_spread(samples_s) <= self.spread)

    def describe(self) -> str:
        return (f"rounds continue until the median's 95 % confidence interval is within "
                f"+-{self.spread * 100:g} %, at most {self.max_rounds} rounds or {self.max_s:g} s")


@dataclass(frozen=True)
class Rounds:
    """The timed rounds of a case in seconds, with the statistics the row takes from them (the
    names pytest-benchmark's ``Stats`` uses: ``data``, ``median``, ``iqr``)."""

    data: list[float]
    cpu_probe_us: list[float] = field(default_factory=list)   # the host probe before each round (bench/host_speed.py)

    @property
    def median(self) -> float:
        return statistics.median(self.data)

    @property
    def iqr(self) -> float:
        """Third minus first quartile (inclusive method: the data's own range for 2-3 rounds)."""
        if len(self.data) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.data, n=4, method="inclusive")
        return q3 - q1

    def row_fields(self, bound: float | None) -> dict[str, Any]:
        """The row's ``measured`` fields of the host and the case's stability: the host probe per
        round and its median, and ``stability(data, bound)``."""
        out: dict[str, Any] = {}
        if self.cpu_probe_us:
            out.update(host_cpu_probe_us=[round(x, 2) for x in self.cpu_probe_us],
                       host_cpu_probe_us_median=round(statistics.median(self.cpu_probe_us), 2))
        return out | stability(self.data, bound)


def timed_loop(step: Callable[[], None], rule: StopRule, warmup_rounds: int = 0,
               between: Callable[[], None] | None = None,
               clock: Callable[[], float] = time.perf_counter,
               probe: Callable[[], float] | None = cpu_probe_us) -> Rounds:
    """Time `step` round after round until `rule` is met (after `warmup_rounds` untimed rounds);
    `between` runs untimed before every round, warm-up too (the host probe of
    bench/host_probe.py, interleaved with the rounds it stands for), then `probe` (the host's
    speed, recorded per timed round). The whole loop runs with the garbage collector frozen and off."""
    samples: list[float] = []
    probes: list[float] = []
    with gc_off():
        for _ in range(warmup_rounds):
            if between is not None:
                between()
            step()
        while not samples or not rule.done(samples):
            if between is not None:
                between()
            if probe is not None:
                probes.append(probe())
            t0 = clock()
            step()
            samples.append(clock() - t0)
    return Rounds(samples, probes)


def robust_rounds(benchmark: Any, step: Callable[[], None], rule: StopRule, warmup_rounds: int,
                  between: Callable[[], None] | None = None,
                  clock: Callable[[], float] = time.perf_counter,
                  probe: Callable[[], float] | None = cpu_probe_us, table_rounds: int = TABLE_ROUNDS) -> Rounds:
    """``timed_loop``, with pytest-benchmark told about it.

    The loop is ours: pytest-benchmark's ``pedantic`` has no early stop, and stopping it by raising
    from its setup meant clearing a private error flag afterwards. pytest-benchmark gets, through
    its public API only, these rounds in ``extra_info`` (``rounds_s``, ``stop_rule``: its
    ``--benchmark-json`` keeps them) and `table_rounds` more rounds timed by its own
    ``pedantic`` right after, for its table (the row and `between` take ours only); `benchmark` may be None."""
    rounds = timed_loop(step, rule, warmup_rounds, between, clock, probe)
    if benchmark is not None:
        benchmark.extra_info.update(rounds_s=list(rounds.data), stop_rule=rule.describe())
        with gc_off(collect=False):   # no `between`: its probes stand for ours
            benchmark.pedantic(step, rounds=table_rounds, iterations=1)
    return rounds


def round_drift(samples: Sequence[float], blocks: int = 3) -> float:
    """How far a case's own rounds moved while it ran: the largest median of `blocks` consecutive
    blocks of its rounds over the smallest, minus 1 (0.25: one stretch of the case ran 25 % slower
    than another). Fewer than 2 rounds per block: fewer blocks; one round: 0."""
    n = len(samples)
    k = max(1, min(blocks, n // 2))
    if k < 2:
        return 0.0
    medians = [statistics.median(samples[i * n // k:(i + 1) * n // k]) for i in range(k)]
    return max(medians) / min(medians) - 1 if min(medians) > 0 else float("inf")


def stability(samples: Sequence[float], bound: float | None) -> dict[str, Any]:
    """The row's ``measured`` fields of its stability: ``round_drift`` (see above), the bound it is
    held to (the case's runtime bound) and ``unstable`` (drift beyond the bound; no bound: False)."""
    drift = round_drift(samples)
    return dict(round_drift=round(drift, 4), round_drift_bound=bound,
                unstable=bool(bound is not None and drift > bound))
