"""pipeline_placement against accelerate itself: real models built on the meta device, split by
get_balanced_memory + infer_auto_device_map exactly as the benchmark does (CPU only: integer GPU ids
with an explicit max_memory never query a device; accelerate only logs that the ids are absent)."""
from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path

import pytest

from estimator.allocator import allocator_overhead_bytes

from estimator.errors import EstimatorError
from estimator.model import ZOO_DIR, load_model, zoo_names
from estimator.placement import Placement, Stage, pipeline_placement, single_gpu_placement

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
accelerate = pytest.importorskip("accelerate")
from accelerate import infer_auto_device_map  # noqa: E402
from accelerate.utils import get_balanced_memory  # noqa: E402

DTYPES = {2: torch.float16, 4: torch.float32}


pytestmark = pytest.mark.usefixtures("quiet_accelerate")


def hf_text_config(config_dir):
    """The config transformers builds the estimated model from: a multimodal config's text model
    (families/multimodal.py: what a text-only forward runs, its vision tower not counted) as its
    family's causal LM, any other config as it is."""
    import json
    from estimator.families.multimodal import TEXT_MODEL, text_config
    raw = json.loads((Path(config_dir) / "config.json").read_text())
    if raw.get("model_type") in TEXT_MODEL:
        return transformers.AutoConfig.for_model(**text_config(raw, raw["model_type"], str(config_dir)))
    return transformers.AutoConfig.from_pretrained(str(config_dir))


@lru_cache(maxsize=None)
def meta_model(name: str, dtype_bytes: int = 2):
    cfg = hf_text_config(ZOO_DIR / name)
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(cfg, dtype=DTYPES[dtype_bytes])


def accelerate_placement(name: str, gpus: int, dtype_bytes: int, mem: float):
    """What the benchmark gets: per-GPU layers, weight bytes, and the GPU of the named parts;
    None when accelerate offloads part of the model to disk."""
    model = meta_model(name, dtype_bytes)
    no_split = model._no_split_modules
    dtype = DTYPES[dtype_bytes]
    max_memory = get_balanced_memory(model, max_memory={i: mem for i in range(gpus)},
                                     no_split_module_classes=no_split, dtype=dtype)
    device_map = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=no_split,
                                       dtype=dtype)
    if any(not isinstance(d, int) for d in device_map.values()):
        return None

    def device(module: str) -> int:
        keys = [k for k in device_map if k == "" or module == k or module.startswith(k + ".")]
        return device_map[max(keys, key=len)]

    weight = [0.0] * gpus
    for pname, p in model.named_parameters():          # a tied weight is listed once
        weight[device(pname)] += p.numel() * dtype_bytes
    layers = [0] * gpus
    modules = dict(model.named_modules())
    for mname, mod in modules.items():
        if type(mod).__name__ in no_split:
            layers[device(mname)] += 1

    def find(*suffixes):
        hits = [n for n in modules if n.endswith(suffixes)]
        return device(hits[0]) if hits else -1

    return dict(layers_per_gpu=tuple(layers), weight_bytes_per_gpu=tuple(weight),
                embed_gpu=find("embed_tokens", "transformer.wte", "gpt_neox.embed_in"),
                head_gpu=device("embed_out" if "embed_out" in modules else "lm_head"),   # GPT-NeoX: embed_out
                final_norm_gpu=find("decoder.final_layer_norm", "model.norm", "transformer.ln_f",
                                    "gpt_neox.final_layer_norm"),   # -1: none (OPT-350m's post-LN)
                rotary_gpu=find("rotary_emb"))


def ours(name: str, gpus: int, dtype_bytes: int, mem: float):
    p = pipeline_placement(load_model(name), gpus, dtype_bytes, mem)
    return dict(layers_per_gpu=p.layers_per_gpu, weight_bytes_per_gpu=p.weight_bytes_per_gpu,
                embed_gpu=p.embed_gpu, head_gpu=p.head_gpu, final_norm_gpu=p.final_norm_gpu,
                rotary_gpu=p.rotary_gpu)


