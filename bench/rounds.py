"""How many timed rounds a case gets: until its median is known within 2 %, with a cap.

Host-bound rows (small models, small batches) moved 1.5-2x between runs minutes apart, and single
rounds spike (one 16 x 1024 round took 1.8x the median), so a fixed five rounds can leave a median
that another run does not reproduce. The rule here keeps timing until the distribution-free 95 %
confidence interval of the median, from order statistics, is within +-2 % of the median, or the
cap (50 rounds, or 10 s of timed rounds) is reached; the row records that half-width as its spread.
GPU-bound rows are tight after the first rounds and stop at the minimum.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from math import comb
from typing import Any, Callable, Sequence

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


def robust_rounds(benchmark: Any, step: Callable[[], None], rule: StopRule, warmup_rounds: int,
                  between: Callable[[], None] | None = None,
                  clock: Callable[[], float] = time.perf_counter) -> Rounds:
    """Time `step` round after round until `rule` is met (after `warmup_rounds` untimed rounds);
    `between` runs untimed before every round, warm-up too (the host probe of
    bench/host_probe.py, interleaved with the rounds it stands for).

    The loop is ours: pytest-benchmark's ``pedantic`` has no early stop, and stopping it by raising
    from its setup meant clearing a private error flag afterwards. pytest-benchmark gets, through
    its public API only, these rounds in ``extra_info`` (``rounds_s``, ``stop_rule``: its
    ``--benchmark-json`` keeps them) and ``TABLE_ROUNDS`` more rounds timed by its own
    ``pedantic`` right after, for its table (the row and `between` take ours only); `benchmark` may be None."""
    for _ in range(warmup_rounds):
        if between is not None:
            between()
        step()
    samples: list[float] = []
    while not samples or not rule.done(samples):
        if between is not None:
            between()
        t0 = clock()
        step()
        samples.append(clock() - t0)
    if benchmark is not None:
        benchmark.extra_info.update(rounds_s=list(samples), stop_rule=rule.describe())
        benchmark.pedantic(step, rounds=TABLE_ROUNDS, iterations=1)   # no `between`: its probes stand for ours
    return Rounds(samples)
