"""ModelSpec against transformers: parameter counts of every zoo model and of hand-written
configs equal what AutoModelForCausalLM builds (on the meta device, no weights allocated), and
load_model resolves names and paths and rejects bad input with one-line EstimatorErrors."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from estimator.errors import EstimatorError
from estimator.families.opt import OptFields
from estimator.model import ZOO_DIR, ModelSpec, load_model, zoo_names

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("quiet_transformers")


def hf_param_count(config_dir: str | Path) -> int:
    """Parameters of the model transformers builds from config_dir/config.json (meta device)."""
    from test_placement import hf_text_config   # multimodal configs: their text model
    cfg = hf_text_config(config_dir)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    return model.num_parameters()


def write_config(tmp_path: Path, cfg: dict) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return tmp_path


def assert_one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg, f"message must be one non-empty line: {msg!r}"
    return msg


# ---- parameter counts --------------------------------------------------------------------------

EXPECTED_ZOO = {
    "openai/gpt-oss-20b", "openai/gpt-oss-120b", "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
    "AICrossSim/clm-1.1b", "AICrossSim/clm-200m", "AICrossSim/clm-400m", "AICrossSim/clm-60m",
    "Qwen/Qwen2.5-0.5B", "facebook/opt-1.3b", "facebook/opt-6.7b", "mistralai/Mistral-7B-v0.1",
    "openai-community/gpt2", "openai-community/gpt2-medium",
    "facebook/opt-350m", "EleutherAI/pythia-160m", "EleutherAI/pythia-1b", "microsoft/Phi-3-mini-4k-instruct",
    "Qwen/Qwen3-0.6B",
    "google/gemma-2-2b", "google/gemma-2-9b", "google/gemma-3-1b-pt", "mistralai/Mixtral-8x7B-v0.1",
    "Qwen/Qwen3-30B-A3B", "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B",
    # h24c: new families and multimodal configs
    "allenai/OLMo-2-1124-7B", "ibm-granite/granite-3.1-8b-instruct", "HuggingFaceTB/SmolLM3-3B",
    "allenai/OLMoE-1B-7B-0924", "microsoft/Phi-3.5-MoE-instruct", "google/gemma-3-4b-it",
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503", "Qwen/Qwen2.5-VL-7B-Instruct",
    # hds: latent attention and shared experts
    "deepseek-ai/DeepSeek-V3", "moonshotai/Kimi-K2-Instruct", "zai-org/GLM-4.5-Air",
    # q3n: linear attention
    "Qwen/Qwen3-Next-80B-A3B-Instruct",
    # h-dsv2: DeepSeek-V2 (latent attention with and without q LoRA, softmax routing)
    "deepseek-ai/DeepSeek-V2-Lite", "deepseek-ai/DeepSeek-V2",
}


def test_zoo_lists_every_shipped_config():
    assert set(zoo_names()) == EXPECTED_ZOO
    assert list(zoo_names()) == sorted(zoo_names())


@pytest.mark.parametrize("name", zoo_names())
def test_zoo_param_count_matches_transformers(name):
    spec = load_model(name)
    assert spec.name == name
    assert spec.param_count() == hf_param_count(ZOO_DIR / name)


# Configs not in the zoo: each exercises one field the counts depend on.
EXTRA_CONFIGS = {
    "gpt2-n_inner": dict(model_type="gpt2", n_embd=256, n_layer=3, n_head=4, n_inner=1000, vocab_size=1000,
                         n_positions=512, activation_function="gelu_new"),
    "gpt2-untied": dict(model_type="gpt2", n_embd=256, n_layer=2, n_head=8, vocab_size=1000, n_positions=512,
                        tie_word_embeddings=False),
    "mistral-head_dim": dict(model_type="mistral", hidden_size=512, num_hidden_layers=2, num_attention_heads=8,
                             num_key_value_heads=2, head_dim=96, intermediate_size=1024, vocab_size=1000,
                             max_position_embeddings=1024),
    "qwen2-tied": dict(model_type="qwen2", hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=512, vocab_size=1000,
                       max_position_embeddings=1024, tie_word_embeddings=True),
    "qwen2-untied": dict(model_type="qwen2", hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=512, vocab_size=1000,
                         max_position_embeddings=1024, tie_word_embeddings=False),
    "llama-biases": dict(model_type="llama", hidden_size=256, num_hidden_layers=2, num_attention_heads=8,
                         num_key_value_heads=4, intermediate_size=512, vocab_size=1000,
                         max_position_embeddings=512, attention_bias=True, mlp_bias=True),
    "llama-no-kv-heads": dict(model_type="llama", hidden_size=256, num_hidden_layers=2, num_attention_heads=8,
                              intermediate_size=512, vocab_size=1000, max_position_embeddings=512),
    # OPT-350m's shape (word_embed_proj_dim 512 != hidden 1024: project_in/out), pre-LN variant
    "opt-350m-like": dict(model_type="opt", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                          ffn_dim=4096, vocab_size=50272, max_position_embeddings=2048,
                          word_embed_proj_dim=512, do_layer_norm_before=True),
    # Qwen3-MoE with dense layers (mlp_only_layers, decoder_sparse_step): layers of two MLP kinds
    "qwen3_moe-dense-layers": dict(model_type="qwen3_moe", hidden_size=128, num_hidden_layers=5, num_attention_heads=4,
                                   num_key_value_heads=2, head_dim=32, intermediate_size=384, moe_intermediate_size=64,
                                   num_experts=8, num_experts_per_tok=2, vocab_size=1000, max_position_embeddings=512,
                                   mlp_only_layers=[0], decoder_sparse_step=2),
    "opt-no-bias-untied": dict(model_type="opt", hidden_size=256, num_hidden_layers=2, num_attention_heads=8,
                               ffn_dim=512, vocab_size=1000, max_position_embeddings=512, enable_bias=False,
                               tie_word_embeddings=False, word_embed_proj_dim=128),
}


@pytest.mark.parametrize("key", sorted(EXTRA_CONFIGS))
def test_extra_config_param_count_matches_transformers(key, tmp_path):
    folder = write_config(tmp_path, EXTRA_CONFIGS[key])
    spec = load_model(str(folder))
    assert spec.param_count() == hf_param_count(folder)
    assert ModelSpec.from_hf_config(EXTRA_CONFIGS[key]).param_count() == spec.param_count()


def test_extra_configs_take_the_field_they_exercise():
    spec = ModelSpec.from_hf_config(EXTRA_CONFIGS["gpt2-n_inner"])
    assert spec.ffn == 1000
    spec = ModelSpec.from_hf_config(EXTRA_CONFIGS["mistral-head_dim"])
    assert (spec.head_dim, spec.q_dim, spec.kv_dim) == (96, 768, 192)
    tied = ModelSpec.from_hf_config(EXTRA_CONFIGS["qwen2-tied"])
    untied = ModelSpec.from_hf_config(EXTRA_CONFIGS["qwen2-untied"])
    assert tied.tied_embeddings and not untied.tied_embeddings
    assert untied.param_count() - tied.param_count() == 1000 * 256
    opt = ModelSpec.from_hf_config(EXTRA_CONFIGS["opt-350m-like"])
    assert opt.fields_of(OptFields).proj_dim == 512 and opt.hidden == 1024
    assert opt.embedding_params() == 50272 * 512 + 2050 * 1024 + 2 * 512 * 1024


def test_qwen2_without_tie_field_matches_transformers(tmp_path):
    cfg = dict(EXTRA_CONFIGS["qwen2-untied"])
    del cfg["tie_word_embeddings"]
    folder = write_config(tmp_path, cfg)
    assert load_model(str(folder)).param_count() == hf_param_count(folder)


@pytest.mark.parametrize("model_type,heads", [("mistral", 32), ("qwen2", 64)])
def test_missing_kv_heads_default_matches_transformers(model_type, heads, tmp_path):
    cfg = dict(model_type=model_type, hidden_size=heads * 16, num_hidden_layers=2, num_attention_heads=heads,
               intermediate_size=512, vocab_size=1000, max_position_embeddings=512, tie_word_embeddings=False)
    folder = write_config(tmp_path, cfg)
    assert load_model(str(folder)).param_count() == hf_param_count(folder)


def test_opt_post_layer_norm_variant_counts_like_transformers(tmp_path):
    """opt-350m's post-LN layout: no final norm (was refused before)."""
    cfg = dict(EXTRA_CONFIGS["opt-350m-like"], do_layer_norm_before=False)
    spec = ModelSpec.from_hf_config(cfg, name="opt-350m")
    assert not spec.arch.has_final_norm(spec)
    assert load_model(str(write_config(tmp_path, cfg))).param_count() == hf_param_count(tmp_path)


