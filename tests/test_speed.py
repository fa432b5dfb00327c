"""The estimator is meant for sweeps: one estimate must take well under a millisecond once warm,
and a few milliseconds for a workload it has never priced. Benchmarks: each records its target
and whether the median met it (``extra_info``); none fails on a slow or shared machine."""
from __future__ import annotations

import gc
import itertools
import os
import time

import pytest

from estimator import Workload, estimate, get_device, list_devices, load_model
from estimator.profile import PROFILE_DIR, load_profile_file, shipped_profile

pytest.importorskip("pytest_benchmark")


def _check_median(benchmark, limit_s: float) -> None:
    """Records the target beside the measured median (pytest-benchmark's JSON and table):
    a timing target is reported, never a pass/fail verdict (a shared CPU moves it 2x)."""
    if getattr(benchmark, "disabled", False):  # --benchmark-disable: the function ran once, no stats
        return
    median = benchmark.stats.stats.median
    benchmark.extra_info["target_s"] = limit_s
    benchmark.extra_info["meets_target"] = bool(median < limit_s)


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


@pytest.mark.parametrize("model", ["facebook/opt-1.3b", "Qwen/Qwen3-30B-A3B"])
def test_speed_repeated_estimate(benchmark, model):
    """A workload priced before: a copy of the whole estimate from the profile's cache of
    results (issue 26: <= 0.02 ms), names and all resolved as a caller gives them."""
    w = Workload(16, 1024, "bfloat16")
    first = estimate(model, "H100", w)
    est = benchmark(estimate, model, "H100", w)
    assert est.to_dict() == first.to_dict() and est is not first
    _check_median(benchmark, 2e-5)


# ---- sweeps of workloads never priced before (issue 19) -----------------------------------------
# Benchmarks, not wall-clock asserts: the numbers go to pytest-benchmark's table (README,
# "Planning sweeps" lists what they measured). Every call estimates a shape no call before priced.

