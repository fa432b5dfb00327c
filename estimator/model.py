"""ModelSpec: the architecture facts the estimator needs, read from a Hugging Face config.

Each family (estimator.families) maps its HF field names onto one set of names and fills in
transformers' defaults. Parameter counts follow the modules transformers builds from the same config.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import config_fields, families
from .errors import EstimatorError, closest

ZOO_DIR = Path(__file__).parent / "zoo"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_type: str          # HF model_type (opt, gpt2, llama, mistral, qwen2)
    family: str              # opt | gpt2 | llama: the estimator.families entry of its code
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
    # family-specific facts (Gemma's soft-caps, MoE experts...) as sorted (name, value) pairs:
    # hashable, so a spec stays a cache key; read with extra()
    extras: tuple = ()

    def extra(self, key: str, default=None):
        """A family-specific fact from `extras` (e.g. "experts"), or `default`."""
        return dict(self.extras).get(key, default)

    @property
    def arch(self) -> families.Family:
        """The family's knowledge of its eager code: kernels, working sets, module tree."""
        return families.BY_NAME[self.family]

    # ---- parameter counts (elements), as transformers builds the modules -------------------
    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_params(self) -> int:
        h = self.hidden
        attn = h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h
        attn += (self.q_dim + 2 * self.kv_dim) * self.qkv_bias + h * self.out_bias
        return attn + self.arch.mlp_params(self) + 2 * self.norm_params() + self.arch.extra_layer_params(self)

    def dense_mlp_params(self) -> int:
        """A dense MLP of width ffn: gate/up/down (gated) or fc1/fc2, with their biases."""
        h, f = self.hidden, self.ffn
        mlp = (3 if self.gated_mlp else 2) * h * f
        return mlp + ((2 * f if self.gated_mlp else f) + h) * self.mlp_bias

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
                + self.norm_params() * self.arch.has_final_norm(self) + self.head_params())

    @classmethod
    def from_hf_config(cls, cfg: dict, name: str | None = None, source: str | None = None) -> "ModelSpec":
        """Read a config.json dict; raises EstimatorError for anything not understood, naming
        `source` (the file) or else `name`, the field, and what was expected."""
        where = source or name or "model"
        if not isinstance(cfg, dict):
            raise EstimatorError(f"config of {where} must be a JSON object")
        model_type = cfg.get("model_type")
        family = families.family_of(model_type) if isinstance(model_type, str) else None
        if family is None:
            raise EstimatorError(
                f"unsupported model_type {model_type!r} in config of {where}: supported "
                f"{', '.join(families.supported_model_types())}")
        try:
            a = {k: config_fields.size(cfg, v) for k, v in family.aliases.items()}
            kw = dict(name=name or _text_or_none(cfg.get("_name_or_path")) or model_type, model_type=model_type,
                      family=family.name, dtype=_dtype(cfg), **a,
                      use_cache=config_fields.optional_bool(cfg, "use_cache", True))
            return cls(**kw, **family.spec_fields(cfg, model_type, a))
        except EstimatorError as exc:
            kind = "config" if str(exc).startswith("unsupported") else "malformed config"
            raise EstimatorError(f"{kind} of {where}: {exc}") from None


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


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
        name = _text_or_none(cfg.get("_name_or_path")) or str(path)
    return ModelSpec.from_hf_config(cfg, name=name, source=str(path))
