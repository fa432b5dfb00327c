"""bench.measure: typed tracker results and the row's ``measured`` block (no GPU needed)."""
from types import SimpleNamespace

import pytest

measure = pytest.importorskip("bench.measure")  # needs torch

MEASURED_KEYS = ["runtime_ms", "runtime_ms_rounds", "runtime_ms_iqr", "memory_gb", "memory_gb_per_gpu",
                 "energy_j_per_token", "energy_window_s", "power_w", "throughput_tokens_per_s",
                 "runtime_ms_spread", "runtime_rounds"]


def test_latency_from_benchmark_stats():
    lat = measure.latency(SimpleNamespace(median=0.2, data=[0.19, 0.2, 0.25], iqr=0.01))
    assert lat.runtime_ms == pytest.approx(200.0) and lat.runtime_ms_iqr == pytest.approx(10.0)
    assert lat.runtime_ms_rounds == pytest.approx([190.0, 200.0, 250.0])
    assert lat.runtime_ms_spread == pytest.approx(30.0)  # 3 rounds: (max - min) / 2, see bench/rounds.py


def test_measured_block_keeps_the_json_schema():
    lat = measure.LatencyResult(200.0, [200.0], 1.0, 0.5)
    gpu = measure.Measured.of(lat, measure.MemoryResult([4.0, 5.0]),
                              measure.EnergyResult(0.01, 1.5, 8, 700.0), tokens=16384).as_dict()
    assert list(gpu) == MEASURED_KEYS
    assert gpu["memory_gb"] == 5.0 and gpu["memory_gb_per_gpu"] == [4.0, 5.0]
    assert gpu["energy_j_per_token"] == 0.01 and gpu["energy_window_s"] == 1.5 and gpu["power_w"] == 700.0
    assert gpu["throughput_tokens_per_s"] == pytest.approx(16384 / 0.2)
    assert gpu["runtime_ms_spread"] == 0.5 and gpu["runtime_rounds"] == 1
    cpu = measure.Measured.of(lat, None, None, tokens=128).as_dict()
    assert list(cpu) == MEASURED_KEYS
    assert cpu["memory_gb"] is cpu["memory_gb_per_gpu"] is cpu["energy_j_per_token"] is cpu["power_w"] is None


def test_timed_rounds_fence_each_round():
    calls = []
    times = measure.timed_rounds(lambda: calls.append("step"), 3, fence=lambda: calls.append("fence"))
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert calls == ["fence", "step", "fence"] * 3


def test_energy_window_ends_when_every_rank_agrees():
    steps, votes = [], []

    def agree(long_enough: bool) -> bool:   # another rank is slower: the window goes on for 2 more votes
        votes.append(long_enough)
        return len(votes) >= 3

    settled = []
    window, n = measure.energy_window(lambda: steps.append(1), 0.0, min_iterations=1, agree=agree,
                                      settle=lambda: settled.append(1))
    assert n == len(steps) == 3 and votes == [True, True, True] and settled == [1] and window >= 0
    # one process: at least two calls, then until the window is long enough
    assert measure.energy_window(lambda: None, 0.0)[1] == 2


def test_distributed_measured_block():
    from bench import distributed
    from bench.launch import RankResult
    agg = distributed.aggregate([RankResult(0, [2.0, 4.0]), RankResult(1, [3.0, 1.0])])
    block = agg.measured(tokens_per_step=100)
    assert block.runtime_ms == 3.5 and block.runtime_rounds == 2 and block.memory_gb == 0.0
    assert block.throughput_tokens_per_s == 100 / 3.5e-3
    assert list(block.to_dict("rounds")) == ["runtime_ms", "memory_gb", "memory_gb_per_gpu", "energy_j_per_token",
                                             "throughput_tokens_per_s", "rounds"]