# ---- load_model: names and paths -------------------------------------------------------------

def test_load_model_accepts_folder_file_and_names():
    full = load_model("facebook/opt-1.3b")
    folder = ZOO_DIR / "facebook" / "opt-1.3b"
    by_folder = load_model(str(folder))
    by_file = load_model(str(folder / "config.json"))
    for other in (by_folder, by_file, load_model("opt-1.3b"), load_model("OPT-1.3B"),
                  load_model("Facebook/OPT-1.3b"), load_model("Opt-1.3B")):
        assert other.param_count() == full.param_count()
        assert other.name == "facebook/opt-1.3b"
        assert (other.hidden, other.layers, other.heads, other.ffn) == (2048, 24, 32, 8192)


def test_load_model_short_names_resolve_to_their_org():
    assert load_model("clm-60m").name == "AICrossSim/clm-60m"
    assert load_model("qwen2.5-0.5b").name == "Qwen/Qwen2.5-0.5B"
    assert load_model("mistral-7b-v0.1").name == "mistralai/Mistral-7B-v0.1"
    assert load_model("gpt2").name == "openai-community/gpt2"
    assert load_model("gpt2-medium").name == "openai-community/gpt2-medium"


def test_load_model_outside_zoo_uses_name_or_path(tmp_path):
    cfg = dict(EXTRA_CONFIGS["llama-biases"], _name_or_path="me/tiny-llama")
    assert load_model(str(write_config(tmp_path / "a", cfg))).name == "me/tiny-llama"
    bare = dict(EXTRA_CONFIGS["llama-biases"])
    folder = write_config(tmp_path / "b", bare)
    assert load_model(str(folder)).name == str(folder / "config.json")