@pytest.mark.parametrize("mem", [80e9, 141e9])
@pytest.mark.parametrize("gpus", [2, 4, 8])
@pytest.mark.parametrize("name", zoo_names())
def test_matches_accelerate(name, gpus, mem):
    theirs = accelerate_placement(name, gpus, 2, mem)
    if theirs is None:   # accelerate offloads (DeepSeek-V3, Kimi-K2): the estimator says it does not fit
        with pytest.raises(EstimatorError, match="does not fit"):
            ours(name, gpus, 2, mem)
        return
    assert ours(name, gpus, 2, mem) == theirs


@pytest.mark.parametrize("name, gpus, dtype_bytes, mem", [
    ("facebook/opt-6.7b", 8, 2, 8e9),
    ("facebook/opt-6.7b", 2, 2, 7.0e9),      # per-GPU limit binds: both GPUs nearly full
    ("facebook/opt-6.7b", 4, 2, 3.7e9),
    ("facebook/opt-6.7b", 3, 2, 4.9e9),
    ("facebook/opt-6.7b", 8, 2, 2.05e9),     # so tight that the greedy walk leaves GPU 7 empty
    ("mistralai/Mistral-7B-v0.1", 2, 2, 7.8e9),
    ("mistralai/Mistral-7B-v0.1", 4, 4, 80e9),
    ("mistralai/Mistral-7B-v0.1", 3, 4, 10.5e9),
    ("facebook/opt-1.3b", 4, 4, 80e9),
    ("Qwen/Qwen2.5-0.5B", 2, 4, 1.2e9),
    ("openai-community/gpt2-medium", 3, 4, 79.1e9),
])
def test_matches_accelerate_tight_memory(name, gpus, dtype_bytes, mem):
    expected = accelerate_placement(name, gpus, dtype_bytes, mem)
    assert expected is not None
    assert ours(name, gpus, dtype_bytes, mem) == expected
    assert sum(expected["layers_per_gpu"]) == load_model(name).layers


def test_does_not_fit_raises_like_accelerate_offloads():
    assert accelerate_placement("facebook/opt-6.7b", 2, 2, 6.5e9) is None
    with pytest.raises(EstimatorError, match="does not fit"):
        pipeline_placement(load_model("facebook/opt-6.7b"), 2, 2, 6.5e9)


@pytest.mark.parametrize("name", zoo_names())
def test_one_gpu_holds_everything(name):
    spec = load_model(name)
    mem = max(80e9, 3.0 * spec.param_count())   # Mixtral-8x7B's 93 GB need a larger GPU
    p = pipeline_placement(spec, 1, 2, mem)
    assert p.layers_per_gpu == (spec.layers,)
    norm_gpu = 0 if spec.arch.has_final_norm(spec) else -1   # OPT-350m's post-LN decoder has none
    assert (p.embed_gpu, p.head_gpu, p.final_norm_gpu, p.boundaries) == (0, 0, norm_gpu, 0)
    assert p.weight_bytes_per_gpu == (spec.param_count() * 2,)
    assert ours(name, 1, 2, mem) == accelerate_placement(name, 1, 2, mem)


@pytest.mark.parametrize("name", zoo_names())
@pytest.mark.parametrize("gpus", [2, 4, 8])
def test_weights_add_up_and_tied_head_follows_embedding(name, gpus):
    spec = load_model(name)
    mem = max(80e9, 3.0 * spec.param_count() * 2 / gpus)   # DeepSeek-V3 / Kimi-K2 need more than 80 GB each
    p = pipeline_placement(spec, gpus, 2, mem)
    assert sum(p.weight_bytes_per_gpu) == spec.param_count() * 2
    assert sum(p.layers_per_gpu) == spec.layers
    if spec.tied_embeddings:
        assert p.head_gpu == p.embed_gpu


