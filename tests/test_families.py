"""The family registry: every supported model_type has one family, the families answer every
generic module, and the tiny configs host calibration times build the models it always built."""
from __future__ import annotations

import pytest

from estimator import families
from estimator.errors import EstimatorError
from estimator.families.base import Family
from estimator.model import ModelSpec, load_model, zoo_names

HOOKS = ("spec_fields", "qkv_ops", "layer_live_per_token", "module_tree")


def test_every_model_type_has_exactly_one_family():
    assert families.supported_model_types() == ["deepseek_v2", "deepseek_v3", "gemma2", "gemma3_text", "glm4_moe", "gpt2", "gpt_neox",
                                                "gpt_oss", "granite", "llama", "llama4_text",
                                                "mistral", "mixtral", "olmo2", "olmoe", "opt", "phi3", "phimoe",
                                                "qwen2", "qwen3", "qwen3_moe", "qwen3_next", "smollm3"]
    owners = [t for f in families.FAMILIES for t in f.model_types]
    assert len(owners) == len(set(owners))
    assert {f.name for f in families.FAMILIES} == set(families.BY_NAME) == {
        "opt", "gpt2", "llama", "gpt_neox", "phi3", "qwen3", "gemma2", "gemma3_text", "mixtral", "qwen3_moe",
        "olmo2", "granite", "smollm3", "olmoe", "phimoe", "deepseek_v3", "glm4_moe", "gpt_oss", "llama4_text",
        "qwen3_next", "deepseek_v2"}


@pytest.mark.parametrize("family", families.FAMILIES, ids=lambda f: f.name)
def test_family_implements_every_hook(family):
    for hook in HOOKS:
        assert getattr(type(family), hook) is not getattr(Family, hook), f"{family.name} lacks {hook}"
    assert family.model_types[0] == family.name and family.aliases["layers"]


def test_spec_knows_its_family():
    for name in zoo_names():
        spec = load_model(name)
        arch = getattr(spec.arch, "text", spec.arch)   # a multimodal config: its text family (multimodal.py)
        assert arch is families.family_of(spec.model_type) and spec.arch.name == spec.family


def test_code_family_pools_model_types_with_the_same_code():
    assert {t: families.code_family(t) for t in families.HOST_MODEL_TYPES} == {
        "llama": "llama", "mistral": "llama", "qwen2": "llama", "opt": "opt", "gpt2": "gpt2",
        **{t: t for t in ("gpt_neox", "phi3", "qwen3", "gemma2", "gemma3_text", "mixtral", "qwen3_moe",
                          "olmo2", "granite", "smollm3", "olmoe", "phimoe")}}
    assert families.code_family("falcon") == "falcon"   # unknown: pooled alone


def test_host_calibration_measures_every_model_type_reference_first():
    assert families.HOST_MODEL_TYPES == ("llama", "opt", "gpt2", "gpt_neox", "phi3", "qwen3", "gemma2",
                                         "gemma3_text", "mixtral", "qwen3_moe", "olmo2", "granite", "smollm3",
                                         "olmoe", "phimoe", "qwen2", "mistral")
    assert not families.GPT_OSS.host_timed and families.code_family("gpt_oss") == "gpt_oss"   # the op-level host model


def test_unknown_tiny_config_is_one_line():
    with pytest.raises(EstimatorError, match="unknown model family 'falcon': use one of llama, opt"):
        families.tiny_config_kwargs("falcon", 2)


transformers = pytest.importorskip("transformers")

# What host calibration built before the kwargs became family data (calibrate._tiny_config).
_COMMON = dict(hidden_size=64, num_attention_heads=4, vocab_size=256, max_position_embeddings=128)
BEFORE = {
    "llama": lambda n: transformers.LlamaConfig(intermediate_size=128, num_key_value_heads=2, num_hidden_layers=n,
                                                **_COMMON),
    "qwen2": lambda n: transformers.Qwen2Config(intermediate_size=128, num_key_value_heads=2, num_hidden_layers=n,
                                                **_COMMON),
    "mistral": lambda n: transformers.MistralConfig(intermediate_size=128, num_key_value_heads=2,
                                                    num_hidden_layers=n, **_COMMON),
    "opt": lambda n: transformers.OPTConfig(ffn_dim=128, word_embed_proj_dim=64, num_hidden_layers=n, **_COMMON),
    "gpt2": lambda n: transformers.GPT2Config(n_embd=64, n_head=4, n_layer=n, vocab_size=256, n_positions=128,
                                              bos_token_id=0, eos_token_id=0),
}


@pytest.mark.parametrize("model_type", [t for t in families.HOST_MODEL_TYPES if t in BEFORE])
@pytest.mark.parametrize("layers", [2, 12])
def test_tiny_config_is_the_one_calibration_built(model_type, layers):
    kw = families.tiny_config_kwargs(model_type, layers)
    cfg = transformers.AutoConfig.for_model(**kw)
    assert cfg.to_dict() == BEFORE[model_type](layers).to_dict()
    spec = ModelSpec.from_hf_config(cfg.to_dict(), name=f"tiny-{model_type}")   # the estimator reads it
    assert spec.model_type == model_type and spec.layers == layers and spec.hidden == 64


@pytest.mark.parametrize("model_type", [t for t in families.HOST_MODEL_TYPES if t not in BEFORE])
def test_new_families_tiny_config_builds_and_reads(model_type):
    """Families added after calibration's hard-coded configs: transformers builds the tiny config
    and the estimator reads it back (host calibration times these)."""
    cfg = transformers.AutoConfig.for_model(**families.tiny_config_kwargs(model_type, 2))
    spec = ModelSpec.from_hf_config(cfg.to_dict(), name=f"tiny-{model_type}")
    assert spec.model_type == model_type and spec.layers == 2 and spec.hidden == 64


@pytest.mark.parametrize("name", zoo_names())
def test_has_tp_plan_matches_transformers_and_the_bench_skip(name):
    # issue 28: tensor parallel of OPT / GPT-2 was estimated without a word, though transformers
    # has no tp_plan for them (bench/test_distributed.py skips those cases)
    pytest.importorskip("transformers")
    from bench import distributed
    spec = load_model(name)
    assert spec.arch.has_tp_plan == distributed.has_tp_plan(name)
    multimodal = hasattr(spec.arch, "wrapper_type")   # families/multimodal.py: no plan of its own
    # Llama4Config ships a plan of its own (its projector; the text model's from its text_config)
    llama4 = multimodal and spec.arch.wrapper_type == "llama4"
    assert spec.arch.has_tp_plan == (spec.model_type not in ("opt", "gpt2") and (llama4 or not multimodal))


@pytest.mark.parametrize("name, noted", [("facebook/opt-1.3b", True), ("openai-community/gpt2", True),
                                         ("AICrossSim/clm-60m", False)])
def test_a_tensor_parallel_estimate_without_a_tp_plan_is_noted(name, noted, capsys):
    from estimator import Workload, estimate
    from estimator.__main__ import main
    est = estimate(name, "H200", Workload(4, 128, gpus=2, parallel="tensor"))
    assert est.runtime_ms > 0     # still estimated (a Megatron-style sharding), with the note
    assert any("no tensor-parallel plan" in n for n in est.notes) == noted
    assert not any("tensor-parallel plan" in n for n in estimate(name, "H200", Workload(4, 128, gpus=2)).notes)
    assert main(["estimate", "--model", name, "--device", "H200", "--gpus", "2", "--parallel", "tensor"]) == 0
    assert ("note: transformers has no tensor-parallel plan" in capsys.readouterr().out) == noted
