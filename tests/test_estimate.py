"""estimate() end to end: arithmetic identities on the synthetic profile, host/GPU bounds, the
parallel modes, fit checks, and shipped-profile vs datasheet-only devices."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from estimator import EstimatorError, Workload, estimate, get_device, load_model
from estimator.device import GB
from estimator.placement import pipeline_placement
from estimator.profile import (P2P_LATENCY_US, SMALL_COPY_US, PowerModel, Profile, load_profile_file,
                               profile_for, transfer_profile)
from estimator.workload import normalize_parallel

SYNTHETIC = Path(__file__).parent / "data" / "synthetic-profile.json"


@pytest.fixture(scope="module")
def prof() -> Profile:
    return load_profile_file(SYNTHETIC)


@pytest.fixture(scope="module")
def no_power(prof) -> Profile:
    raw = {k: v for k, v in prof.raw.items() if k != "power"}
    return Profile(raw, "synthetic without power")


@pytest.fixture(scope="module")
def h100():
    return get_device("H100")


def run(model, w, prof, device="H100"):
    return estimate(model, device, w, profile=prof)


# ---- identities ----------------------------------------------------------------------------------

@pytest.mark.parametrize("model,w", [
    ("opt-1.3b", Workload(16, 1024, "float16")), ("gpt2", Workload(1, 8, "float32")),
    ("clm-200m", Workload(4, 333, "bfloat16")), ("Qwen2.5-0.5B", Workload(8, 512, "bfloat16", gpus=2)),
    ("clm-1.1b", Workload(16, 256, "bfloat16", gpus=4, parallel="data")),
    ("Mistral-7B-v0.1", Workload(2, 512, "bfloat16", gpus=4, parallel="tensor")),
])
def test_throughput_is_tokens_over_runtime(model, w, prof):
    est = run(model, w, prof)
    assert est.runtime_ms > 0
    assert est.throughput_tokens_per_s == pytest.approx(w.batch * w.seq / (est.runtime_ms / 1e3), rel=1e-12)
    assert est.energy_j_per_token > 0
    assert est.workload["batch"] == w.batch and est.workload["seq"] == w.seq
    assert est.params == load_model(model).param_count()
    assert len(est.memory_gb_per_gpu) == w.gpus and est.memory_gb == max(est.memory_gb_per_gpu)
    assert est.profile == str(SYNTHETIC)


def test_profile_path_and_object_agree(prof, h100):
    a = estimate("clm-60m", h100, Workload(4, 256, "bfloat16"), profile=str(SYNTHETIC))
    b = estimate("clm-60m", h100, Workload(4, 256, "bfloat16"), profile=prof)
    assert a.runtime_ms == b.runtime_ms and a.memory_gb == b.memory_gb


@pytest.mark.parametrize("model,dtype", [("opt-1.3b", "float16"), ("clm-400m", "bfloat16"), ("gpt2", "float32")])
def test_runtime_grows_with_batch_and_seq(model, dtype, prof):
    batches, seqs = [1, 2, 8, 32], [16, 128, 512, 1024]
    grid = {(b, s): run(model, Workload(b, s, dtype), prof).runtime_ms for b in batches for s in seqs}
    for b in batches:
        row = [grid[b, s] for s in seqs]
        assert row == sorted(row), (b, row)
    for s in seqs:
        col = [grid[b, s] for b in batches]
        assert col == sorted(col), (s, col)
    assert grid[32, 1024] > 4 * grid[8, 1024] * 0.9      # GPU-bound corner: about linear in batch
    assert grid[32, 1024] > 2 * grid[1, 16]


def test_energy_positive_and_none_without_power(prof, no_power):
    w = Workload(4, 256, "float16")
    with_power = run("opt-1.3b", w, prof)
    assert with_power.energy_j_per_token > 0
    # at least the idle draw for the whole pass, at most the GEMM-loop power for it
    floor = prof.power.idle_w * with_power.runtime_ms / 1e3 / w.tokens
    ceiling = prof.power.gemm_w * with_power.runtime_ms / 1e3 / w.tokens
    assert floor < with_power.energy_j_per_token < ceiling
    without = run("opt-1.3b", w, no_power)
    assert without.energy_j_per_token is None
    assert without.runtime_ms == pytest.approx(with_power.runtime_ms)
    assert run("opt-1.3b", Workload(4, 256, "float16", gpus=2), no_power).energy_j_per_token is None


# ---- host vs GPU ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["opt-1.3b", "gpt2", "clm-60m", "Qwen2.5-0.5B"])
def test_tiny_workload_is_host_bound(model, prof):
    est = run(model, Workload(1, 8, "float16"), prof)
    assert est.bound == "host"
    assert est.runtime_ms == pytest.approx(est.host_ms, rel=0.01)
    assert est.gpu_busy_ms < 0.5 * est.host_ms
    spec = load_model(model)
    host = prof.raw["host"][spec.model_type]
    assert est.host_ms * 1e3 == pytest.approx(spec.layers * host["per_layer_us"] + host["fixed_us"], rel=1e-9)


@pytest.mark.parametrize("model,dtype", [("opt-1.3b", "float16"), ("clm-1.1b", "bfloat16"),
                                         ("Mistral-7B-v0.1", "bfloat16")])
def test_big_workload_is_gpu_bound(model, dtype, prof):
    est = run(model, Workload(16, 1024, dtype), prof)
    assert est.bound == "gpu"
    assert est.host_ms < 0.5 * est.runtime_ms
    assert est.runtime_ms == pytest.approx(est.gpu_busy_ms, rel=0.02)


@pytest.mark.parametrize("model,w", [
    ("opt-1.3b", Workload(16, 1024, "float16", gpus=2)),
    ("clm-1.1b", Workload(16, 1024, "bfloat16", gpus=4)),
    ("Mistral-7B-v0.1", Workload(16, 1024, "bfloat16", gpus=8, parallel="tensor")),
])
def test_big_multi_gpu_workload_is_gpu_bound(model, w, prof):
    est = run(model, w, prof)
    # the model's eager host overhead is 12 ms or less; the pass takes 80+ ms of GPU work
    assert est.bound == "gpu"


# ---- parallel modes ------------------------------------------------------------------------------

@pytest.mark.parametrize("model,dtype", [("opt-1.3b", "float16"), ("clm-1.1b", "bfloat16"),
                                         ("Qwen2.5-0.5B", "bfloat16"), ("gpt2-medium", "float16")])
@pytest.mark.parametrize("gpus", [2, 4, 8])
@pytest.mark.parametrize("b,s", [(16, 1024), (1, 64)])
def test_pipeline_is_not_faster_than_one_gpu(model, dtype, gpus, b, s, prof):
    one = run(model, Workload(b, s, dtype), prof)
    split = run(model, Workload(b, s, dtype, gpus=gpus), prof)
    assert split.runtime_ms >= 0.9 * one.runtime_ms
    assert split.runtime_ms < 2 * one.runtime_ms     # transfers cost, not a multiple of the pass
    assert len(split.memory_gb_per_gpu) == gpus


@pytest.mark.parametrize("model,dtype", [("opt-1.3b", "float16"), ("clm-1.1b", "bfloat16"),
                                         ("Mistral-7B-v0.1", "bfloat16")])
def test_data_parallel_is_faster_for_a_big_batch(model, dtype, prof):
    one = run(model, Workload(32, 1024, dtype), prof)
    dp2 = run(model, Workload(32, 1024, dtype, gpus=2, parallel="data"), prof)
    dp4 = run(model, Workload(32, 1024, dtype, gpus=4, parallel="data"), prof)
    assert dp4.runtime_ms < dp2.runtime_ms < one.runtime_ms
    assert dp4.runtime_ms < 0.5 * one.runtime_ms
    assert dp4.throughput_tokens_per_s > 2 * one.throughput_tokens_per_s
    assert dp4.energy_j_per_token > 0


@pytest.mark.parametrize("model,dtype", [("clm-1.1b", "bfloat16"), ("opt-6.7b", "float16")])
def test_eight_gpu_pipeline(model, dtype, prof, h100):
    est = run(model, Workload(16, 1024, dtype, gpus=8), prof)
    assert len(est.memory_gb_per_gpu) == 8
    assert all(math.isfinite(m) and m >= 0 for m in est.memory_gb_per_gpu)
    assert est.fits and est.runtime_ms > 0 and est.energy_j_per_token > 0
    assert est.workload["parallel"] == "pipeline" and est.workload["gpus"] == 8
    spec = load_model(model)
    place = pipeline_placement(spec, 8, 2, h100.memory_gb * GB)
    used = [g for g in range(8) if place.weight_bytes_per_gpu[g] > 0]
    assert [g for g in range(8) if est.memory_gb_per_gpu[g] > 0] == used
    assert max(est.memory_gb_per_gpu) < run(model, Workload(16, 1024, dtype), prof).memory_gb


def test_tensor_parallel_eight_gpus_mistral(prof):
    one = run("Mistral-7B-v0.1", Workload(16, 1024, "bfloat16"), prof)
    tp = run("Mistral-7B-v0.1", Workload(16, 1024, "bfloat16", gpus=8, parallel="tensor"), prof)
    assert len(tp.memory_gb_per_gpu) == 8 and len(set(tp.memory_gb_per_gpu)) == 1
    assert tp.fits and tp.memory_gb < one.memory_gb
    assert tp.runtime_ms < one.runtime_ms
    comm = [g for g in tp.breakdown if g["group"] == "communication"]
    assert comm and comm[0]["time_ms"] > 0
    assert comm[0]["kernels"] == 2 * 32 + 1     # two all-reduces per layer, one all-gather of the logits
    assert tp.workload["parallel"] == "tensor"


@pytest.mark.parametrize("model,w,needle", [
    ("clm-60m", Workload(2, 64, "bfloat16", gpus=4, parallel="tensor"), "divisible"),   # 6 heads, 2 KV heads
    ("opt-1.3b", Workload(6, 64, "float16", gpus=4, parallel="data"), "divisible"),
    ("gpt2", Workload(1, 64, "float16", gpus=16), "layers"),
    ("gpt2", Workload(1, 2048, "float16"), "positions"),
])
def test_impossible_workloads_raise(model, w, needle, prof):
    with pytest.raises(EstimatorError) as exc:
        run(model, w, prof)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


# ---- fit -----------------------------------------------------------------------------------------

def test_too_big_for_one_gpu(prof):
    est = run("opt-6.7b", Workload(4, 512, "float32"), prof, device="RTX A5000")
    assert not est.fits
    assert est.memory_gb > 24 and est.memory_gb > load_model("opt-6.7b").param_count() * 4 / GB
    assert len(est.notes) == 1 and "does not fit" in est.notes[0] and "RTX A5000" in est.notes[0]
    assert est.runtime_ms > 0
    # spread over enough GPUs it fits
    split = run("opt-6.7b", Workload(4, 512, "float32", gpus=4), prof, device="RTX A5000")
    assert split.fits and not split.notes


def test_fits_when_small(prof):
    est = run("gpt2", Workload(1, 8, "float16"), prof, device="RTX A5000")
    assert est.fits and est.notes == []


# ---- shipped profile vs a device estimated through the transfer --------------------------------------

@pytest.mark.parametrize("model,w", [("opt-1.3b", Workload(16, 1024, "float16")),
                                     ("clm-1.1b", Workload(8, 512, "bfloat16")),
                                     ("gpt2", Workload(4, 128, "float16"))])
def test_shipped_h100_and_transferred_a5000(model, w):
    h = estimate(model, "H100", w)
    a = estimate(model, "RTX A5000", w)
    assert h.profile.endswith("h100-sxm5-80gb.json")
    assert a.profile.startswith("transfer from h100-sxm5-80gb to rtx-a5000")
    assert h.device != a.device
    for est in (h, a):
        assert est.runtime_ms > 0 and est.energy_j_per_token > 0 and est.throughput_tokens_per_s > 0
    assert a.runtime_ms > h.runtime_ms
    assert a.memory_gb == h.memory_gb       # memory does not depend on the device's speed


def test_transfer_across_architectures_scales_by_datasheet_peaks():
    """Ampere from Hopper: the whole kernel time follows the datasheet ratio (u = r)."""
    h100, a5000 = get_device("H100"), get_device("RTX A5000")
    ph, pa = profile_for(h100), profile_for(a5000)
    m = n = k = 8192
    ratio = pa.gemm_us(m, n, k, "float16") / ph.gemm_us(m, n, k, "float16")
    assert ratio == pytest.approx(h100.tflops["float16"] / a5000.tflops["float16"], rel=1e-9)
    big = 1 << 30
    bw = pa.elementwise_us("binary", big) / ph.elementwise_us("binary", big)
    assert bw == pytest.approx(h100.memory_bandwidth_gb_s / a5000.memory_bandwidth_gb_s, rel=1e-9)


def test_transfer_scales_float32_by_the_float32_peak():
    h100, a5000 = get_device("H100"), get_device("RTX A5000")
    ph, pa = profile_for(h100), profile_for(a5000)
    m = n = k = 8192
    ratio = pa.gemm_us(m, n, k, "float32") / ph.gemm_us(m, n, k, "float32")
    assert ratio == pytest.approx(h100.tflops["float32"] / a5000.tflops["float32"], rel=0.05)


def test_transfer_within_an_architecture_scales_only_the_bound_fraction():
    """H200 from the H100 calibration: a large contiguous copy follows the 1.43x bandwidth,
    a latency-sized kernel and a strided one mostly do not (same SMs), GEMMs stay (same peak)."""
    h100, h200 = get_device("H100"), get_device("H200")
    ph, pt = profile_for(h100), transfer_profile(h200, "H100")
    assert pt.transfer is not None and pt.transfer.same_architecture
    big = 1 << 30
    bw = h100.memory_bandwidth_gb_s / h200.memory_bandwidth_gb_s
    assert pt.elementwise_us("binary", big) / ph.elementwise_us("binary", big) == pytest.approx(bw, rel=0.08)
    assert pt.elementwise_us("strided", big) / ph.elementwise_us("strided", big) > bw + 0.1
    assert pt.elementwise_us("binary", 4e6) / ph.elementwise_us("binary", 4e6) > bw + 0.1
    assert pt.gemm_us(8192, 8192, 8192, "float16") == pytest.approx(ph.gemm_us(8192, 8192, 8192, "float16"))


def test_transfer_from_ignores_the_targets_own_profile_and_keeps_measured_power_levels():
    h200 = get_device("H200")
    own, moved = profile_for(h200), profile_for(h200, transfer_from="H100")
    assert own.source.endswith("h200-sxm-141gb.json") and own.transfer is None
    assert moved.source.startswith("transfer from h100-sxm5-80gb to h200-sxm-141gb")
    shipped_h100 = profile_for(get_device("H100")).power
    assert moved.power.idle_w == pytest.approx(shipped_h100.idle_w)   # equal datasheet idle and limit
    assert moved.power.gemm_burst_tflops == shipped_h100.gemm_burst_tflops   # same architecture and limit
    a5000 = profile_for(get_device("RTX A5000")).power   # another architecture: no power-cap clock model
    assert a5000.power_limit_w == 230 and a5000.gemm_burst_tflops is None and a5000.idle_w < shipped_h100.idle_w
    with pytest.raises(EstimatorError, match="no calibration of rtx-a5000 to transfer from"):
        profile_for(h200, transfer_from="RTX A5000")
    est = estimate("opt-1.3b", "H200", Workload(), transfer_from="H100")
    assert est.profile == moved.source


def test_uncalibrated_devices_transfer_from_the_closest_calibrated_one():
    from estimator.transfer import closest
    calibrated = [get_device("H100"), get_device("H200")]
    assert closest(get_device("H100 PCIe"), calibrated).key == "h100-sxm5-80gb"   # same architecture
    assert closest(get_device("RTX A5000"), calibrated).key == "h100-sxm5-80gb"   # nearest peaks
    assert closest(get_device("A100"), []) is None


# ---- profile sections ------------------------------------------------------------------------------

def test_power_section_is_typed(prof):
    shipped = profile_for(get_device("H100")).power
    assert isinstance(shipped, PowerModel) and shipped.power_limit_w and shipped.gemm_burst_tflops
    assert isinstance(prof.power, PowerModel) and prof.power.hot_idle_w is None   # synthetic: 4 keys
    assert Profile({**prof.raw, "power": {}}, "empty").power is None
    raw = dict(prof.raw, power={k: v for k, v in prof.raw["power"].items() if k != "gemm_w"})
    with pytest.raises(EstimatorError, match="power section lacks gemm_w"):
        Profile(raw, "broken")


def test_comm_falls_back_to_the_datasheet_link_without_measurements():
    a5000 = get_device("RTX A5000")
    pa = profile_for(a5000)     # transferred profile: links are not transferred
    nbytes = 64e6
    link = a5000.interconnect_gb_s
    assert pa.transfer_us(nbytes, link) == nbytes / (link * GB) * 1e6 + P2P_LATENCY_US
    assert pa.small_copy_us(1e4) == SMALL_COPY_US
    assert pa.ring_allreduce_us(nbytes, 4, link) > 1.5 * nbytes / (link * GB) * 1e6
    ph = profile_for(get_device("H100"))   # measured links win
    assert ph.transfer_us(nbytes, link) == ph.p2p_us(nbytes) != pa.transfer_us(nbytes, link)


def test_host_times_and_dispatch_hooks_fall_back_to_the_family(prof):
    p = Profile(dict(prof.raw, host={"llama": {"per_layer_us": 3.0, "fixed_us": 7.0}}, dispatch={"llama": 2.5}), "x")
    assert p.host_times("qwen2", "llama") == (3.0, 7.0)
    assert p.host_times("opt", "opt") == (0.0, 0.0)
    assert p.dispatch_hook_us("mistral", "llama") == 2.5 and p.dispatch_hook_us("gpt2", "gpt2") == 0.0
    assert p.device_name == prof.raw["device_name"]


def test_parallel_mode_is_checked_in_one_place():
    assert normalize_parallel("tensor") == "tensor"
    with pytest.raises(EstimatorError, match="unknown parallel mode 'Data'"):
        normalize_parallel("Data")
    with pytest.raises(EstimatorError, match="unknown parallel mode"):
        Workload(parallel="expert")


# ---- breakdown ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model,w", [
    ("opt-1.3b", Workload(16, 1024, "float16")), ("gpt2", Workload(1, 8, "float16")),
    ("clm-400m", Workload(4, 333, "bfloat16")),
    ("clm-1.1b", Workload(16, 512, "bfloat16", gpus=4, parallel="data")),
    ("Mistral-7B-v0.1", Workload(4, 512, "bfloat16", gpus=8, parallel="tensor")),
])
def test_breakdown_sums_to_gpu_busy_time(model, w, prof):
    est = run(model, w, prof)
    total = sum(g["time_ms"] for g in est.breakdown)
    assert total == pytest.approx(est.gpu_busy_ms, rel=0.01)
    groups = {g["group"] for g in est.breakdown}
    assert {"mlp", "attention", "attention projections", "norms", "lm head"} <= groups
    assert all(g["time_ms"] > 0 and g["kernels"] > 0 for g in est.breakdown)


@pytest.mark.parametrize("model,gpus", [("opt-1.3b", 2), ("clm-1.1b", 4), ("opt-6.7b", 8)])
def test_pipeline_breakdown_sums_busy_time_of_every_gpu(model, gpus, prof, h100):
    """In a pipeline the stages run one after another: the breakdown and gpu_busy_ms both add up
    every GPU's kernels (the critical path), and the runtime is at least that."""
    est = run(model, Workload(16, 1024, "float16", gpus=gpus), prof)
    total = sum(g["time_ms"] for g in est.breakdown)
    assert total == pytest.approx(est.gpu_busy_ms, rel=0.01)
    assert est.runtime_ms >= est.gpu_busy_ms * 0.999
    assert any(g["group"] == "communication" for g in est.breakdown)


