"""bench/distributed.py and bench/dist_worker.py on the CPU: skip reasons, aggregation, and the real
worker over gloo with a tiny Llama (data and tensor parallel)."""
import json

import pytest

from bench import distributed
from bench.launch import RankResult, launch
from estimator.model import ModelSpec, load_model

TINY = dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
            max_position_embeddings=128, torch_dtype="float32")


def test_skip_reasons() -> None:
    clm = load_model("AICrossSim/clm-60m")   # 6 heads, 2 KV heads
    assert distributed.skip_reason(clm, "data", 2, 16, True) is None
    assert "divisible by 3, got 16" in distributed.skip_reason(clm, "data", 3, 16, True)
    assert "no tensor-parallel plan for opt" in distributed.skip_reason(load_model("facebook/opt-1.3b"), "tensor", 2, 16, False)
    assert "KV heads (2) divisible by 4" in distributed.skip_reason(clm, "tensor", 4, 16, True)
    assert distributed.skip_reason(clm, "tensor", 2, 16, True) is None


def test_tp_plan_lookup() -> None:
    pytest.importorskip("transformers")
    assert distributed.has_tp_plan("AICrossSim/clm-60m")
    assert not distributed.has_tp_plan("facebook/opt-1.3b")
    assert not distributed.has_tp_plan("openai-community/gpt2")


def test_aggregate_takes_slowest_rank_and_sums_energy() -> None:
    ranks = [RankResult(1, [3.0, 1.0, 5.0], 2.0, 10.0, 1.0, 5, 100), RankResult(0, [2.0, 4.0, 1.0], 1.5, 30.0, 1.0, 5, 100)]
    agg = distributed.aggregate(ranks)
    assert agg.runtime_ms == 4.0              # median of the per-round maxima 3, 4, 5
    assert agg.memory_gb_per_gpu == [1.5, 2.0]
    assert agg.energy_j_per_token == pytest.approx(40.0 / 1000)
    assert distributed.aggregate([RankResult(0, [1.0])]).energy_j_per_token is None
    # tensor parallel: both ranks work on the same 500 tokens, which count once
    assert distributed.aggregate(ranks, shared_tokens=True).energy_j_per_token == pytest.approx(40.0 / 500)


def _tiny(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    return str(tmp_path)


@pytest.mark.parametrize("mode", ["data", "tensor"])
def test_worker_over_gloo(tmp_path, mode) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg_dir = _tiny(tmp_path)
    ckpt = None
    if mode == "tensor":
        ckpt = str(tmp_path / "ckpt")
        with torch.device("cpu"):
            AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(cfg_dir)).save_pretrained(ckpt)
    case = dict(mode=mode, config_dir=cfg_dir, checkpoint=ckpt, batch=4, seq=16, dtype="float32", device="cpu",
                energy_window_s=0.05, rounds=3, warmup=1)
    res = launch(distributed.WORKER, case, nproc=2, timeout_s=120)
    if not res.ok and mode == "tensor" and "cuda" in res.stderr_tail.lower():
        pytest.skip("transformers' tensor parallel needs an accelerator here")
    assert res.ok, res.error + "\n" + res.stderr_tail
    assert [r.rank for r in res.ranks] == [0, 1]
    share = 4 // 2 if mode == "data" else 4
    assert all(r.tokens == share * 16 and len(r.times_ms) == 3 and r.steps >= 1 for r in res.ranks)
    assert distributed.aggregate(res.ranks).runtime_ms > 0


def test_distributed_row_records_the_host_times_the_estimate_used(monkeypatch) -> None:
    """bench/test_distributed.py driven on the CPU (machine, launcher and profile faked): a MoE row
    records the host times of its experts implementation's keys (spec.arch.host_keys), the ones
    the estimate used, not those of the eager loop (model_type, family)."""
    pytest.importorskip("torch")
    from bench import test_distributed as td
    from bench.calibration import Resolved
    from bench.cases import Case, Machine
    from bench.options import BenchConfig
    from estimator.device import get_device
    from estimator.profile import shipped_profile

    host = {"qwen3_moe": {"per_layer_us": 900.0, "fixed_us": 9000.0, "layers_measured": [2, 12]},
            "qwen3_moe/grouped_mm": {"per_layer_us": 111.0, "fixed_us": 222.0, "layers_measured": [2, 12]}}
    prof = shipped_profile("h200-sxm-141gb").with_host(host, {"qwen3_moe": 50.0, "qwen3_moe/grouped_mm": 7.0},
                                                       "test")
    monkeypatch.setattr(td, "detect", lambda: Machine(2, "NVIDIA H200", get_device("H200"), None))
    monkeypatch.setattr(td.build, "config_problem", lambda name: None)
    ranks = [RankResult(r, [100.0, 101.0, 99.0], 40.0, None, 0.0, 0, 2 * 128) for r in (0, 1)]
    monkeypatch.setattr(td, "launch", lambda *a, **k: type("R", (), dict(ok=True, ranks=ranks))())
    request = type("Req", (), {"getfixturevalue": staticmethod(lambda name: Resolved(prof))})()
    recorder = type("Rec", (), {"default_name": ""})()
    rows = []
    case = Case("Qwen/Qwen3-30B-A3B", 4, 128, 2, "data", "auto", "H200")
    td.test_distributed(case, BenchConfig(), recorder, lambda row, bounds: rows.append(row), None, request)
    (row,) = rows
    assert row["estimated"]["host_us"] == {"per_layer_us": 111.0, "fixed_us": 222.0, "dispatch_hook_us": 7.0}
