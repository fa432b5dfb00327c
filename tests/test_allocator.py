"""Weights as the CUDA caching allocator holds them (estimator/allocator.py): the weight list of
each family it prices equals transformers' own parameters (above 1 MiB, in creation order, on the
meta device), and the allocator's rules give the allowance the H200 bench measured."""
from __future__ import annotations

import pytest

from estimator import Workload, estimate, load_model, zoo_names
from estimator import allocator as al

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

def _text_only(name: str) -> bool:
    import json
    from estimator.model import config_path
    cfg = json.loads(config_path(name).read_text())
    return "text_config" not in cfg and "vision_config" not in cfg


LISTED = [n for n in zoo_names() if load_model(n).arch.name in al.FAMILIES and _text_only(n)]


def _transformers_sizes(name: str, e: int = 2) -> list[int]:
    from transformers import AutoConfig, AutoModelForCausalLM
    from estimator.model import config_path
    cfg = AutoConfig.from_pretrained(str(config_path(name)))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    return [p.numel() * e for p in model.parameters() if p.numel() * e > al.SMALL_SIZE]


@pytest.mark.parametrize("name", LISTED)
def test_weight_list_equals_transformers(name):
    """Our list of the model's large weight tensors is transformers' own, in creation order."""
    assert al.weight_tensor_bytes(load_model(name), 2) == _transformers_sizes(name), name


def test_allocator_rules():
    mib = al.MIB
    assert al.caching_allocator_bytes([100]) == 512                       # 512-byte rounding
    assert al.caching_allocator_bytes([19 * mib + 1]) == 20 * mib          # remainder < 1 MiB: whole block
    assert al.caching_allocator_bytes([4 * mib] * 5) == 20 * mib           # five fill one 20 MiB segment exactly
    assert al.caching_allocator_bytes([15 * mib]) == 16 * mib              # >= 10 MiB: rounded to 2 MiB
    assert al.caching_allocator_bytes([6 * mib, 6 * mib, 6 * mib, 1.5 * mib]) == 20 * mib   # the last takes the rest


def test_the_bench_allowance_of_the_user_models():
    """The H200 bench (2026-12-03, reports/measured/h200x1-1203b-*) measured these models' peak
    8.8 / 11.8 / 35.7 MB above the estimate (the 1 MB every model showed aside); OPT 0."""
    got = {n: al.allocator_overhead_bytes(load_model(n), 2) / 1e6 for n in
           ("AICrossSim/clm-200m", "AICrossSim/clm-400m", "AICrossSim/clm-1.1b", "facebook/opt-1.3b")}
    assert 7 < got["AICrossSim/clm-200m"] < 13 and 10 < got["AICrossSim/clm-400m"] < 14
    assert 33 < got["AICrossSim/clm-1.1b"] < 38 and got["facebook/opt-1.3b"] == 0
    spec = load_model("AICrossSim/clm-1.1b")
    est = estimate(spec, "H200", Workload(1, 128, "bfloat16"))
    weights = est.memory_breakdown_gb[0]["weights"] * 1e9
    assert weights == pytest.approx(spec.weight_bytes(2) + al.allocator_overhead_bytes(spec, 2))
