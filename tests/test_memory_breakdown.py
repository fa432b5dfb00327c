"""Memory per GPU by part (issue 19): Estimate.memory_breakdown_gb, the sweep's part columns and
the CLI's table; the parts add up to memory_gb_per_gpu for every zoo model and mode."""
from __future__ import annotations

import math

import pytest

from estimator import EstimatorError, Workload, estimate, zoo_names
from estimator.__main__ import memory_table
from estimator.memory import PARTS
from estimator.sweep import PART_FIELDS, estimate_row, largest_parts
from estimator import get_device, load_model

CASES = [dict(gpus=1)] + [dict(gpus=g, parallel=m) for g in (2, 4) for m in ("pipeline", "data", "tensor")]
CASES += [dict(gpus=1, new_tokens=16), dict(gpus=1, use_cache=False)]


def _check(est) -> None:
    assert len(est.memory_breakdown_gb) == len(est.memory_gb_per_gpu)
    for parts, total in zip(est.memory_breakdown_gb, est.memory_gb_per_gpu):
        assert tuple(parts) == PARTS and all(v >= 0 for v in parts.values())
        assert math.isclose(sum(parts.values()), total, rel_tol=1e-12), (parts, total)
        assert parts["activations"] == 0 or parts["logits"] == 0   # the peak is one working set


@pytest.mark.parametrize("model", zoo_names())
def test_parts_add_up_to_the_total_in_every_mode(model):
    estimated = 0
    for kw in CASES:
        try:
            est = estimate(model, "H100", Workload(batch=4, seq=256, **kw))
        except EstimatorError:   # a mode the model cannot run (heads not divisible, ...)
            continue
        _check(est)
        estimated += 1
        if not kw.get("use_cache", True):
            assert all(p["kv_cache"] == 0 for p in est.memory_breakdown_gb)
    assert estimated >= 5


def test_parts_name_what_holds_the_memory():
    est = estimate("facebook/opt-1.3b", "H100", Workload(16, 1024, gpus=2))
    gpu0, gpu1 = est.memory_breakdown_gb
    assert gpu0["logits"] > 0 and gpu0["input_ids"] > 0 and gpu1["input_ids"] == 0   # head on GPU 0 here
    assert gpu1["activations"] > 0 and gpu0["weights"] > 1 and gpu1["weights"] > 1
    assert est.to_dict()["memory_breakdown_gb"] == est.memory_breakdown_gb
    gen = estimate("facebook/opt-1.3b", "H100", Workload(4, 512, new_tokens=64))
    assert gen.memory_breakdown_gb[0]["kv_cache"] > 0 and "memory_breakdown_gb" in gen.to_dict()


def test_sweep_row_has_the_busiest_gpus_parts_and_the_table_the_two_largest():
    row = estimate_row(load_model("facebook/opt-1.3b"), get_device("H100"), "float16", 64, 1024, 2, "pipeline")
    assert math.isclose(sum(getattr(row, f) for f in PART_FIELDS), row.memory_gb, rel_tol=1e-12)
    top = largest_parts(row)
    assert len(top) == 2 and top[0][1] >= top[1][1] >= max(getattr(row, f) for f in PART_FIELDS if f[:-3] not in
                                                            {t[0] for t in top})
    refused = estimate_row(load_model("facebook/opt-1.3b"), get_device("H100"), "float16", 1, 4096, 1, "single")
    assert refused.error and largest_parts(refused) == [] and refused.weights_gb is None


def test_cli_memory_table():
    est = estimate("facebook/opt-1.3b", "H100", Workload(16, 1024, gpus=2))
    lines = memory_table(est).splitlines()
    assert "weights GB" in lines[0] and "kv cache GB" in lines[0] and "total GB" in lines[0]
    assert len(lines) == 4 and lines[2].split()[-1] == f"{est.memory_gb_per_gpu[0]:.3f}"