def test_breakdown_flops_match_the_forward_pass(prof):
    """Group FLOPs: GEMMs 2mnk, attention 4bHs²d/2; elementwise kernels count one op per element."""
    est = run("clm-200m", Workload(4, 256, "bfloat16"), prof)
    b, s, H, d = 4, 256, 12, 64
    T, h, f, V, L = b * s, 768, 2688, 49152, 24
    qd, kvd = H * d, 4 * d
    flops = {g["group"]: g["flops"] for g in est.breakdown}
    kernels = {g["group"]: g["kernels"] for g in est.breakdown}
    assert flops["attention projections"] == 2 * T * L * (h * qd + 2 * h * kvd + qd * h)
    assert flops["mlp"] == L * (2 * T * 3 * h * f + 2 * T * f)          # gate/up/down + silu, gate*up
    assert flops["lm head"] == 2 * T * h * V
    assert flops["attention"] == L * (4 * b * H * s * s * d / 2 + T * qd)  # sdpa + output transpose
    assert kernels["attention projections"] == 4 * L and kernels["mlp"] == 5 * L
    assert kernels["norms"] == 2 * 8 * L and kernels["rotary"] == 10 * L and kernels["kv cache"] == 2 * L


def test_data_parallel_replicas_count_in_energy() -> None:
    """Energy per token of N replicas stays near one GPU's: each replica does 1/N of the work
    (the replicas were counted idle when their load was copied before it was filled)."""
    one = estimate("AICrossSim/clm-1.1b", "H100", Workload(dtype="bfloat16"))
    for n in (2, 4, 8):
        est = estimate("AICrossSim/clm-1.1b", "H100", Workload(dtype="bfloat16", gpus=n, parallel="data"))
        assert 0.9 < est.energy_j_per_token / one.energy_j_per_token < 1.4


