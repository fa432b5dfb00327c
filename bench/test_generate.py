"""model.generate per case (``--bench-new-tokens N``) on each GPU count of ``--bench-gpus`` (one
GPU, or a pipeline over accelerate's balanced device map as bench/build.py builds it), measured
beside the estimate: the whole call (bench/generate_rounds.py: warm-up, a host probe before each timed round; greedy, min_new_tokens = max_new_tokens = N,
eos_token_id=None), TTFT (the same call with one new token), peak memory of a call on each of the
case's GPUs and NVML energy per generated token of all of them over >= the energy window. Rows
have the forward rows' schema (runtime = the whole call, throughput = generated tokens/s, gpus,
parallel "single" or "pipeline") plus ttft_ms, tpot_ms, generate_ms and
generate_energy_j_per_token, and ``kind: generate`` (the RST's generation table)."""
from __future__ import annotations

import dataclasses
import statistics
from typing import NamedTuple

import pytest
import torch

from bench import build, host_probe, measure
from bench.calibration import host_used
from bench.cases import detect, spec_or_skip
from bench.compare import PER_ROUND_KEYS
from bench.generate_rounds import TTFT_PER_ROUND, measure_generate
from bench.plugin import get_bench_config
from bench.row import Estimated, Measured, Row, parallel_label
from estimator import EstimatorError, estimate