def test_unknown_name_names_close_candidates():
    with pytest.raises(EstimatorError) as exc:
        load_model("opt-1.4b")
    msg = assert_one_line(exc)
    assert "opt-1.4b" in msg and "facebook/opt-1.3b" in msg and "closest" in msg
    with pytest.raises(EstimatorError) as exc:
        load_model("clm-100m")
    assert "AICrossSim/clm-" in assert_one_line(exc)


def test_unknown_name_without_candidates():
    with pytest.raises(EstimatorError) as exc:
        load_model("zzzzqqqq")
    msg = assert_one_line(exc)
    assert "unknown model" in msg and "zzzzqqqq" in msg
    # issue 28: the next step is named, not only close names
    assert "path to any Hugging Face config.json" in msg and "python -m estimator models" in msg


@pytest.mark.parametrize("text", ['{"model_type": "opt", "hidden_size": ', "not json at all", "{\n\n,}"])
def test_malformed_json_raises_one_line(text, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(EstimatorError) as exc:
        load_model(str(path))
    msg = assert_one_line(exc)
    assert "malformed config" in msg and str(path) in msg


def test_non_utf8_config_raises_one_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xff\xfe\x00{garbage")
    with pytest.raises(EstimatorError) as exc:
        load_model(str(path))
    assert "malformed config" in assert_one_line(exc)


@pytest.mark.parametrize("base,field", [
    ("llama-biases", "hidden_size"), ("llama-biases", "intermediate_size"),
    ("llama-biases", "num_hidden_layers"), ("opt-350m-like", "ffn_dim"),
    ("opt-350m-like", "max_position_embeddings"), ("gpt2-n_inner", "n_head"), ("gpt2-n_inner", "vocab_size"),
])
def test_missing_field_raises_one_line(base, field, tmp_path):
    cfg = dict(EXTRA_CONFIGS[base])
    del cfg[field]
    with pytest.raises(EstimatorError) as exc:
        load_model(str(write_config(tmp_path, cfg)))
    msg = assert_one_line(exc)
    assert field in msg


@pytest.mark.parametrize("value", [0, -4, "4096", 40.5, True, None])
def test_bad_field_value_raises(value):
    cfg = dict(EXTRA_CONFIGS["llama-biases"], hidden_size=value)
    with pytest.raises(EstimatorError) as exc:
        ModelSpec.from_hf_config(cfg)
    assert "hidden_size" in assert_one_line(exc)


def test_unsupported_model_type_and_non_object():
    with pytest.raises(EstimatorError) as exc:
        ModelSpec.from_hf_config(dict(model_type="bert", hidden_size=768))
    msg = assert_one_line(exc)
    assert "bert" in msg and "llama" in msg
    with pytest.raises(EstimatorError) as exc:
        ModelSpec.from_hf_config([1, 2, 3])
    assert "JSON object" in assert_one_line(exc)


@pytest.mark.parametrize("text", ["[1, 2, 3]", '"llama"', "42"])
def test_load_model_non_object_json_raises_estimator_error(text, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(EstimatorError) as exc:
        load_model(str(path))
    assert "JSON object" in assert_one_line(exc)


def test_kv_heads_must_divide_heads():
    cfg = dict(EXTRA_CONFIGS["llama-biases"], num_key_value_heads=3)
    with pytest.raises(EstimatorError) as exc:
        ModelSpec.from_hf_config(cfg)
    assert "num_key_value_heads" in assert_one_line(exc)


# ---- the CLM configs as SOURCES.md states them -----------------------------------------------

def _sources_table() -> dict[str, tuple[int, ...]]:
    """dim/layers/heads/KV heads and FFN widths, parsed from estimator/zoo/SOURCES.md itself."""
    text = (ZOO_DIR / "SOURCES.md").read_text()
    line = next(ln for ln in text.splitlines() if "AICrossSim/clm-60m" in ln)
    dims = re.findall(r"(\d+)/(\d+)/(\d+)/(\d+)", line)
    ffn = re.search(r"\((\d+), (\d+), (\d+), (\d+)\)", line).groups()
    vocab = int(re.search(r"vocab (\d+)", line).group(1))
    names = ["clm-60m", "clm-200m", "clm-400m", "clm-1.1b"]
    assert len(dims) == 4 and "untied output head" in line
    return {n: (*map(int, d), int(f), vocab) for n, d, f in zip(names, dims, ffn)}


CLM = {  # hidden, layers, heads, kv heads, FFN, vocab (SOURCES.md)
    "clm-60m": (384, 22, 6, 2, 1408, 49152),
    "clm-200m": (768, 24, 12, 4, 2688, 49152),
    "clm-400m": (960, 30, 15, 5, 3328, 49152),
    "clm-1.1b": (1536, 32, 24, 8, 5376, 49152),
}


def test_sources_md_states_the_clm_sizes_tested_here():
    assert _sources_table() == CLM


@pytest.mark.parametrize("name", sorted(CLM))
def test_clm_configs_have_the_documented_sizes(name):
    spec = load_model(name)
    hidden, layers, heads, kv, ffn, vocab = CLM[name]
    assert (spec.hidden, spec.layers, spec.heads, spec.kv_heads, spec.ffn, spec.vocab) == CLM[name]
    assert spec.name == f"AICrossSim/{name}"
    assert spec.family == "llama" and spec.model_type == "llama"
    assert spec.head_dim == 64 == hidden // heads
    assert not spec.tied_embeddings and spec.head_params() == vocab * hidden
    assert spec.max_positions == 2048 and spec.dtype == "bfloat16"
    assert not (spec.qkv_bias or spec.out_bias or spec.mlp_bias)
    # torchtitan FFN sizing: multiple_of * ceil(int(1.3 * int(8 * dim / 3)) / multiple_of), multiple_of 128
    assert ffn == 128 * -(-int(1.3 * int(8 * hidden / 3)) // 128)