def _new_shapes():
    for i in itertools.count():
        yield Workload(batch=1 + i % 64, seq=2048 - (i // 64) % 2000)


@pytest.mark.parametrize("model", ["facebook/opt-1.3b", "Qwen/Qwen3-30B-A3B"])
def test_speed_new_shape_sweep(benchmark, model):
    """One estimate of a new dense (or MoE) workload per call: its median is the cost of a sweep
    point the memo has never seen (a profile of its own: the shipped one's memo stays as it was)."""
    spec, dev = load_model(model), get_device("H100")
    prof = load_profile_file(PROFILE_DIR / "h100-sxm5-80gb.json")
    shapes = _new_shapes()
    est = benchmark(lambda: estimate(spec, dev, next(shapes), profile=prof))
    assert est.runtime_ms > 0
    if model == "facebook/opt-1.3b":
        _check_median(benchmark, 1e-4)   # issue 26: a single new dense estimate in 0.1 ms


def test_speed_estimate_many_100k_distinct_dense(benchmark):
    """estimate_many of 100,000 distinct dense forward workloads, one model on one device: the
    array path (estimator/forward_many.py; issue 26's target 2 s). The workloads are built before
    the clock starts; the profile's cache of results is emptied before every round."""
    from estimator import estimate_many
    from estimator.profile import profile_for
    spec, dev = load_model("facebook/opt-1.3b"), get_device("H100")
    prof = profile_for(dev)
    ws = [Workload(batch=1 + i // 1000, seq=1 + i % 1000) for i in range(100_000)]

    def setup():
        prof.results.clear()
        gc.collect()

    out = benchmark.pedantic(estimate_many, args=(spec, dev, ws), setup=setup, rounds=2, iterations=1)
    assert len(out) == len(ws) and all(e.runtime_ms > 0 for e in out)
    benchmark.extra_info["workloads"] = len(ws)
    _check_median(benchmark, 2.0)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.skipif(not os.environ.get("ESTIMATOR_SLOW"), reason="100,000 estimates: set ESTIMATOR_SLOW=1")
def test_speed_100k_distinct_estimates(benchmark):
    """100,000 distinct estimates in one process (about 30-45 s on a shared CPU): the time as
    a benchmark, and the memory the process grows by (the memo is capped: under 50 MB)."""
    spec, dev = load_model("facebook/opt-1.3b"), get_device("H100")
    prof = load_profile_file(PROFILE_DIR / "h100-sxm5-80gb.json")
    estimate(spec, dev, Workload(1, 1), profile=prof)
    gc.collect()
    before = _rss_mb()

    def sweep():
        for i in range(100_000):
            estimate(spec, dev, Workload(batch=1 + i % 64, seq=1 + (i // 64) % 2048), profile=prof)

    benchmark.pedantic(sweep, rounds=1, iterations=1)
    gc.collect()
    grown = _rss_mb() - before
    benchmark.extra_info["rss_growth_mb"] = grown
    assert grown < 50, f"the process grew by {grown:.0f} MB"   # memory, not time: a bounded memo


# ---- the CPU calibration's claims, as measurements (issue 28) -----------------------------------
# A copy of 64x the bytes takes longer, the largest GEMM longest: true on an idle CPU, not on one
# another process takes. Timed here and reported (extra_info), never a pass/fail test.

@pytest.mark.parametrize("nbytes", [64 * 1024, 64 * 64 * 1024], ids=["64KiB", "4MiB"])
def test_cpu_copy_time(benchmark, nbytes):
    torch = pytest.importorskip("torch")
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    benchmark(dst.copy_, src)
    benchmark.extra_info["bytes"] = nbytes


@pytest.mark.parametrize("n", [64, 512])
def test_cpu_gemm_time(benchmark, n):
    torch = pytest.importorskip("torch")
    a, b = torch.ones(n, n), torch.ones(n, n)
    benchmark(torch.mm, a, b)
    benchmark.extra_info["flop"] = 2 * n ** 3


# ---- the deployment planner (issue 26) ----------------------------------------------------------
# "What should I rent?" over every device in the database in under a second: a benchmark of the
# issue's query, cold (profiles, transfers and memos cleared before every round, as a fresh CLI
# process has them) and warm; the target is recorded, not asserted.

def _cold_caches() -> None:
    from estimator import profile
    profile.shipped_profile.cache_clear()
    profile._transfer_profile.cache_clear()
    gc.collect()


@pytest.mark.parametrize("cold", [True, False], ids=["cold", "warm"])
def test_speed_plan_llama_70b_every_device(benchmark, cold):
    from estimator import plan
    query = dict(ttft_ms=1000, tpot_ms=50)
    plan("meta-llama/Llama-3.1-70B", 2000, 500, **query)   # the model loaded, every device read once
    result = benchmark.pedantic(plan, args=("meta-llama/Llama-3.1-70B", 2000, 500), kwargs=query,
                                setup=_cold_caches if cold else None, rounds=5, iterations=1)
    assert len(result.candidates) >= 40 and result.estimates < 200
    assert {c.device_key for c in result.candidates} == {d.key for d in list_devices()}
    benchmark.extra_info["estimates"] = result.estimates
    _check_median(benchmark, 1.0)


def test_speed_sweep_100k_streamed_to_csv(benchmark, tmp_path):
    """100,000 cases of `python -m estimator sweep --out rows.csv`, streamed chunk by chunk
    (estimator.sweep.iter_sweep, sweep_output.write_stream): issue 26 asks a million in seconds,
    so the target here is 1 s per 100,000; measured 2026-12-03 on this 2-CPU machine: about 10 s."""
    from estimator import sweep_output
    from estimator.sweep import SweepSpec, iter_sweep
    spec = SweepSpec(models=("AICrossSim/clm-60m",), devices=("H100",), batches=tuple(range(1, 201)),
                     seqs=tuple(range(1, 501)))
    out = tmp_path / "rows.csv"
    n = benchmark.pedantic(lambda: sweep_output.write_stream(iter_sweep(spec), str(out)), rounds=1, iterations=1)
    assert n == 100_000
    benchmark.extra_info["cases"] = n
    _check_median(benchmark, 1.0)


@pytest.mark.skipif(not os.environ.get("ESTIMATOR_SLOW"), reason="a million cases (about 100 s): set ESTIMATOR_SLOW=1")
def test_speed_million_case_sweep_streams_in_bounded_memory(benchmark, tmp_path):
    """The CLI's million-case sweep to CSV in a process of its own: its peak resident memory stays
    that of a chunk (2026-12-03: 238 MB at 1,000,000 cases, 233 MB at 200,000; the same 200,000
    listed for --sort: 408 MB)."""
    import subprocess
    import sys
    out = tmp_path / "rows.csv"
    code = ("import resource, sys; from estimator.__main__ import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    argv = [sys.executable, "-c", code, "sweep", "--model", "AICrossSim/clm-60m", "--device", "H100",
            "--batch", "1:1000", "--seq", "1:1000", "--max-cases", "1000000", "--out", str(out)]
    done = benchmark.pedantic(lambda: subprocess.run(argv, capture_output=True, text=True), rounds=1, iterations=1)
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    benchmark.extra_info["peak_rss_mb"] = peak_mb
    assert peak_mb < 400, f"{peak_mb:.0f} MB"   # memory, not time: rows streamed, not listed
    _check_median(benchmark, 10.0)


# ---- the one-shot CLI (issue 26) ----------------------------------------------------------------
# `python -m estimator estimate ...` in a fresh process: interpreter start-up (site, the editable
# install's finder), the imports an estimate needs (tests/test_lazy_imports.py keeps the others
# out), the profile and the estimate. Target 0.15 s, recorded, not asserted: a bare `python -c
# pass` on this 2-CPU machine already takes about 0.08 s (0.15 s through pyenv's shim), and
# without bytecode caches (PYTHONDONTWRITEBYTECODE) every import is compiled each run.

@pytest.mark.parametrize("output", ["text", "json"])
def test_speed_one_shot_cli_estimate(benchmark, output):
    import subprocess
    import sys
    argv = [sys.executable, "-m", "estimator", "estimate", "--model", "facebook/opt-1.3b", "--device", "H100"]
    argv += ["--json"] if output == "json" else []
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = benchmark.pedantic(lambda: subprocess.run(argv, cwd=root, capture_output=True, text=True),
                              rounds=7, iterations=1, warmup_rounds=1)
    assert done.returncode == 0, done.stderr
    assert "facebook/opt-1.3b" in done.stdout
    benchmark.extra_info["bare_interpreter_s"] = _bare_interpreter_s()
    _check_median(benchmark, 0.15)


def _bare_interpreter_s(rounds: int = 5) -> float:
    """Median wall time of `python -c pass` here: the floor under any one-shot CLI time."""
    import subprocess
    import sys
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]
