"""Host speed as a measured quantity (issue 25), on the CPU with fakes: the garbage collector off
in timed regions, the pure-Python probe before every round, generate's order (the first call never
timed, a probe per round), per-round estimates and their median, unstable cases counted in the report."""
from __future__ import annotations

import dataclasses
import gc
import pytest

from bench import host_probe
from bench.generate_rounds import TTFT_PER_ROUND, TTFT_ROUNDS, measure_generate
from bench.host_speed import cpu_probe_us, gc_off
from bench.report import render_rst, results_document
from bench.rounds import Rounds, StopRule, round_drift, stability, timed_loop
from bench.row import Measured


def test_gc_is_frozen_and_off_inside_and_restored_after() -> None:
    assert gc.isenabled()
    with gc_off():
        assert not gc.isenabled() and gc.get_freeze_count() > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_gc_is_restored_after_an_exception() -> None:
    with pytest.raises(RuntimeError):
        with gc_off():
            assert not gc.isenabled()
            raise RuntimeError("a round failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_gc_off_nested_keeps_the_outer_region_and_an_off_collector_stays_off() -> None:
    with gc_off():
        frozen = gc.get_freeze_count()
        with gc_off():
            assert not gc.isenabled()
        assert not gc.isenabled() and gc.get_freeze_count() == frozen   # the inner block did not unfreeze
    gc.disable()
    try:
        with gc_off():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_every_timed_round_runs_with_gc_off_after_its_host_probe() -> None:
    events = []

    def probe() -> float:
        events.append(("probe", gc.isenabled()))
        return 100.0

    rounds = timed_loop(lambda: events.append(("step", gc.isenabled())), StopRule(min_rounds=4, max_rounds=4),
                        warmup_rounds=1, between=lambda: events.append(("between", gc.isenabled())), probe=probe)
    assert len(rounds.data) == 4 and rounds.cpu_probe_us == [100.0] * 4
    assert events[:2] == [("between", False), ("step", False)]                # warm-up: no probe recorded
    assert events[2:] == [("between", False), ("probe", False), ("step", False)] * 4
    assert gc.isenabled()


def test_the_cpu_probe_times_a_python_loop() -> None:
    assert 0 < cpu_probe_us(2000) < 1e6


def test_round_drift_and_stability() -> None:
    steady = [0.010] * 9
    moved = [0.010] * 3 + [0.010] * 3 + [0.013] * 3   # the last third 30 % slower
    assert round_drift(steady) == 0 and round_drift([0.01]) == 0
    assert round_drift(moved) == pytest.approx(0.3)
    assert round_drift([0.010, 0.010, 0.020, 0.020]) == pytest.approx(1.0)   # 4 rounds: two blocks
    assert stability(moved, 0.1) == {"round_drift": 0.3, "round_drift_bound": 0.1, "unstable": True}
    assert stability(steady, 0.1)["unstable"] is False
    assert stability(moved, None)["unstable"] is False                       # no bound: not judged unstable
    # a single spike is not a move: the block medians hold
    assert round_drift([0.010, 0.018, 0.010, 0.010, 0.010, 0.010, 0.010, 0.010, 0.010]) == 0


def test_row_fields_record_the_probe_per_round_and_its_median() -> None:
    fields = Rounds([0.01] * 6, [100.0, 120.0, 110.0, 100.0, 175.0, 101.0]).row_fields(0.1)
    assert fields["host_cpu_probe_us"] == [100.0, 120.0, 110.0, 100.0, 175.0, 101.0]
    assert fields["host_cpu_probe_us_median"] == 105.5 and fields["unstable"] is False
    measured = dataclasses.replace(Measured(runtime_ms=10.0), **fields)
    assert Measured.from_dict(measured.to_dict()) == measured
    assert "host_cpu_probe_us" not in Measured(runtime_ms=10.0).to_dict()   # old rows stay as they are


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_generate_never_times_its_first_call_and_probes_before_every_round() -> None:
    clock, calls = FakeClock(), []

    def gen(tokens: int) -> None:    # the first call of a process: 3.6 s; later 0.46 s (one new token 0.05)
        calls.append(("gen", tokens))
        clock.now += 3.6 if len(calls) == 1 else (0.46 if tokens > 1 else 0.05)

    def probe_gen(tokens: int) -> None:
        calls.append(("probe", tokens))
        clock.now += 0.004 + 0.002 * tokens

    run = measure_generate(gen, probe_gen, 64, rounds=5, warmup=0, benchmark=None, clock=clock,
                           cpu_probe=lambda: 50.0)
    assert calls[0] == ("gen", 64) and run.warm.passes >= 2            # the first call is a warm-up call
    assert run.rounds.data == pytest.approx([0.46] * 5)                # never the 3.6 s call
    assert run.ttft_ms_rounds == pytest.approx([50.0] * (TTFT_PER_ROUND * 5))   # paired with each round's probe
    assert len(run.probes) == 5 and run.rounds.cpu_probe_us == [50.0] * 5   # one probe of each kind per round
    assert run.probes[0].ttft_ms == pytest.approx(6.0) and run.probes[0].step_ms == pytest.approx(2.0)
    first_probe = calls.index(("probe", 1))        # the probe's own untimed warm-up calls come after it
    assert calls[:first_probe] == [("gen", 64)] * run.warm.passes
    # each timed round is preceded by its probe block: TTFT_PER_ROUND pairs (the probe's one-token
    # call, then the case's), then 3 probe calls of PROBE_STEPS tokens; one more step probe at the end
    block = [("probe", 1), ("gen", 1)] * TTFT_PER_ROUND + [("probe", host_probe.PROBE_STEPS)] * 3
    timed = [i for i, c in enumerate(calls) if c == ("gen", 64) and i > first_probe]
    k = len(block)
    assert len(timed) == 5 and all(calls[i - k:i] == block for i in timed) and gc.isenabled()
    assert calls[timed[-1] + 1:] == [("probe", 1)] * 3 + [("probe", host_probe.PROBE_STEPS)] * 3
    assert calls.index(("gen", 1)) < timed[0] - k          # an untimed one-token call before the first timed one


def test_a_rounds_step_probe_is_the_mean_of_the_probes_around_it() -> None:
    """The host slows 2x during the third round: that round's step probe averages the probe
    before it (fast) and the one after it (slow); its TTFT is its own paired probe calls'."""
    clock, state = FakeClock(), {"slow": 1.0, "step_probes": 0}

    def gen(tokens: int) -> None:
        clock.now += (0.46 if tokens > 1 else 0.05) * state["slow"]

    def probe_gen(tokens: int) -> None:
        if tokens > 1:
            state["step_probes"] += 1
            if state["step_probes"] == 2 + 3 * 3:   # 2 untimed, 3 per round: the third round's probe is done
                state["slow"] = 2.0
                clock.now += 0.004 + 0.002 * tokens   # this call still ran fast
                return
        clock.now += (0.004 + 0.002 * tokens) * state["slow"]

    run = measure_generate(gen, probe_gen, 64, rounds=5, warmup=0, benchmark=None, clock=clock, cpu_probe=None)
    steps = [p.step_ms for p in run.probes]
    assert steps[0] == pytest.approx(2.0) and steps[-1] == pytest.approx(4.0)
    assert [round(x, 6) for x in steps] == [2.0, 2.0, 3.0, 4.0, 4.0]   # the flip's round: the mean of both
    assert [round(p.ttft_ms, 6) for p in run.probes] == [6.0, 6.0, 6.0, 12.0, 12.0]


def test_generate_without_the_host_probe_still_warms_up_first() -> None:
    clock, calls = FakeClock(), []

    def gen(tokens: int) -> None:
        calls.append(tokens)
        clock.now += 3.6 if len(calls) == 1 else 0.46

    run = measure_generate(gen, None, 8, rounds=3, warmup=2, benchmark=None, clock=clock, cpu_probe=None)
    assert run.probes == [] and run.rounds.data == pytest.approx([0.46] * 3) and max(run.ttft_ms_rounds) < 1000
    assert len(run.ttft_ms_rounds) == TTFT_ROUNDS


@dataclasses.dataclass
class FakeEstimate:
    runtime_ms: float
    throughput_tokens_per_s: float
    energy_j_per_token: float | None = None
    host_ms: float = 0.0
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    generate_ms: float | None = None
    generate_energy_j_per_token: float | None = None


def test_per_round_estimate_is_the_median_of_the_rounds() -> None:
    fits = [(f, f) for f in (1.0, 3.0, 2.0, 5.0)]
    pr = host_probe.per_round(fits, lambda f: FakeEstimate(10 * f, 100 / f, host_ms=f, ttft_ms=f, tpot_ms=2 * f))
    assert pr.runtime_ms == [10.0, 30.0, 20.0, 50.0] and pr.factors == [1.0, 3.0, 2.0, 5.0]
    assert pr.estimate.runtime_ms == 20.0 and pr.profile == 2.0 and pr.factor == 2.0   # lower median: a real round
    assert pr.estimate.tpot_ms == 4.0 and pr.estimate.throughput_tokens_per_s == pytest.approx(100 / 3)
    assert pr.estimate.energy_j_per_token is None
    with pytest.raises(ValueError):
        host_probe.per_round([], lambda f: f)


def test_forward_per_round_uses_each_rounds_probe() -> None:
    from estimator.device import get_device
    from estimator.model import load_model
    from estimator.profile import profile_for
    from estimator import Workload
    dev = get_device("H200")
    prof, spec, w = profile_for(dev), load_model("AICrossSim/clm-60m"), Workload(batch=1, seq=128, dtype="bfloat16")
    fit = host_probe.forward_per_round(prof, spec, dev, w, [10.0, 14.0, 12.0])
    assert fit.factors[0] < fit.factors[2] < fit.factors[1]             # a slower probe, a larger factor
    assert fit.runtime_ms[0] <= fit.runtime_ms[2] <= fit.runtime_ms[1]
    assert fit.estimate.runtime_ms == fit.runtime_ms[2] and fit.factor == fit.factors[2]
    # five rounds: the fit runs at the lowest, median and highest probe, the others are interpolated
    fit = host_probe.forward_per_round(prof, spec, dev, w, [10.0, 11.0, 12.0, 13.0, 14.0])
    assert fit.factors[1] == pytest.approx(host_probe.forward_profile(prof, spec, dev, w, 11.0)[1], rel=0.01)
    assert fit.factors[2] == host_probe.forward_profile(prof, spec, dev, w, 12.0)[1]


def _row(case: str, rounds: list[float], bound: float = 0.1) -> dict:
    m = dict(runtime_ms=sorted(rounds)[len(rounds) // 2] * 1e3, runtime_ms_rounds=[x * 1e3 for x in rounds],
             runtime_ms_spread=0.5) | Rounds(rounds, [100.0, 100.0, 100.0, 175.0, 175.0, 175.0]).row_fields(bound)
    return {"case_id": case, "model": "m", "device": "H200 SXM 141GB", "gpus": 1, "batch": 1, "seq": 128,
            "measured": m, "estimated": {"runtime_ms": 11.0}, "status": "passed"}


def test_unstable_cases_are_counted_and_shown_with_their_spread() -> None:
    steady, moved = _row("steady", [0.010] * 6), _row("moved", [0.010] * 3 + [0.014] * 3)
    old = {"case_id": "old", "model": "m", "device": "H200 SXM 141GB", "gpus": 1, "batch": 1, "seq": 128,
           "measured": {"runtime_ms": 10.0}, "estimated": {"runtime_ms": 11.0}, "status": "passed"}
    rst = render_rst([steady, moved, old])
    assert "Unstable\n--------" in rst and "1 of 2 cases unstable: their spread exceeded the bound" in rst
    assert "- moved: rounds moved 40.0 % (bound 10 %)" in rst and "host probe moved 75.0 %" in rst
    assert "- steady" not in rst
    doc = results_document([steady, moved, old], None, {})
    assert doc["summary"] == {"passed": 3, "unstable": 1, "stability_checked": 2}
    assert "Unstable" not in render_rst([steady, old])
    assert "unstable" not in results_document([old], None, {})["summary"]   # old reports stay as they were


def test_each_round_gets_its_own_runtime_ttft_and_tpot() -> None:
    """bench/test_generate.measured_per_round: a round's TTFT is the median of the one-token calls
    paired with its probe, its TPOT (runtime - TTFT) / (new tokens - 1)."""
    pytest.importorskip("torch")
    from bench.test_generate import measured_per_round
    clock = FakeClock()

    def gen(tokens: int) -> None:
        clock.now += 0.46 if tokens > 1 else 0.05

    def probe_gen(tokens: int) -> None:
        clock.now += 0.004 + 0.002 * tokens

    run = measure_generate(gen, probe_gen, 64, rounds=5, warmup=0, benchmark=None, clock=clock, cpu_probe=None)
    got = measured_per_round(run, 64)
    assert got["runtime_ms"] == pytest.approx([460.0] * 5) and got["ttft_ms"] == pytest.approx([50.0] * 5)
    assert got["tpot_ms"] == pytest.approx([(460.0 - 50.0) / 63] * 5)
