"""One forward pass per case, measured on real hardware beside the estimator's prediction."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from bench import build, cpu_case, host_probe, measure
from bench.calibration import host_used
from bench.cases import Case, detect, spec_or_skip
from bench.machine import available_ram_bytes
from bench.rounds import StopRule, robust_rounds
from bench.row import Estimated, Measured, Row, parallel_label
from bench.settle import settle
from estimator import EstimatorError, estimate

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
    return (spec_or_skip(case.model).dtype or "float16") if case.dtype == "auto" else case.dtype


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
    spec = spec_or_skip(case.model)
    spec = spec.arch.with_experts(spec, bench_config.experts_implementation or None)
    experts = spec.arch.experts_implementation(spec)   # MoE: built and estimated with this; else None
    row = Row(case_id=case.id + (f"-{experts}" if experts else ""), model=case.model,
              device=machine.device.name if on_gpu else prof.device_name,
              device_short=short, gpus=gpus, parallel=parallel_label(case.parallel, gpus), batch=case.batch,
              seq=case.seq, dtype=dtype, experts_implementation=experts)
    workload = row.workload()
    try:
        if on_gpu:
            est = estimate(spec, machine.device, workload, prof)
        else:
            est = estimate(spec, prof.host_device(), workload, prof)
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
        ctx = build.built(case.model, dtype, device, case.gpus, experts)
        model = ctx.__enter__()
    except torch.cuda.OutOfMemoryError:
        pytest.skip("out of memory while building the model")
    try:
        input_ids = torch.randint(0, spec.vocab, (case.batch, case.seq), device=device)
        probe_ids = torch.randint(0, spec.vocab, (1, host_probe.PROBE_TOKENS), device=device)

        def run(ids: torch.Tensor) -> None:
            with torch.inference_mode():
                model(ids)
            if on_gpu:
                measure.sync(gpus)

        step = lambda: run(input_ids)  # noqa: E731
        probing = on_gpu and bench_config.host_probe == "on"
        try:
            warm, blocks = None, []

            def probe_ms() -> float:   # the model's host time at a few tokens
                return host_probe.timed_median_ms(lambda: run(probe_ids), host_probe.PASSES_PER_ROUND)

            def probe() -> None:   # next to every timed round
                blocks.append(probe_ms())

            if on_gpu:
                warm = settle(step, min_passes=bench_config.warmup)
                if probing:
                    settle(lambda: run(probe_ids), min_s=0.2, max_s=2.0)
                rounds = robust_rounds(benchmark, step, StopRule(min_rounds=bench_config.rounds), 0,
                                       between=probe if probing else None)
            else:
                conditions, rounds = cpu_case.measure(benchmark, step, StopRule(min_rounds=bench_config.rounds),
                                                      bench_config.warmup)
            lat = measure.latency(rounds)
            mem = measure.peak_memory(step, gpus) if on_gpu else None
            energy_blocks: list[float] = []
            if probing:   # the energy window runs at its own host speed: probed beside it
                energy_blocks.append(probe_ms())
            en = measure.energy(step, gpus, tokens, bench_config.energy_window_s) if on_gpu else None
            if probing:
                energy_blocks.append(probe_ms())
        except torch.cuda.OutOfMemoryError:
            oom = f"out of memory in the forward pass (estimated {est.memory_gb:.1f} GB on the busiest GPU)"
        else:
            oom = None
    finally:
        ctx.__exit__(None, None, None)
    if oom:
        pytest.skip(oom)
    probe_fields: dict = {}
    energy_fields: dict = {}
    if probing:   # the case estimated with each round's own host time, as measured next to it: the median
        eprof, _ = host_probe.forward_profile(prof, spec, machine.device, workload, sum(energy_blocks) / len(energy_blocks))
        energy_fields = dict(energy_j_per_token=estimate(spec, machine.device, workload, eprof).energy_j_per_token,
                             energy_host_us={k: v for k, v in host_used(eprof, spec).items() if k != "dispatch_hook_us"})
        fit = host_probe.forward_per_round(prof, spec, machine.device, workload, blocks[-len(rounds.data):])
        prof, est = fit.profile, fit.estimate
        probe_fields = dict(host_probe_ms=blocks, host_factor=fit.factor,
                            host_factor_rounds=[round(f, 4) for f in fit.factors], energy_host_probe_ms=energy_blocks)
    estimated = Estimated.from_estimate(est, host_us=host_used(prof, spec))
    if energy_fields:   # energy at the host speed of its own window
        estimated = dataclasses.replace(estimated, **energy_fields)
    if not on_gpu:  # no allocator statistics or energy counters for the CPU
        estimated = dataclasses.replace(estimated, memory_gb=None)
    measured = Measured.of(lat, mem, en, tokens)
    measured = dataclasses.replace(measured, **rounds.row_fields(
        (CPU_BOUNDS if not on_gpu else bench_config.bounds).get("runtime_ms")))
    if warm is not None:
        measured = dataclasses.replace(measured, warmup_passes=warm.passes, warmup_s=warm.seconds,
                                       warmup_settled=warm.settled, **probe_fields)
    row = row.with_results(measured, estimated)
    if on_gpu:
        check_bounds(row.to_dict(), None)  # records the row and its verdict
    else:
        cpu_case.judge(check_bounds, row.to_dict(), conditions, rounds.data)