def test_tensor_parallel_memory_holds_gathered_logits() -> None:
    """transformers' plan: every rank holds its logits shard, the all-gather buffer and the cat
    of it (2 full logits), and the replicated token table; H200 probe: 4.586 GB at 2 GPUs."""
    est = estimate("AICrossSim/clm-200m", "H200", Workload(dtype="bfloat16", gpus=2, parallel="tensor"))
    assert est.memory_gb == pytest.approx(4.586, rel=0.01)
    full = 16 * 1024 * 49152 * 2 / 1e9
    assert est.memory_gb > 2.5 * full


def test_internode_allreduce_is_slower() -> None:
    one = estimate("AICrossSim/clm-1.1b", "H100", Workload(dtype="bfloat16", gpus=8, parallel="tensor"))
    two = estimate("AICrossSim/clm-1.1b", "H100", Workload(dtype="bfloat16", gpus=8, parallel="tensor", nodes=2))
    assert two.runtime_ms > one.runtime_ms
    with pytest.raises(EstimatorError, match="split evenly"):
        Workload(gpus=4, nodes=3)
    with pytest.raises(EstimatorError, match="unknown network"):
        estimate("AICrossSim/clm-1.1b", "H100", Workload(gpus=8, parallel="tensor", nodes=2, network="carrier pigeon"))
