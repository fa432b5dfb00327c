"""model.generate: decode-step kernels, phases, memory with the cache's growth, host calibration fit, CLI."""
from __future__ import annotations

import dataclasses
import json

import pytest

from estimator import Workload, estimate, load_model
from estimator.__main__ import main
from estimator.calibrate.host import GENERATE_STEPS, HOST_LAYERS, fit_generate_host
from estimator.decode import decode_ops, prefill_ops
from estimator.device import GB
from estimator.errors import EstimatorError
from estimator.host_model import _decode_ratio, generate_price
from estimator.profile import GENERATE_SETUP_US, GENERATE_STEP_US, Profile, shipped_profile

H200 = "H200"


def _by_name(ops):
    return {op.name: op for op in ops}


def test_decode_step_kernels():
    spec = load_model("AICrossSim/clm-1.1b")
    kvd = spec.kv_heads * spec.head_dim
    short, long = decode_ops(spec, 8, 1025, 2), decode_ops(spec, 8, 2049, 2)
    layer = _by_name(short.layer)
    assert layer["q_proj"].shape == (8, spec.hidden, spec.hidden)          # projections on batch rows
    assert layer["down_proj"].shape[0] == 8
    assert layer["sdpa"].shape == (8 * spec.heads, 1, 1025, spec.head_dim)  # one query over the cache
    # DynamicLayer.update: torch.cat of the whole cache, read old + new, write all
    assert layer["cache_k"].bytes == pytest.approx(2 * 8 * kvd * (2 * 1025 - 1))
    assert _by_name(long.layer)["cache_k"].bytes > 1.9 * layer["cache_k"].bytes
    post = _by_name(short.post)
    assert post["lm_head"].shape == (8, spec.vocab, spec.hidden)
    assert {"logits_to_fp32", "argmax", "cat_input_ids", "stop_max"} <= set(post)


def test_prefill_keeps_logits_of_the_last_position_only():
    spec = load_model("facebook/opt-1.3b")
    ops = prefill_ops(spec, 4, 512, 2)
    post = _by_name(ops.post)
    assert post["lm_head"].shape[0] == 4                 # logits_to_keep=1
    assert post["final_layer_norm" if "final_layer_norm" in post else "final_norm"].bytes == pytest.approx(
        4 * 512 * spec.hidden * 2 * 2)                   # the final norm still runs over every token
    assert _by_name(ops.layer)["sdpa"].shape == (4 * spec.heads, 512, spec.head_dim)


@pytest.mark.parametrize("model,batch,seq,new", [("facebook/opt-1.3b", 1, 512, 128),
                                                  ("AICrossSim/clm-1.1b", 8, 1024, 64)])
def test_phases_sum_to_the_call(model, batch, seq, new):
    spec = load_model(model)
    est = estimate(spec, H200, Workload(batch, seq, spec.dtype, new_tokens=new))
    prefill, decode = est.phases
    assert (prefill["phase"], prefill["steps"], decode["phase"], decode["steps"]) == ("prefill", 1, "decode", new - 1)
    assert est.ttft_ms == pytest.approx(prefill["time_ms"])
    assert est.generate_ms == pytest.approx(est.ttft_ms + (new - 1) * est.tpot_ms)
    assert est.runtime_ms == est.generate_ms
    assert est.generate_energy_j_per_token == pytest.approx(
        (prefill["energy_j"] + decode["energy_j"]) / (batch * new))
    for phase in ("prefill", "decode"):
        groups = [b for b in est.breakdown if b["phase"] == phase]
        assert sum(b["time_ms"] for b in groups) == pytest.approx(
            next(p for p in est.phases if p["phase"] == phase)["gpu_busy_ms"])
    # a decode step is host-bound for these models (8-23 ms of host, < 3 ms of GPU work)
    assert decode["gpu_busy_ms"] < decode["host_ms"]


def test_tpot_grows_with_a_gpu_bound_cache():
    """At large batch x cache the cache copy and attention dominate: later steps cost more."""
    spec = load_model("facebook/opt-1.3b")
    short = estimate(spec, H200, Workload(64, 1024, new_tokens=8))
    long = estimate(spec, H200, Workload(64, 1024, new_tokens=1024))
    assert long.tpot_ms > short.tpot_ms * 1.2


