"""The op-level host model (estimator/host_model.py, issue 25): every family gets a host time from
its operations, fallbacks say so and widen their ranges, and the model predicts each family the
shipped profile timed, left out in turn."""
from __future__ import annotations

import copy
import json

import pytest

from estimator import Workload, estimate, zoo_names
from estimator import host_model as hm
from estimator.calibrate.host_ops import PER_CALL
from estimator.ops import forward_ops
from estimator.decode import decode_ops
from estimator.profile import PROFILE_DIR, Profile, load_profile_file
from estimator.ranges import FALLBACK_MISS

H200 = PROFILE_DIR / "h200-sxm-141gb.json"
LOFO_LAYERS = 12   # the deeper of host calibration's two tiny models


def _profile(**changes) -> Profile:
    raw = copy.deepcopy(json.loads(H200.read_text()))
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return Profile(raw, "test")


@pytest.fixture(scope="module")
def shipped() -> Profile:
    return load_profile_file(H200)


TIMED_ON_THE_LOAN = ("llama", "opt", "gpt2", "gpt_neox", "phi3", "qwen3", "gemma2", "gemma3_text", "mixtral",
                     "qwen3_moe", "qwen2", "mistral")   # the families supported on 2026-12-03's loan


def test_shipped_h200_times_every_family_and_prices_the_rest(shipped):
    """The regenerated H200 profile: per-class host costs, every model type supported on the loan
    timed, and every later one priced by the op-level model (never zero)."""
    from estimator.families import HOST_MODEL_TYPES
    assert set(TIMED_ON_THE_LOAN) <= set(shipped.data.host)
    assert set(shipped.host_op_costs()) >= {"linear", "elementwise", "sdpa", "view", "module"}
    for model_type in HOST_MODEL_TYPES:
        spec = hm._tiny_spec(model_type)
        price = hm.host_price(shipped, spec, 1, 8, 2)
        assert price.source in ("measured", "op-model") and price.times.per_layer_us > 0, model_type


@pytest.mark.parametrize("model_type", sorted(json.loads(H200.read_text())["host"]))
def test_each_family_left_out_is_predicted_within_15_percent(shipped, model_type):
    """The issue's check: with a family's own host entry removed, the op-level model (glue fitted
    on the other families) predicts its measured host time within 15 % (a 12-layer tiny model,
    forward: per layer and the fixed part)."""
    spec = hm._tiny_spec(model_type)
    pred = hm.predicted(shipped, spec, 1, 8, hm.TINY_DTYPE_BYTES, leave_out=(model_type,))
    meas = shipped.data.host[model_type]
    total = pred.per_layer_us * LOFO_LAYERS + pred.fixed_us
    want = meas.per_layer_us * LOFO_LAYERS + meas.fixed_us
    assert abs(total / want - 1) <= 0.15, (model_type, total, want)


def test_left_out_family_gets_the_op_model_in_an_estimate(shipped):
    """Removing Qwen3's entry from the profile: the estimate uses the op-level model, says so,
    and lands near the estimate with the measured entry."""
    raw = copy.deepcopy(shipped.raw)
    del raw["host"]["qwen3"]
    (raw.get("generate") or {}).pop("qwen3", None)
    w = Workload(1, 128, "bfloat16")
    with_entry = estimate("Qwen/Qwen3-0.6B", "H200", w, profile=shipped)
    without = estimate("Qwen/Qwen3-0.6B", "H200", w, profile=Profile(raw, "no qwen3"))
    assert with_entry.host_source == "measured" and without.host_source == "op-model"
    assert any("op-level host model" in n for n in without.notes)
    assert abs(without.runtime_ms / with_entry.runtime_ms - 1) < 0.2