def test_boundaries():
    # OPT defines final_layer_norm before its layers: it sits on GPU 0 with the embeddings, so
    # the hidden state goes 0 -> 1 and back to 0 for the final norm and the tied head.
    p = pipeline_placement(load_model("facebook/opt-1.3b"), 2, 2, 80e9)
    assert p.layers_per_gpu == (11, 13) and p.final_norm_gpu == 0 and p.head_gpu == 0
    assert p.boundaries == 2
    # Mistral over 4 GPUs: 3 layer hops; norm, rotary_emb and lm_head on GPU 3; the hidden state
    # is also copied to rotary_emb's GPU, whose cos/sin every layer off GPU 3 copies back.
    p = pipeline_placement(load_model("mistralai/Mistral-7B-v0.1"), 4, 2, 80e9)
    assert p.layers_per_gpu == (7, 9, 9, 7) and p.rotary_gpu == 3 and p.head_gpu == 3
    assert p.boundaries == 3 + 1
    assert p.rotary_copies == 25
    assert [p.layer_gpu(i) for i in (0, 6, 7, 31)] == [0, 0, 1, 3]
    # GPT-2 over 4 GPUs: GPU 0 must keep room for the (tied) token table, which then does not fit
    # it, so embeddings and head go to GPU 1, layers to GPUs 2-3, ln_f to GPU 3.
    p = pipeline_placement(load_model("openai-community/gpt2"), 4, 2, 80e9)
    assert p.layers_per_gpu == (0, 0, 5, 7) and (p.embed_gpu, p.final_norm_gpu, p.head_gpu) == (1, 3, 1)
    assert p.boundaries == 3 and p.gpus_used == 3
    # Qwen2.5-0.5B over 8: the tied 272 MB table fits no balanced GPU, so all lands on the last.
    p = pipeline_placement(load_model("Qwen/Qwen2.5-0.5B"), 8, 2, 80e9)
    assert p.layers_per_gpu == (0,) * 7 + (24,) and p.boundaries == 0 and p.embed_gpu == 7


def test_stages_follow_the_hidden_state():
    # Mistral over 4 GPUs: embeddings on 0, a copy to rotary_emb on 3, layers 0..3, norm and head on 3
    p = pipeline_placement(load_model("mistralai/Mistral-7B-v0.1"), 4, 2, 80e9)
    assert p.stages == (Stage("embeddings", 0), Stage("rotary", 3), Stage("layers", 0, 7), Stage("layers", 1, 9),
                        Stage("layers", 2, 9), Stage("layers", 3, 7), Stage("final norm", 3), Stage("lm head", 3))
    # GPT-2 over 4 GPUs: GPUs without layers are skipped; the head goes back to the embeddings' GPU
    p = pipeline_placement(load_model("openai-community/gpt2"), 4, 2, 80e9)
    assert [(s.part, s.gpu) for s in p.stages] == [("embeddings", 1), ("layers", 2), ("layers", 3),
                                                   ("final norm", 3), ("lm head", 1)]


@pytest.mark.parametrize("name", zoo_names())
def test_single_gpu_placement_is_the_one_gpu_map(name):
    spec = load_model(name)
    one, p = single_gpu_placement(spec, 2), pipeline_placement(spec, 1, 2, max(80e9, 3.0 * spec.param_count()))
    # the same weights, the one-GPU build's as the caching allocator holds them (allocator.py)
    assert one.layers_per_gpu == p.layers_per_gpu
    assert one.weight_bytes_per_gpu[0] - allocator_overhead_bytes(spec, 2) == p.weight_bytes_per_gpu[0]
    assert one.boundaries == p.boundaries == 0
    norm = [("final norm", 0, 0)] if spec.arch.has_final_norm(spec) else []   # OPT-350m: no final norm
    assert [(s.part, s.gpu, s.layers) for s in one.stages] == [
        ("embeddings", 0, 0), ("layers", 0, spec.layers), *norm, ("lm head", 0, 0)]
    assert one.rotary_copies == 0


def test_cached_and_frozen():
    spec = load_model("facebook/opt-1.3b")
    a = pipeline_placement(spec, 4, 2, 80e9)
    assert pipeline_placement(spec, 4, 2, 80e9) is a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.boundaries = 0
    assert isinstance(a, Placement)


@pytest.mark.parametrize("bad", [dict(gpus=0), dict(gpus=2.0), dict(dtype_bytes=0), dict(gpu_memory_bytes=0)])
def test_bad_arguments(bad):
    args = dict(gpus=2, dtype_bytes=2, gpu_memory_bytes=80e9) | bad
    with pytest.raises(EstimatorError):
        pipeline_placement(load_model("openai-community/gpt2"), **args)