def test_memory_is_the_peak_with_the_grown_cache():
    spec = load_model("AICrossSim/clm-1.1b")
    kv_per_token = 2 * spec.layers * spec.kv_heads * spec.head_dim * 2
    def mem(seq, new):
        return estimate(spec, H200, Workload(8, seq, spec.dtype, new_tokens=new)).memory_gb * GB
    # the decode end holds the cache of seq + new - 1 tokens (plus one layer's old K in torch.cat)
    grown = mem(128, 1024) - mem(128, 512)
    assert grown == pytest.approx(8 * 512 * kv_per_token * (1 + 1 / (2 * spec.layers)), rel=0.01)
    # a short generation after a long prompt peaks in the prefill: the new tokens do not matter
    assert mem(1024, 8) == pytest.approx(mem(1024, 2), rel=1e-3)


def test_no_cache_forward_drops_cache_kernels_and_memory():
    spec = load_model("facebook/opt-1.3b")
    with_cache = estimate(spec, H200, Workload(16, 1024))
    without = estimate(spec, H200, Workload(16, 1024, use_cache=False))
    kv = 2 * spec.layers * 16 * 1024 * spec.kv_heads * spec.head_dim * 2
    assert with_cache.memory_gb * GB - without.memory_gb * GB == pytest.approx(kv)
    assert without.runtime_ms < with_cache.runtime_ms
    assert "kv cache" not in {b["group"] for b in without.breakdown}


def test_plain_forward_unchanged_by_the_new_fields():
    spec = load_model("facebook/opt-1.3b")
    a = estimate(spec, H200, Workload(16, 1024)).to_dict()
    b = estimate(spec, H200, Workload(16, 1024, new_tokens=0, use_cache=True)).to_dict()
    assert a == b and "ttft_ms" not in a and "phases" not in a


def test_bad_generation_workloads():
    with pytest.raises(EstimatorError, match="new_tokens"):
        Workload(new_tokens=-1)
    with pytest.raises(EstimatorError, match="use_cache"):
        Workload(new_tokens=4, use_cache=False)
    with pytest.raises(EstimatorError, match="one GPU or a pipeline"):
        estimate("facebook/opt-1.3b", H200, Workload(8, 128, gpus=2, parallel="tensor", new_tokens=4))
    with pytest.raises(EstimatorError, match="positions"):
        estimate("facebook/opt-1.3b", H200, Workload(1, 2000, new_tokens=100))


def test_small_m_gemm_is_weight_read_bound_on_an_old_profile():
    prof = shipped_profile("h200-sxm-141gb")
    assert min(m for m, *_ in prof.raw["gemm"]["bfloat16"]) == 128   # the shipped grid lacks small M
    n, k = 5376, 1536
    one, rows128 = prof.gemm_us(1, n, k, "bfloat16"), prof.gemm_us(128, n, k, "bfloat16")
    assert one >= prof.copy_us(2 * n * k / 2) * 0.99                   # reads the whole weight
    assert one <= rows128 * 1.5 and one > rows128 / 16               # not 128 x faster than M=128
    assert prof.gemm_us(8, n, k, "bfloat16") >= one


def test_generate_host_fallback_and_calibrated_section():
    shipped = shipped_profile("h200-sxm-141gb")
    prof = Profile({k: v for k, v in shipped.raw.items() if k != "generate"}, "no generate section")
    spec = load_model("AICrossSim/clm-60m")
    fallback, source = generate_price(prof, spec, 2)
    fwd = prof.host_times("llama", "llama")
    assert not fallback.calibrated and source == "fallback"
    assert fallback.setup_total_us(22) == GENERATE_SETUP_US
    ratio = _decode_ratio(prof, spec, 2)
    assert fallback.step_total_us(22) == pytest.approx(fwd.fixed_us + GENERATE_STEP_US + 22 * fwd.per_layer_us * ratio)
    raw = dict(prof.raw, generate={"llama": {"setup_us": 1000.0, "setup_per_layer_us": 10.0, "step_us": 900.0,
                                             "step_per_layer_us": 500.0}})
    cal, source = generate_price(Profile(raw, "test"), spec, 2)
    assert source == "measured" and cal.calibrated and cal.step_total_us(2) == 1900.0 and cal.setup_total_us(2) == 1020.0
    slower = estimate("AICrossSim/clm-60m", H200, Workload(1, 512, "bfloat16", new_tokens=16), profile=Profile(raw, "t"))
    assert slower.tpot_ms == pytest.approx(0.9 + 22 * 0.5, rel=0.02)


