"""ModelSpec: the architecture facts the estimator needs, read from a Hugging Face config.

One alias table maps the HF field names of each family (OPT, GPT-2, Llama-like) onto one set of
names. Parameter counts follow the modules transformers builds from the same config.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import EstimatorError, closest

ZOO_DIR = Path(__file__).parent / "zoo"

# model_type -> family whose forward pass (kernel sequence) the estimator knows.
FAMILIES = {"opt": "opt", "gpt2": "gpt2", "llama": "llama", "mistral": "llama", "qwen2": "llama"}

# family -> {our name: HF field name}
ALIASES = {
    "opt": dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                ffn="ffn_dim", vocab="vocab_size", max_positions="max_position_embeddings"),
    "gpt2": dict(hidden="n_embd", layers="n_layer", heads="n_head", vocab="vocab_size",
                 max_positions="n_positions"),
    "llama": dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                  ffn="intermediate_size", vocab="vocab_size", max_positions="max_position_embeddings"),
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_type: str          # HF model_type (opt, gpt2, llama, mistral, qwen2)
    family: str              # opt | gpt2 | llama: decides the kernel sequence
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    max_positions: int
    tied_embeddings: bool
    qkv_bias: bool
    out_bias: bool
    mlp_bias: bool
    gated_mlp: bool
    norm: str                # layernorm | rmsnorm
    activation: str
    learned_positions: int   # rows of the learned position table (0 for rotary)
    proj_dim: int            # OPT word_embed_proj_dim (== hidden elsewhere)
    dtype: str | None        # the config's torch_dtype, if any
    use_cache: bool          # model(input_ids) keeps K/V of every layer when true

    # ---- parameter counts (elements), as transformers builds the modules -------------------
    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_params(self) -> int:
        h, f = self.hidden, self.ffn
        attn = h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h
        attn += (self.q_dim + 2 * self.kv_dim) * self.qkv_bias + h * self.out_bias
        mlp = (3 if self.gated_mlp else 2) * h * f
        mlp += ((2 * f if self.gated_mlp else f) + h) * self.mlp_bias
        return attn + mlp + 2 * self.norm_params()

    def norm_params(self) -> int:
        return self.hidden * (2 if self.norm == "layernorm" else 1)

    def embedding_params(self) -> int:
        """Token table, learned positions, and OPT's project_in/out when proj_dim != hidden."""
        proj = 2 * self.proj_dim * self.hidden if self.proj_dim != self.hidden else 0
        return self.vocab * self.proj_dim + self.learned_positions * self.hidden + proj

    def head_params(self) -> int:
        """Untied LM head weight (a tied head shares the token table)."""
        return 0 if self.tied_embeddings else self.vocab * self.proj_dim

    def param_count(self) -> int:
        return (self.embedding_params() + self.layers * self.layer_params()
                + self.norm_params() + self.head_params())

    @classmethod
    def from_hf_config(cls, cfg: dict, name: str | None = None) -> "ModelSpec":
        """Read a config.json dict; raises EstimatorError for anything not understood."""
        if not isinstance(cfg, dict):
            raise EstimatorError("model config must be a JSON object")
        model_type = cfg.get("model_type")
        if model_type not in FAMILIES:
            raise EstimatorError(
                f"unsupported model_type {model_type!r} in config of {name or 'model'}: supported "
                f"{', '.join(sorted(FAMILIES))}")
        family = FAMILIES[model_type]
        a = {k: _field(cfg, v, name) for k, v in ALIASES[family].items()}
        heads = a["heads"]
        kw = dict(name=name or cfg.get("_name_or_path") or model_type, model_type=model_type,
                  family=family, dtype=_dtype(cfg), use_cache=bool(cfg.get("use_cache", True)), **a)
        if family == "opt":
            kw.update(kv_heads=heads, head_dim=a["hidden"] // heads, qkv_bias=cfg.get("enable_bias", True),
                      out_bias=cfg.get("enable_bias", True), mlp_bias=cfg.get("enable_bias", True),
                      gated_mlp=False, norm="layernorm", activation=cfg.get("activation_function", "relu"),
                      learned_positions=a["max_positions"] + 2,  # OPT offsets positions by 2
                      proj_dim=cfg.get("word_embed_proj_dim") or a["hidden"],
                      tied_embeddings=cfg.get("tie_word_embeddings", True))
            if not cfg.get("do_layer_norm_before", True):
                raise EstimatorError("unsupported OPT variant: do_layer_norm_before=false (opt-350m)")
        elif family == "gpt2":
            kw.update(kv_heads=heads, head_dim=a["hidden"] // heads, ffn=cfg.get("n_inner") or 4 * a["hidden"],
                      qkv_bias=True, out_bias=True, mlp_bias=True, gated_mlp=False, norm="layernorm",
                      activation=cfg.get("activation_function", "gelu_new"),
                      learned_positions=a["max_positions"], proj_dim=a["hidden"],
                      tied_embeddings=cfg.get("tie_word_embeddings", True))
        else:
            # transformers' defaults when the field is absent: Llama = heads, Mistral 8, Qwen2 32
            kv = cfg.get("num_key_value_heads") or {"mistral": 8, "qwen2": 32}.get(model_type, heads)
            head_dim = cfg.get("head_dim") or a["hidden"] // heads
            qkv_bias = True if model_type == "qwen2" else bool(cfg.get("attention_bias", False))
            kw.update(kv_heads=kv, head_dim=head_dim, qkv_bias=qkv_bias,
                      out_bias=False if model_type == "qwen2" else bool(cfg.get("attention_bias", False)),
                      mlp_bias=bool(cfg.get("mlp_bias", False)), gated_mlp=True, norm="rmsnorm",
                      activation=cfg.get("hidden_act", "silu"), learned_positions=0, proj_dim=a["hidden"],
                      tied_embeddings=cfg.get("tie_word_embeddings", False))
            if heads % kv:
                raise EstimatorError(f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}")
        spec = cls(**kw)
        if spec.heads * spec.head_dim != spec.hidden and family != "llama":
            raise EstimatorError(f"hidden size {spec.hidden} is not divisible by {spec.heads} heads")
        return spec


