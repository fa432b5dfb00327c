"""The estimator is meant for sweeps: one estimate must take well under a millisecond once warm,
and a few milliseconds for a workload it has never priced."""
from __future__ import annotations

import gc

import pytest

from estimator import Workload, estimate, get_device, load_model
from estimator.profile import PROFILE_DIR, load_profile_file, shipped_profile

pytest.importorskip("pytest_benchmark")


def _check_median(benchmark, limit_s: float) -> None:
    if getattr(benchmark, "disabled", False):  # --benchmark-disable: the function ran once, no stats
        return
    median = benchmark.stats.stats.median
    assert median < limit_s, f"median {median * 1e3:.3f} ms >= {limit_s * 1e3:.3f} ms"


def test_speed_opt_1_3b_single_gpu(benchmark):
    spec, dev = load_model("facebook/opt-1.3b"), get_device("H100")
    w = Workload(16, 1024, "float16")
    est = benchmark(estimate, spec, dev, w)
    assert est.runtime_ms > 0 and est.profile.endswith("h100-sxm5-80gb.json")
    _check_median(benchmark, 1e-3)


def test_speed_clm_1_1b_four_gpu_pipeline(benchmark):
    spec, dev = load_model("AICrossSim/clm-1.1b"), get_device("H100")
    w = Workload(16, 1024, "bfloat16", gpus=4, parallel="pipeline")
    est = benchmark(estimate, spec, dev, w)
    assert len(est.memory_gb_per_gpu) == 4 and est.runtime_ms > 0
    _check_median(benchmark, 1e-3)


def test_speed_generation_estimate(benchmark):
    """With new_tokens the estimate prices a prefill and two decode steps: still under 1 ms."""
    spec, dev = load_model("AICrossSim/clm-1.1b"), get_device("H200")
    w = Workload(8, 1024, "bfloat16", new_tokens=64)
    est = benchmark(estimate, spec, dev, w)
    assert est.ttft_ms > 0 and est.tpot_ms > 0
    _check_median(benchmark, 1e-3)


@pytest.mark.parametrize("model,w", [
    ("facebook/opt-1.3b", Workload(7, 333, "float16")),
    ("AICrossSim/clm-400m", Workload(5, 779, "bfloat16", gpus=3)),
    ("mistralai/Mistral-7B-v0.1", Workload(3, 1021, "bfloat16", gpus=4, parallel="tensor")),
])
def test_cold_estimate_of_a_new_workload(model, w, benchmark):
    """A freshly loaded profile (empty memo) and a shape nothing else prices: median < 5 ms.
    A benchmark, not one wall-clock reading: a single pre-emption of the process used to fail it.
    Every round gets a fresh profile in pytest-benchmark's untimed setup."""
    assert shipped_profile("h100-sxm5-80gb") is not None
    spec, dev = load_model(model), get_device("H100")
    raw = load_profile_file(PROFILE_DIR / "h100-sxm5-80gb.json").raw
    fresh = []

    def setup():
        from estimator.profile import Profile
        prof = Profile(raw, "fresh")   # fresh object: nothing memoized
        assert not prof._memo
        fresh.append(prof)
        gc.collect()
        return (spec, dev, w), {"profile": prof}

    est = benchmark.pedantic(estimate, setup=setup, rounds=9, iterations=1)
    assert est.runtime_ms > 0
    assert fresh[-1]._memo, "the estimate priced its kernels through the profile"
    _check_median(benchmark, 5e-3)