def test_fit_generate_host_recovers_the_coefficients():
    setup, setup_l, step, step_l = 3000.0, 20.0, 700.0, 450.0
    t = {(L, n): setup + L * setup_l + n * (step + L * step_l) for L in HOST_LAYERS for n in GENERATE_STEPS}
    fit = fit_generate_host(t)
    assert (fit["setup_us"], fit["setup_per_layer_us"], fit["step_us"], fit["step_per_layer_us"]) == pytest.approx(
        (setup, setup_l, step, step_l))


def test_cli_generation_fields(capsys):
    assert main(["estimate", "--model", "facebook/opt-1.3b", "--device", "H200", "--batch", "2", "--seq", "256",
                 "--new-tokens", "16", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"ttft_ms", "tpot_ms", "generate_ms", "generate_energy_j_per_token", "phases"} <= set(d)
    assert d["workload"]["new_tokens"] == 16 and d["generate_ms"] > d["ttft_ms"] > 0
    assert main(["estimate", "--model", "facebook/opt-1.3b", "--device", "H200", "--new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "time per output token" in out and "decode: kv cache" in out
    assert main(["estimate", "--model", "facebook/opt-1.3b", "--device", "H200", "--no-cache", "--json"]) == 0
    assert "ttft_ms" not in json.loads(capsys.readouterr().out)
    assert main(["estimate", "--model", "facebook/opt-1.3b", "--device", "H200", "--no-cache", "--new-tokens", "4"]) == 2


def test_datasheet_device_generation():
    est = estimate("facebook/opt-1.3b", "A100", Workload(1, 128, new_tokens=8))
    assert est.tpot_ms > 0 and est.memory_gb > 2.6
    assert dataclasses.asdict(est)["phases"][1]["steps"] == 7


def test_generate_host_fit_is_never_negative():
    from estimator.calibrate.host import GENERATE_STEPS, HOST_LAYERS, fit_generate_host
    (lo, hi), (n1, n2) = HOST_LAYERS, GENERATE_STEPS
    # a noisy calibration whose deeper model had a shorter set-up: the plain fit gives a negative one
    t = {(lo, n1): 5000.0, (lo, n2): 9000.0, (hi, n1): 4000.0, (hi, n2): 12000.0}
    fit = fit_generate_host(t)
    assert all(fit[k] >= 0 for k in ("setup_us", "setup_per_layer_us", "step_us", "step_per_layer_us"))


def test_a_negative_generate_entry_is_not_used():
    from estimator.profile_schema import _generate
    assert _generate({"setup_us": -1107.0, "step_us": 500.0, "step_per_layer_us": 10.0}) is None
    assert _generate({"setup_us": 1107.0, "step_us": 500.0, "step_per_layer_us": 10.0}) is not None


def test_generation_output_names_its_execution_model(capsys):
    # issue 28: generation estimates model transformers' eager generate; nothing said so
    from estimator.api import GENERATION_EXECUTION
    assert "eager model.generate, greedy" in GENERATION_EXECUTION and "not a serving engine" in GENERATION_EXECUTION
    est = estimate("AICrossSim/clm-60m", "H200", Workload(1, 128, new_tokens=4))
    assert est.notes.count(GENERATION_EXECUTION) == 1
    assert GENERATION_EXECUTION not in estimate("AICrossSim/clm-60m", "H200", Workload(1, 128)).notes
    assert main(["estimate", "--model", "AICrossSim/clm-60m", "--device", "H200", "--new-tokens", "4", "--json"]) == 0
    assert GENERATION_EXECUTION in json.loads(capsys.readouterr().out)["notes"]
    assert main(["estimate", "--model", "AICrossSim/clm-60m", "--device", "H200", "--new-tokens", "4"]) == 0
    assert f"note: {GENERATION_EXECUTION}" in capsys.readouterr().out
    assert main(["sweep", "--model", "AICrossSim/clm-60m", "--device", "H200", "--new-tokens", "0,4", "--csv"]) == 0
    assert capsys.readouterr().err.count(GENERATION_EXECUTION) == 1
    assert main(["sweep", "--model", "AICrossSim/clm-60m", "--device", "H200", "--csv"]) == 0
    assert GENERATION_EXECUTION not in capsys.readouterr().err