class GenCase(NamedTuple):
    model: str
    batch: int
    seq: int
    new_tokens: int
    gpus: int = 1      # > 1: a pipeline over accelerate's device map

    @property
    def id(self) -> str:
        base = f"{self.model}-{self.batch}x{self.seq}+{self.new_tokens}"
        return base if self.gpus == 1 else f"{base}-{self.gpus}gpu"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per model x batch x seq x GPU count when --bench-new-tokens is set; else one case
    that skips."""
    if "gen_case" not in metafunc.fixturenames:
        return
    cfg = get_bench_config(metafunc.config)
    cases = [GenCase(m, b, s, cfg.new_tokens, g) for m in cfg.models for b in cfg.batch for s in cfg.seq
             for g in cfg.gpus]
    if not cfg.new_tokens:
        cases = [GenCase("", 0, 0, 0)]
    metafunc.parametrize("gen_case", cases, ids=[c.id if c.model else "no-generation" for c in cases])


def measured_per_round(run, new_tokens: int) -> dict[str, list[float]]:
    """Each timed round's runtime, TTFT (the median of the one-token calls paired with its probe)
    and TPOT ((runtime - TTFT) / (new tokens - 1)), in ms (bench/generate_rounds.py's order)."""
    k = TTFT_PER_ROUND
    runtime = [x * 1e3 for x in run.rounds.data]
    ttft = [statistics.median(run.ttft_ms_rounds[i * k:(i + 1) * k]) for i in range(len(runtime))]
    return {"runtime_ms": runtime, "ttft_ms": ttft,
            "tpot_ms": [(r - t) / max(1, new_tokens - 1) for r, t in zip(runtime, ttft)]}


def _skip_reason(case: GenCase) -> str | None:
    if not case.new_tokens:
        return "generation cases need --bench-new-tokens N"
    m = detect()
    if m.gpu_count == 0 and case.gpus == 1:
        return "generation is measured on a GPU only (a CPU generate says nothing about the GPU model)"
    if case.gpus > m.gpu_count:
        return f"needs {case.gpus} GPUs, this machine has {m.gpu_count}"
    return m.problem


def test_generate(gen_case: GenCase, benchmark, bench_config, bench_recorder, check_bounds, request) -> None:
    reason = _skip_reason(gen_case)
    if reason:
        pytest.skip(reason)
    machine = detect()
    spec = spec_or_skip(gen_case.model)
    spec = spec.arch.with_experts(spec, bench_config.experts_implementation or None)
    experts = spec.arch.experts_implementation(spec)   # MoE: built and estimated with this; else None
    dtype = (spec.dtype or "float16") if bench_config.dtype == "auto" else bench_config.dtype
    n, batch, gpus = gen_case.new_tokens, gen_case.batch, gen_case.gpus
    resolved = request.getfixturevalue("bench_profile")
    if resolved.profile is None:
        pytest.skip(resolved.reason)
    short = machine.device.aliases[0]
    row = Row(case_id=f"generate-{gen_case.id}-{dtype}" + (f"-{experts}" if experts else ""), kind="generate",
              model=gen_case.model, device=machine.device.name, device_short=short, gpus=gpus,
              parallel=parallel_label("pipeline", gpus),
              batch=batch, seq=gen_case.seq, new_tokens=n, dtype=dtype, experts_implementation=experts)
    try:
        est = estimate(spec, machine.device, row.workload(), resolved.profile)
    except EstimatorError as exc:
        pytest.skip(f"estimator cannot take this case: {exc}")
    bench_recorder.default_name = f"bench-{short.lower()}-x{machine.gpu_count}"
    generated = batch * n
    prof = resolved.profile
    probing = bench_config.host_probe == "on"
    with build.built(gen_case.model, dtype, "cuda:0", gpus, experts) as model:
        ids = torch.randint(0, spec.vocab, (batch, gen_case.seq), device="cuda:0")
        probe_ids = torch.randint(0, spec.vocab, (1, host_probe.PROBE_TOKENS), device="cuda:0")
        kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)

        def gen(tokens: int, x: torch.Tensor = ids) -> None:
            with torch.inference_mode():
                model.generate(x, max_new_tokens=tokens, min_new_tokens=tokens, **kw)
            measure.sync(gpus)

        # warm-up (the first calls never timed), rounds with a host probe each, TTFT rounds
        run = measure_generate(gen, (lambda k: gen(k, probe_ids)) if probing else None, n, bench_config.rounds,
                               bench_config.warmup, benchmark)
        lat = measure.latency(run.rounds)
        mem = measure.peak_memory(lambda: gen(n), gpus)
        energy_probes = []

        def probe_energy() -> None:   # the energy window runs at its own host speed: probed beside it
            if probing:
                energy_probes.append(host_probe.generate_probe(lambda k: gen(k, probe_ids)))

        probe_energy()
        en = measure.energy(lambda: gen(n), gpus, generated, bench_config.energy_window_s)
        probe_energy()
    ttft = statistics.median(run.ttft_ms_rounds)
    warm = run.warm
    measured = dataclasses.replace(
        Measured.of(lat, mem, en, generated), ttft_ms=ttft, ttft_ms_rounds=run.ttft_ms_rounds,
        tpot_ms=(lat.runtime_ms - ttft) / max(1, n - 1), generate_ms=lat.runtime_ms,
        generate_energy_j_per_token=en.energy_j_per_token)
    measured = dataclasses.replace(measured, warmup_passes=warm.passes, warmup_s=warm.seconds,
                                   warmup_settled=warm.settled,
                                   **run.rounds.row_fields(bench_config.generation_bounds.get("tpot_ms")))
    gen_host = None
    per_round = None
    if run.probes:   # the case estimated with each round's own generate host time, the median taken
        fit = host_probe.generate_per_round(prof, spec, machine.device, row.workload(), run.probes)
        prof, est, gen_host = fit.profile, fit.estimate, fit.factor[0]
        measured = dataclasses.replace(measured, host_probe_ms=[x for p in run.probes for x in (p.ttft_ms, p.step_ms)],
                                       host_factor_rounds=[[round(x, 4) for x in f] for _, f in fit.factors],
                                       per_round=measured_per_round(run, n))
        per_round = fit
    estimated = Estimated.from_estimate(est, host_us=host_used(prof, spec))
    if gen_host:
        estimated = dataclasses.replace(estimated, generate_host_us=gen_host)
    if per_round is not None:   # each round's estimate, paired with its measurement (bench/compare.py)
        estimated = dataclasses.replace(
            estimated, per_round={k: [getattr(e, k) for e in per_round.estimates] for k in PER_ROUND_KEYS},
            generate_host_us_rounds=[entry for entry, _ in per_round.factors])
    if energy_probes:   # energy at the host speed of its own window (the two probes beside it, averaged)
        mid = host_probe.GenerateProbe(sum(p.ttft_ms for p in energy_probes) / len(energy_probes),
                                       sum(p.step_ms for p in energy_probes) / len(energy_probes))
        eprof, entry, _ = host_probe.generate_fit(resolved.profile, spec, machine.device, row.workload(), mid)
        e_en = estimate(spec, machine.device, row.workload(), eprof)
        estimated = dataclasses.replace(estimated, energy_j_per_token=e_en.energy_j_per_token,
                                        generate_energy_j_per_token=e_en.generate_energy_j_per_token,
                                        energy_host_us=entry)
        measured = dataclasses.replace(measured, energy_host_probe_ms=[x for p in energy_probes for x in (p.ttft_ms, p.step_ms)])
    check_bounds(row.with_results(measured, estimated).to_dict(), bench_config.generation_bounds)
