"""The robust-rounds rule (bench/rounds.py) on synthetic timings, and its round loop."""
from __future__ import annotations

import itertools
import random

import pytest

from bench.rounds import TABLE_ROUNDS, Rounds, StopRule, median_ci, relative_spread, robust_rounds


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


class PublicOnlyBenchmark:
    """pytest-benchmark's fixture as its public API promises it (``extra_info``, ``pedantic``) and
    nothing more: no ``has_error`` attribute to clear (a release may rename it). Like the real
    one, its pedantic marks the fixture failed when anything raises inside it."""

    __slots__ = ("extra_info", "stats", "failed")

    def __init__(self):
        self.extra_info, self.stats, self.failed = {}, None, False

    def pedantic(self, target, setup=None, rounds=1, warmup_rounds=0, iterations=1):
        self.stats = type("M", (), {"stats": type("S", (), {"data": []})()})()
        try:
            for _ in range(warmup_rounds + rounds):
                setup and setup()
                target()
                self.stats.stats.data.append(0.01)
        except Exception:
            self.failed = True
            raise


def test_rounds_stop_early_through_public_api_only() -> None:
    """The early stop neither raises through pytest-benchmark nor touches a private flag."""
    bench = PublicOnlyBenchmark()
    calls, between = itertools.count(), itertools.count()
    rule = StopRule(min_rounds=5)
    robust_rounds(bench, lambda: next(calls), rule, warmup_rounds=2, between=lambda: next(between))
    assert not bench.failed and len(bench.stats.stats.data) == TABLE_ROUNDS   # pytest-benchmark's table
    result = bench.extra_info["rounds_s"]
    assert 5 <= len(result) <= 50 and rule.done(result) and not rule.done(result[:-1])
    assert next(calls) == 2 + len(result) + TABLE_ROUNDS     # warm-up, ours, pytest-benchmark's table
    assert next(between) == 2 + len(result)                  # the hook before warm-up and our rounds only
    assert "confidence interval" in bench.extra_info["stop_rule"]


def test_rounds_stop_when_the_rule_is_met() -> None:
    """Round i lasts durations[i] (an injected clock): noisy first rounds, then steady ones."""
    noisy = [0.010, 0.013, 0.009, 0.012, 0.008] + [0.010] * 100
    ticks = iter(itertools.accumulate(d for d in noisy for d in (0.0, d)))
    rounds = robust_rounds(None, lambda: None, StopRule(min_rounds=5), 0, clock=lambda: next(ticks)).data
    assert rounds == pytest.approx(noisy[:len(rounds)])
    assert 5 < len(rounds) < 50 and StopRule(min_rounds=5).done(rounds) and not StopRule().done(rounds[:-1])


def test_rounds_statistics() -> None:
    rounds = Rounds([0.004, 0.001, 0.003, 0.002, 0.005])
    assert rounds.median == 0.003 and rounds.iqr == pytest.approx(0.002)
    assert Rounds([0.001]).iqr == 0.0


def test_robust_rounds_with_pytest_benchmark(benchmark) -> None:
    rule = StopRule(min_rounds=5, max_rounds=30, max_s=2.0)
    rounds = robust_rounds(benchmark, lambda: sum(range(20000)), rule, warmup_rounds=1)
    assert 5 <= len(rounds.data) <= 30 and rule.done(rounds.data)
    assert benchmark.extra_info["rounds_s"] == rounds.data and len(benchmark.stats.stats.data) == TABLE_ROUNDS
