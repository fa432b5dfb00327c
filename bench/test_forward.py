"""One forward pass per case, measured on real hardware beside the estimator's prediction."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from bench import build, cpu_case, measure
from bench.calibration import host_used
from bench.cases import Case, detect
from bench.machine import available_ram_bytes
from bench.rounds import StopRule, robust_pedantic
from bench.row import Estimated, Measured, Row, parallel_label
from estimator import EstimatorError, estimate, load_model

# The CPU case (bench/cpu_case.py) is judged against the spread it measured, or not at all when
# the machine's load made its measurement unstable.
CPU_BOUNDS = cpu_case.CPU_BOUNDS


def _skip_reason(case: Case) -> str | None:
    m = detect()
    if case.gpus == 0:
        return None
    if m.problem:
        return m.problem
    if case.gpus > m.gpu_count:
        return f"needs {case.gpus} GPUs, this machine has {m.gpu_count}"
    return None


def _dtype(case: Case) -> str:
    return (load_model(case.model).dtype or "float16") if case.dtype == "auto" else case.dtype


def _types(model: str) -> tuple[str, str]:
    spec = load_model(model)
    return spec.model_type, spec.family


def test_forward(case: Case, benchmark, bench_config, bench_recorder, check_bounds, request) -> None:
    reason = _skip_reason(case)
    if reason:
        pytest.skip(reason)
    machine = detect()
    dtype = _dtype(case)
    gpus = max(case.gpus, 1)
    on_gpu = case.gpus > 0
    resolved = request.getfixturevalue("bench_profile")
    if resolved.profile is None:
        pytest.skip(resolved.reason)
    prof = resolved.profile
    short = machine.device.aliases[0] if on_gpu else "cpu"
    row = Row(case_id=case.id, model=case.model, device=machine.device.name if on_gpu else prof.device_name,
              device_short=short, gpus=gpus, parallel=parallel_label(case.parallel, gpus), batch=case.batch,
              seq=case.seq, dtype=dtype)
    workload = row.workload()
    try:
        if on_gpu:
            est = estimate(case.model, machine.device, workload, prof)
        else:
            est = estimate(case.model, prof.host_device(), workload, prof)
    except EstimatorError as exc:
        pytest.skip(f"estimator cannot take this case: {exc}")
    ram_problem = None if on_gpu else build.host_ram_problem(est.memory_gb * 1e9, available_ram_bytes())
    if ram_problem:
        pytest.skip(ram_problem)
    if on_gpu and est.memory_gb > machine.device.memory_gb * 0.95:
        pytest.skip(f"out of memory: needs about {est.memory_gb:.1f} GB per GPU, {machine.device.name} has "
                    f"{machine.device.memory_gb:g} GB")
    bench_recorder.default_name = f"bench-{short.lower()}-x{machine.gpu_count}" if on_gpu else "bench-cpu"
    device = "cuda:0" if on_gpu else "cpu"
    tokens = case.batch * case.seq
    try:
        ctx = build.built(case.model, dtype, device, case.gpus)
        model = ctx.__enter__()
    except torch.cuda.OutOfMemoryError:
        pytest.skip("out of memory while building the model")
    try:
        input_ids = torch.randint(0, load_model(case.model).vocab, (case.batch, case.seq), device=device)

        def step() -> None:
            with torch.inference_mode():
                model(input_ids)
            if on_gpu:
                measure.sync(gpus)

        try:
            if on_gpu:
                robust_pedantic(benchmark, step, StopRule(min_rounds=bench_config.rounds), bench_config.warmup)
            else:
                conditions = cpu_case.measure(benchmark, step, StopRule(min_rounds=bench_config.rounds),
                                              bench_config.warmup)
            lat = measure.latency(benchmark.stats.stats)
            mem = measure.peak_memory(step, gpus) if on_gpu else None
            en = measure.energy(step, gpus, tokens, bench_config.energy_window_s) if on_gpu else None
        except torch.cuda.OutOfMemoryError:
            oom = f"out of memory in the forward pass (estimated {est.memory_gb:.1f} GB on the busiest GPU)"
        else:
            oom = None
    finally:
        ctx.__exit__(None, None, None)
    if oom:
        pytest.skip(oom)
    estimated = Estimated.from_estimate(est, host_us=host_used(prof, *_types(case.model)))
    if not on_gpu:  # no allocator statistics or energy counters for the CPU
        estimated = dataclasses.replace(estimated, memory_gb=None)
    row = row.with_results(Measured.of(lat, mem, en, tokens), estimated)
    if on_gpu:
        check_bounds(row.to_dict(), None)  # records the row and its verdict
    else:
        cpu_case.judge(check_bounds, row.to_dict(), conditions, benchmark.stats.stats.data)
