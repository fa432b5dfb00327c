"""estimate_many (issue 26): one result per workload, in order, the same as estimate's; a refused
workload's slot holds its EstimatorError; whole estimates of repeated workloads come from the
profile's cache, each a copy of its own."""
from __future__ import annotations

import pytest

from estimator import EstimatorError, Workload, estimate, estimate_many, get_device, load_model
from estimator.profile import profile_for
from estimator.result_cache import RESULTS_MAX


def test_one_result_per_workload_in_order_equal_to_estimate():
    ws = [Workload(batch=3, seq=100), None, Workload(batch=1, seq=9999), Workload(batch=5, seq=64, gpus=2),
          Workload(batch=2, seq=32, new_tokens=4), Workload(batch=3, seq=100)]
    out = estimate_many("facebook/opt-1.3b", "H100", ws)
    assert len(out) == len(ws)
    assert isinstance(out[2], EstimatorError) and "exceeds" in str(out[2])
    for w, r in zip(ws, out):
        if w is not None and w.seq == 9999:
            continue
        assert r.to_dict() == estimate("facebook/opt-1.3b", "H100", w).to_dict()
    assert out[0] is not out[5] and out[0].to_dict() == out[5].to_dict()


def test_note_of_the_device_name_given():
    [est] = estimate_many("facebook/opt-1.3b", "H100", [Workload(batch=2, seq=16)])
    assert est.notes == estimate("facebook/opt-1.3b", "H100", Workload(batch=2, seq=16)).notes
    assert any("H100" in n and "taken as" in n for n in est.notes)


@pytest.mark.parametrize("args, words", [
    (("facebook/opt-1.3b", "H100", Workload()), ["workloads", "list"]),
    (("facebook/opt-1.3b", "H100", "batch=4"), ["workloads", "str"]),
    (("facebook/opt-1.3b", "H100", [Workload(), {"batch": 4}]), ["workloads[1]", "dict"]),
    ((None, "H100", []), ["model", "None"]),
    (("facebook/opt-1.3b", "H10", [Workload()]), ["unknown device"]),
])
def test_mistakes_of_the_whole_call_raise(args, words):
    with pytest.raises(EstimatorError) as info:
        estimate_many(*args)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_repeated_estimate_is_a_copy_from_the_cache():
    spec, dev = load_model("facebook/opt-1.3b"), get_device("H100")
    prof = profile_for(dev)
    w = Workload(batch=7, seq=321)
    first = estimate(spec, dev, w)
    assert len(prof.results) <= RESULTS_MAX
    first.notes.append("mine")
    first.breakdown[0]["time_ms"] = -1.0
    first.memory_gb_per_gpu[0] = -1.0
    again = estimate(spec, dev, w)
    assert "mine" not in again.notes and again.breakdown[0]["time_ms"] > 0 and again.memory_gb_per_gpu[0] > 0
    prof.results.clear()
    assert estimate(spec, dev, w).to_dict() == again.to_dict()


def test_results_cache_is_bounded(monkeypatch):
    from estimator import result_cache
    monkeypatch.setattr(result_cache, "RESULTS_MAX", 5)
    prof = profile_for(get_device("H100"))
    for b in range(1, 12):
        estimate("AICrossSim/clm-60m", "H100", Workload(batch=b, seq=8))
        assert len(prof.results) <= 5


def test_array_path_equals_scalar_on_the_later_pricing_rules(tmp_path):
    """Rules added after the array path: a calibrated profile's decode-GEMM line (small-M points),
    weights as the caching allocator holds them (clm), Qwen3-Next's float32 GEMMs and FP8 weights
    (left to the scalar path): estimate_many gives estimate's numbers."""
    import copy
    import json
    from estimator import Workload, estimate, estimate_many, load_model
    from estimator.profile import PROFILE_DIR, Profile
    raw = json.loads((PROFILE_DIR / "h200-sxm-141gb.json").read_text())
    raw = copy.deepcopy(raw)
    raw["gemm"]["bfloat16"] = raw["gemm"]["bfloat16"] + [[m, n, k, 4.2 + 2 * (m * k + n * k + m * n) / 4.16e6]
                                                         for m in (1, 16, 64) for n in (512, 2048, 8192) for k in (512, 2048, 8192)]
    prof = Profile(raw, "small-M points")
    ws = [Workload(b, s, "bfloat16") for b in (1, 2, 3, 5, 8, 13, 32, 64) for s in (64, 128, 512)]
    cfg = json.loads((PROFILE_DIR.parent / "zoo/Qwen/Qwen3-0.6B/config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "fp8", "weight_block_size": [128, 128], "activation_scheme": "dynamic"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    fp8_model = load_model(str(tmp_path / "config.json"))
    assert fp8_model.fp8 is not None
    for model in ("AICrossSim/clm-1.1b", "Qwen/Qwen3-Next-80B-A3B-Instruct", fp8_model):
        for p in (None, prof):
            many = estimate_many(model, "H200", ws, profile=p)
            for w, got in zip(ws, many):
                want = estimate(model, "H200", w, profile=p)
                assert got.to_dict() == want.to_dict(), (model, w)
