"""The host time of the model under test, measured during its case on the machine at hand.

Host time (Python dispatch and launches of eager transformers) moved 1.2-2.2x between lent
H200s of one kind and drifted within a process, so a profile's host numbers, measured on another
machine or minutes earlier, can be off by 20-50 % for a host-bound case. The probe runs the SAME
built model on PROBE_TOKENS tokens (one sequence), where the GPU work is negligible and the pass
is the host's alone, interleaved with the case's own rounds (PASSES_PER_ROUND before every timed
forward round; a generate round's probe calls paired with the case's, bench/generate_rounds.py): the host moved by 30 % within
one case on a lent H200 (clm-60m at 16 x 1024: 18.7 ms before its rounds, 25.5 ms after); on the
lent H200s that pass took what the host-bound shapes took within 1-3 % in the same minute
(reports/probes/h200-2026-12-01/probe_host.json). The case is then estimated with the profile's
host times for this model scaled by one factor, chosen so that the estimate of the probe pass
equals its measurement: the estimator still predicts everything that depends on the shape (GPU
time, the overlap, generate's per-step synchronisation). The same for generate: the probe's
set-up and per-step time (a call of 1 and one of PROBE_STEPS new tokens).

The probe runs next to each timed round (forward and generate alike), and the case is estimated
once per round with that round's own factor: the row's estimate is the median of those per-round
estimates (``per_round``), and the row records the per-round factors.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from estimator import Workload, estimate
from estimator.profile import Profile

PROBE_TOKENS = 4
PROBE_PASSES = 9        # timed passes per block (median)
PASSES_PER_ROUND = 2    # forward cases: probe passes before each timed round, their median recorded
PROBE_STEPS = 6         # new tokens of the generate probe's longer call
GEN_PASSES_PER_ROUND = 3   # generate cases: each probe call's passes before each timed round (median)
FACTOR_MIN, FACTOR_MAX = 0.33, 3.0   # host 3x faster or slower than the profile's: the most a host moved


@dataclass(frozen=True)
class ForwardProbe:
    tiny_ms: float              # median over the blocks of the probe pass
    blocks_ms: list[float]      # each block's median: before the case's rounds, after them


@dataclass(frozen=True)
class GenerateProbe:
    ttft_ms: float              # generate(probe ids, 1 new token)
    step_ms: float              # (generate(.., PROBE_STEPS) - generate(.., 1)) / (PROBE_STEPS - 1)


def generate_probe(probe_gen: Callable[[int], None], clock: Callable[[], float] = time.perf_counter) -> GenerateProbe:
    """The generate probe once: GEN_PASSES_PER_ROUND timed calls of 1 and of PROBE_STEPS new tokens
    on the probe's input (`probe_gen(k)`), their medians as set-up and per-step time (the energy
    window's probes; a timed round's are paired with the case's calls: bench/generate_rounds.py)."""
    one = timed_median_ms(lambda: probe_gen(1), GEN_PASSES_PER_ROUND, clock)
    return GenerateProbe(one, step_probe(probe_gen, one, clock))


def step_probe(probe_gen: Callable[[int], None], ttft_ms: float,
               clock: Callable[[], float] = time.perf_counter) -> float:
    """The probe's decode step (ms): GEN_PASSES_PER_ROUND timed calls of PROBE_STEPS new tokens,
    their median less the one-token call's `ttft_ms`, over the PROBE_STEPS - 1 further steps."""
    more = timed_median_ms(lambda: probe_gen(PROBE_STEPS), GEN_PASSES_PER_ROUND, clock)
    return (more - ttft_ms) / (PROBE_STEPS - 1)


def timed_median_ms(fn: Callable[[], None], n: int = PROBE_PASSES,
                    clock: Callable[[], float] = time.perf_counter) -> float:
    times = []
    for _ in range(n):
        t0 = clock()
        fn()
        times.append((clock() - t0) * 1e3)
    return statistics.median(times)


def _scaled(host: dict, factor: float) -> dict:
    return {k: float(v) * factor for k, v in host.items()}


