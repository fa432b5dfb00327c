"""The robust-rounds rule (bench/rounds.py) on synthetic timings, and its pytest-benchmark glue."""
from __future__ import annotations

import itertools
import random

import pytest

from bench.rounds import StopRule, median_ci, relative_spread, robust_pedantic


def test_median_ci_order_statistics() -> None:
    xs = list(range(100, 0, -1))
    assert median_ci(xs[:5]) == (96, 100)            # too few for 95 %: min and max
    assert median_ci(list(range(10))) == (1, 8)      # textbook: x(2), x(9) of 10
    assert median_ci(list(range(20))) == (5, 14)     # x(6), x(15) of 20
    assert median_ci(list(range(50))) == (17, 32)    # x(18), x(33) of 50
    with pytest.raises(ValueError):
        median_ci([])


def test_tight_rounds_stop_at_the_minimum() -> None:
    rule = StopRule(min_rounds=5)
    samples = [0.100, 0.101, 0.099, 0.1005, 0.0995]
    assert not rule.done(samples[:4])
    assert relative_spread(samples) <= 0.02 and rule.done(samples)


def test_noisy_rounds_continue_until_the_median_is_known() -> None:
    rng = random.Random(1)
    rule = StopRule(min_rounds=5, max_rounds=200, max_s=1e9)
    samples: list[float] = []
    while not rule.done(samples):  # +-10 % uniform noise: the median needs many rounds
        samples.append(0.010 * (1 + rng.uniform(-0.1, 0.1)))
    assert 20 < len(samples) < 200
    assert relative_spread(samples) <= 0.02 < relative_spread(samples[:-1])


def test_caps_end_rounds_that_never_settle() -> None:
    bimodal = [0.01, 0.02] * 40
    assert relative_spread(bimodal[:50]) > 0.02
    rule = StopRule(min_rounds=5, max_rounds=50, max_s=1e9)
    assert not rule.done(bimodal[:49]) and rule.done(bimodal[:50])
    slow = [1.0, 2.0] * 10   # 10 s of timed rounds reached after 7 rounds
    by_time = StopRule(min_rounds=5, max_rounds=50, max_s=10.0)
    assert not by_time.done(slow[:6]) and by_time.done(slow[:7])
    assert not StopRule(min_rounds=5, max_s=0.0).done(slow[:4])  # the minimum always runs


class FakeBenchmark:
    """pytest-benchmark's pedantic loop: setup before every round (warm-up too), the round's
    duration appended to stats.stats.data; durations come from a list."""

    def __init__(self, durations):
        self.durations, self.stats, self.has_error, self.calls = iter(durations), None, False, 0

    def pedantic(self, target, setup, rounds, warmup_rounds, iterations):
        self.stats = type("M", (), {"stats": type("S", (), {"data": []})()})()
        try:
            for _ in range(warmup_rounds):
                setup()
                target()
            for _ in range(rounds):
                setup()
                target()
                self.stats.stats.data.append(next(self.durations))
        except Exception:
            self.has_error = True
            raise


def test_robust_pedantic_stops_when_the_rule_is_met() -> None:
    calls = itertools.count()
    noisy = [0.010, 0.013, 0.009, 0.012, 0.008] + [0.010] * 100
    bench = FakeBenchmark(noisy)
    robust_pedantic(bench, lambda: next(calls), StopRule(min_rounds=5), warmup_rounds=2)
    data = bench.stats.stats.data
    assert 5 < len(data) < 50 and StopRule(min_rounds=5).done(data) and not StopRule().done(data[:-1])
    assert next(calls) == len(data) + 2 and bench.has_error is False


def test_robust_pedantic_with_pytest_benchmark(benchmark) -> None:
    rule = StopRule(min_rounds=5, max_rounds=30, max_s=2.0)
    robust_pedantic(benchmark, lambda: sum(range(20000)), rule, warmup_rounds=1)
    data = benchmark.stats.stats.data
    assert 5 <= len(data) <= 30 and rule.done(data) and not benchmark.has_error