def test_no_silent_zero_anywhere():
    """A profile without any host section: host time is zero, and the estimate says so loudly
    and widens its range by FALLBACK_MISS['none']."""
    bare = _profile(host={}, host_ops=None, generate=None)
    est = estimate("AICrossSim/clm-60m", "H200", Workload(1, 128, "bfloat16"), profile=bare)
    assert est.host_source == "none" and any("ZERO" in n for n in est.notes)
    gen = estimate("AICrossSim/clm-60m", "H200", Workload(1, 128, "bfloat16", new_tokens=8), profile=bare)
    assert gen.host_source == "none" and gen.tpot_ms_range[1] >= gen.tpot_ms * (1 + FALLBACK_MISS["none"]) * 0.999


def test_scaled_fallback_without_host_ops():
    """host section but no per-class costs: the old fallback (Llama's time scaled by kernels),
    named, with a wider range than a measured family's."""
    prof = _profile(host_ops=None)
    raw = prof.raw
    del raw["host"]["qwen3"]
    raw.get("generate", {}).pop("qwen3", None)
    prof = Profile(raw, "scaled")
    est = estimate("Qwen/Qwen3-0.6B", "H200", Workload(1, 128, "bfloat16", new_tokens=8), profile=prof)
    assert est.host_source == "scaled" and any("scaled by kernels" in n for n in est.notes)


def test_fallback_widens_the_range(shipped):
    """Same host-bound workload, the family timed vs left out: the op-model estimate's runtime
    range is wider, and still holds the estimate."""
    raw = copy.deepcopy(shipped.raw)
    del raw["host"]["llama"]
    w = Workload(1, 128, "bfloat16")
    a = estimate("AICrossSim/clm-60m", "H200", w, profile=shipped)
    b = estimate("AICrossSim/clm-60m", "H200", w, profile=Profile(raw, "no llama"))
    width = lambda e: e.runtime_ms_range[1] / e.runtime_ms_range[0]   # noqa: E731
    assert a.bound == b.bound == "host"
    assert a.host_source == "measured" and b.host_source == "op-model" and width(b) > width(a)
    assert b.runtime_ms_range[0] <= b.runtime_ms <= b.runtime_ms_range[1]


@pytest.mark.parametrize("name", zoo_names())
def test_every_listed_kernel_has_a_calibrated_class(name, shipped):
    """Every op of every zoo model's forward and decode step maps to a class host_ops.py times."""
    from estimator import load_model
    spec = load_model(name)
    classes = set(shipped.host_op_costs())
    for ops in (forward_ops(spec, 2, 16, 2), decode_ops(spec, 2, 17, 2)):
        for op in list(ops.pre) + [o for g in ops.layers for o in g.ops] + list(ops.post):
            assert hm.op_class(op) in classes, (name, op.name, op.kind, op.pattern)


def test_calibration_times_every_class_the_model_uses():
    from estimator.calibrate.host_ops import _ops
    import torch
    timed = set(_ops(torch.device("cpu")))
    used = set(hm.KIND_CLASS.values()) | set(hm.PATTERN_CLASS.values()) | {"norm", "index", "view", "module"}
    assert used <= timed and set(PER_CALL) <= timed


def test_time_host_ops_on_the_cpu():
    import gc
    import torch
    from estimator.calibrate.host_ops import cpu_probe_us, time_host_ops
    before = gc.isenabled()
    out = time_host_ops(torch.device("cpu"), log=lambda _: None, rounds=2, calls=20)
    assert gc.isenabled() == before
    assert all(v > 0 for v in out.values()) and cpu_probe_us(1000) > 0


@pytest.mark.parametrize("model_type", ["llama", "opt", "gpt2", "qwen3", "olmo2", "granite", "olmoe", "phimoe",
                                        "deepseek_v3", "glm4_moe", "gpt_oss", "llama4_text", "qwen3_next", "deepseek_v2"])