def forward_profile(prof: Profile, spec, device, w: Workload, probe_ms: float, rounds: int = 6) -> tuple[Profile, float]:
    """`prof` with this model's forward host times scaled so that the estimate of the probe pass
    (1 x PROBE_TOKENS, the case's GPUs and mode) equals `probe_ms`; (profile, factor)."""
    scaled = forward_scaler(prof, spec, w)
    tiny = Workload(batch=1, seq=PROBE_TOKENS, dtype=w.dtype, gpus=w.gpus, parallel=w.parallel,
                    experts_implementation=w.experts_implementation)
    factor, out = 1.0, prof
    for _ in range(rounds):   # the probe pass is host-bound: runtime ~ host + a small GPU tail
        out = scaled(factor)
        e = estimate(spec, device, tiny, out)
        if e.host_ms <= 0:
            break
        factor = max(0.05, min(20.0, factor * max(0.2, min(5.0, 1.0 + (probe_ms - e.runtime_ms) / e.host_ms))))
    # a factor far from 1 means the probe pass was not host-bound (a model whose every pass streams
    # 90 GB of expert weights): the fit then says nothing about the host, so it is kept near 1
    factor = max(FACTOR_MIN, min(FACTOR_MAX, factor))
    return scaled(factor), factor


def forward_scaler(prof: Profile, spec, w: Workload) -> Callable[[float], Profile]:
    """factor -> `prof` with this model's forward host times x factor."""
    keys = spec.arch.host_keys(spec)
    base = prof.host_times(*keys)
    if not (base.per_layer_us or base.fixed_us):   # none measured: the scaled reference family's
        from estimator.host_model import host_price   # the op-level model's (or the scaled reference's)
        base = host_price(prof, spec, 1, PROBE_TOKENS, w.dtype_bytes).times
    return lambda factor: prof.with_host({keys[0]: _scaled(base._asdict(), factor)}, {},
                                         f"{prof.source}, host measured in the run")


def generate_profile(prof: Profile, spec, device, w: Workload, probe: GenerateProbe, rounds: int = 6) -> tuple[Profile, dict]:
    """`prof` with this model's generate host times (set-up and per step) scaled so that the
    estimate of the probe calls (1 x PROBE_TOKENS prompt, on the case's GPUs: a pipeline's probe
    includes accelerate's hooks, which the estimate adds itself) gives the measured TTFT and step."""
    out, entry, _ = generate_fit(prof, spec, device, w, probe, rounds)
    return out, entry


def generate_fit(prof: Profile, spec, device, w: Workload, probe: GenerateProbe,
                 rounds: int = 6) -> tuple[Profile, dict, list[float]]:
    """``generate_profile`` and its two factors, [set-up, per step]."""
    keys = spec.arch.host_keys(spec)
    from estimator.host_model import generate_price   # measured, or built from the op-level model
    g, _ = generate_price(prof, spec, w.dtype_bytes)
    setup_f = step_f = 1.0
    tiny = Workload(batch=1, seq=PROBE_TOKENS, dtype=w.dtype, gpus=w.gpus, parallel=w.parallel,
                    new_tokens=PROBE_STEPS, experts_implementation=w.experts_implementation)

    def laid(sf: float, tf: float) -> Profile:
        entry = {"setup_us": g.setup_us * sf, "setup_per_layer_us": g.setup_per_layer_us * sf,
                 "step_us": g.step_us * tf, "step_per_layer_us": g.step_per_layer_us * tf}
        return prof.with_host({}, {}, f"{prof.source}, generate host measured in the run", generate={keys[0]: entry})

    out = laid(1.0, 1.0)
    for _ in range(rounds):
        e = estimate(spec, device, tiny, out)
        step_host = sum(p["host_ms"] for p in e.phases if p["phase"] == "decode") / max(1, PROBE_STEPS - 1)
        if step_host > 0:
            step_f = max(0.05, min(20.0, step_f * max(0.2, min(5.0, 1.0 + (probe.step_ms - e.tpot_ms) / step_host))))
        pre_host = sum(p["host_ms"] for p in e.phases if p["phase"] == "prefill")
        if pre_host > 0:
            setup_f = max(0.05, min(20.0, setup_f * max(0.2, min(5.0, 1.0 + (probe.ttft_ms - e.ttft_ms) / pre_host))))
        out = laid(setup_f, step_f)
    entry = {"setup_us": g.setup_us * setup_f, "setup_per_layer_us": g.setup_per_layer_us * setup_f,
             "step_us": g.step_us * step_f, "step_per_layer_us": g.step_per_layer_us * step_f}
    return out, entry, [setup_f, step_f]


