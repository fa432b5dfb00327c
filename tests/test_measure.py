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