def test_host_extras_match_transformers(model_type):
    """Family.host_extras (views, module calls per layer, counted on an H200 with transformers
    5.17) against a count on the transformers installed here: views within 3, module calls
    within 1 (the dispatch of a view can differ between CPU and CUDA and between releases)."""
    pytest.importorskip("transformers")
    import torch
    from bench.probe_host import dispatch_counts
    from estimator.calibrate.host import tiny_model
    from estimator.families import BY_MODEL_TYPE
    torch.manual_seed(0)   # random routing decides how many experts an MoE layer runs: fixed weights, fixed counts
    ids = torch.randint(0, 200, (1, 8))
    counts = []
    for n in (2, 12):
        torch.manual_seed(n)
        counts.append(dispatch_counts(tiny_model(model_type, n, torch.device("cpu")), ids))
    views = (counts[1]["views"] - counts[0]["views"]) / 10
    modules = (counts[1]["modules"] - counts[0]["modules"]) / 10
    want_views, want_modules = BY_MODEL_TYPE[model_type].host_extras
    assert abs(views - want_views) <= 3 and abs(modules - want_modules) <= 1, (views, modules)


def test_a_derived_generate_entry_is_not_called_measured(shipped):
    """The calibration derives some model types' generate entries from llama's timing
    (``derived_from``): an estimate resting on one says so (source "forward"), not "measured"."""
    raw = copy.deepcopy(shipped.raw)
    entry = {"setup_us": 2000.0, "setup_per_layer_us": 0.0, "step_us": 900.0, "step_per_layer_us": 600.0}
    raw["generate"] = {"llama": dict(entry), "qwen3": dict(entry, derived_from="llama")}
    w = Workload(1, 128, "bfloat16", new_tokens=8)
    prof = Profile(raw, "derived")
    assert estimate("AICrossSim/clm-60m", "H200", w, profile=prof).host_source == "measured"
    assert estimate("Qwen/Qwen3-0.6B", "H200", w, profile=prof).host_source == "forward"


def test_decode_step_of_each_family_left_out_is_built_from_its_parts(shipped):
    """generate's host time of a family whose generate() and forward were not timed, built from
    parts (op-level forward x decode/forward ratio x the machine's decode glue of its MLP kind,
    generate's own per-step work the median of the others), against the family's measured decode
    step (a 12-layer tiny model): within 15 % for each, as the issue asks. On the shipped H200
    (generate timed round-robin with the forward, loan 6 of 2026-12-03): mean 6.5 %, max 14.4 %
    (smollm3 +14.4, llama +12.3, olmoe +12.5, mixtral -11.9). With the earlier generate section,
    timed minutes and loans away from its forward, it was mean 10.3 %, max 26.6 %."""
    errors = {}
    for model_type, entry in shipped.raw["generate"].items():
        if model_type not in shipped.data.host:
            continue
        raw = copy.deepcopy(shipped.raw)
        raw["host"].pop(model_type)
        raw["generate"].pop(model_type)
        spec = hm._tiny_spec(model_type)
        gen, source = hm.generate_price(Profile(raw, "left out"), spec, hm.TINY_DTYPE_BYTES)
        if source == "measured":   # its family's entry (mistral -> llama): not left out
            continue
        want = entry["step_us"] + LOFO_LAYERS * entry["step_per_layer_us"]
        errors[model_type] = gen.step_us + LOFO_LAYERS * gen.step_per_layer_us - want
        errors[model_type] /= want
    assert len(errors) >= 12
    assert sum(abs(x) for x in errors.values()) / len(errors) <= 0.10, errors
    assert max(abs(x) for x in errors.values()) <= 0.15, errors


def test_decode_glue_is_per_mlp_kind_and_falls_back_to_every_type(shipped):
    """Routed-expert types get the glue of the routed types the profile timed; a profile that
    timed no such type gives them the dense types' glue (never a silent 1.0 when data exists)."""
    dense, routed = hm.decode_glue(shipped, 2, False), hm.decode_glue(shipped, 2, True)
    assert routed > dense > 0.5   # the expert loop's Python shrinks less than its kernels in a decode step
    raw = copy.deepcopy(shipped.raw)
    for mt in ("mixtral", "qwen3_moe", "olmoe", "phimoe"):
        raw["generate"].pop(mt)
    only_dense = Profile(raw, "dense only")
    assert hm.decode_glue(only_dense, 2, True) == hm.decode_glue(only_dense, 2, False)