# the estimate's figures that move with the host factor: the row takes each one's median over the rounds
MEDIAN_FIELDS = ("runtime_ms", "throughput_tokens_per_s", "energy_j_per_token", "host_ms", "ttft_ms", "tpot_ms",
                 "generate_ms", "generate_energy_j_per_token")


@dataclass(frozen=True)
class PerRound:
    """A case estimated once per timed round, each with the host factor of the probe next to it."""
    estimate: Any               # the median round's estimate, each of MEDIAN_FIELDS the median over rounds
    profile: Profile            # the median round's profile (its host times go into the row)
    factors: list               # per round: the forward factor, or generate's scaled host entry
    runtime_ms: list[float]     # per round: the estimated runtime
    base: int                   # the index of the median round
    estimates: list = dataclasses.field(default_factory=list)   # per round: its whole estimate

    @property
    def factor(self) -> Any:
        """The median round's factor (generate: its host entry)."""
        return self.factors[self.base]


def per_round(fits: Sequence[tuple[Profile, Any]], estimate_of: Callable[[Profile], Any]) -> PerRound:
    """`fits` (profile, factor), one per round, estimated each; medians are the lower median
    (an actual round's figure, so that a re-estimate with the recorded host times gives it)."""
    if not fits:
        raise ValueError("no rounds to estimate")
    ests = [estimate_of(p) for p, _ in fits]
    order = sorted(range(len(ests)), key=lambda i: ests[i].runtime_ms)
    base = order[(len(order) - 1) // 2]
    medians = {k: statistics.median_low([getattr(e, k) for e in ests]) for k in MEDIAN_FIELDS
               if all(getattr(e, k) is not None for e in ests)}
    return PerRound(dataclasses.replace(ests[base], **medians), fits[base][0], [f for _, f in fits],
                    [e.runtime_ms for e in ests], base, ests)


def forward_per_round(prof: Profile, spec, device, w: Workload, probes_ms: Sequence[float]) -> PerRound:
    """The forward case estimated with each round's probe, median taken. A fit (``forward_profile``)
    costs about 100 ms (seven estimates of the probe pass, each with a profile of its own), so it
    runs exactly at the lowest, the median and the highest probe only; the other rounds' factors are
    interpolated linearly between those (the fit is near-linear in the probe: the probe pass is
    host time x factor plus a small GPU tail), and every round is estimated with its own factor."""
    probes = list(probes_ms)
    if not probes:
        raise ValueError("no rounds to estimate")
    exact = {p: forward_profile(prof, spec, device, w, p)[1]
             for p in (min(probes), statistics.median_low(probes), max(probes))}
    knots = sorted(exact)
    scaled = forward_scaler(prof, spec, w)

    def factor_at(p: float) -> float:
        if p in exact:
            return exact[p]
        hi = next(i for i, k in enumerate(knots) if k > p)
        a, b = knots[hi - 1], knots[hi]
        return exact[a] + (exact[b] - exact[a]) * (p - a) / (b - a)

    factors = [factor_at(p) for p in probes]
    return per_round([(scaled(f), f) for f in factors], lambda p: estimate(spec, device, w, p))


def generate_per_round(prof: Profile, spec, device, w: Workload, probes: Sequence[GenerateProbe]) -> PerRound:
    """The generate case estimated with each round's probe (``generate_fit``), medians taken;
    factors: per round (its scaled host entry, [set-up factor, step factor])."""
    fits = [generate_fit(prof, spec, device, w, p) for p in probes]
    return per_round([(out, (entry, factors)) for out, entry, factors in fits],
                     lambda p: estimate(spec, device, w, p))