def _field(cfg: dict, key: str, name: str | None) -> int:
    value = cfg.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise EstimatorError(f"malformed config of {name or 'model'}: {key} must be a positive integer, got {value!r}")
    return value


def _dtype(cfg: dict) -> str | None:
    d = cfg.get("torch_dtype") or cfg.get("dtype")
    return d if d in ("float16", "bfloat16", "float32") else None


@lru_cache(maxsize=None)
def zoo_names() -> tuple[str, ...]:
    return tuple(sorted(str(p.parent.relative_to(ZOO_DIR)) for p in ZOO_DIR.glob("*/*/config.json")))


def config_path(name_or_path: str) -> Path:
    """Zoo name (org/model, or just model) or a config.json file/folder -> the config file."""
    p = Path(name_or_path).expanduser()
    if p.is_dir() and (p / "config.json").is_file():
        return p / "config.json"
    if p.is_file():
        return p
    if (ZOO_DIR / name_or_path / "config.json").is_file():
        return ZOO_DIR / name_or_path / "config.json"
    short = {n.split("/")[-1].lower(): n for n in zoo_names()}
    if name_or_path.lower() in short:
        return ZOO_DIR / short[name_or_path.lower()] / "config.json"
    lowered = {n.lower(): n for n in zoo_names()}
    if name_or_path.lower() in lowered:
        return ZOO_DIR / lowered[name_or_path.lower()] / "config.json"
    raise EstimatorError(f"unknown model {name_or_path!r}{closest(name_or_path, zoo_names())}")


@lru_cache(maxsize=256)
def load_model(name_or_path: str) -> ModelSpec:
    """ModelSpec for a zoo name or a path to a Hugging Face config.json (file or folder)."""
    path = config_path(name_or_path)
    try:
        cfg = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EstimatorError(f"malformed config {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise EstimatorError(f"malformed config {path}: not a JSON object")
    if path.is_relative_to(ZOO_DIR):
        name = str(path.parent.relative_to(ZOO_DIR))
    else:
        name = cfg.get("_name_or_path") or str(path)
    return ModelSpec.from_hf_config(cfg, name=name)
