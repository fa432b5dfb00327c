"""ModelSpec read from a Hugging Face config: the zoo, config paths and the family registry lookup.

Each family (estimator.families) maps its HF field names onto one set of names and fills in
transformers' defaults; the spec itself (fields, parameter counts) lives in spec.py, below the
families, so that they can name its type without importing this module.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .front_door import check_layer_count
from . import config_fields, families, fp8, spec
from .errors import EstimatorError, closest
from .jsonin import read_json

ZOO_DIR = Path(__file__).parent / "zoo"
# transformers' ACT2FN names (transformers/activations.py): any other name is refused when the
# model is built, so the estimator refuses it too rather than price a model nobody can run.
ACTIVATIONS = ("gelu", "gelu_10", "gelu_accurate", "gelu_fast", "gelu_new", "gelu_python", "gelu_python_tanh",
               "gelu_pytorch_tanh", "hardswish", "laplace", "leaky_relu", "linear", "mish", "prelu", "quick_gelu",
               "relu", "relu2", "relu6", "sigmoid", "silu", "sqrtsoftplus", "swish", "tanh", "xielu")
OBJECT_FIELDS = ("rope_scaling", "rope_parameters")   # a JSON object or null, as transformers reads them


class ModelSpec(spec.ModelSpec):
    """spec.ModelSpec (the generic fields, parameter counts and the family's hooks) with its
    reader: ``ModelSpec.from_hf_config``, which finds the family in the registry."""

    @classmethod
    def from_hf_config(cls, cfg: dict, name: str | None = None, source: str | None = None) -> "ModelSpec":
        """Read a config.json dict; raises EstimatorError for anything not understood, naming
        `source` (the file) or else `name`, the field, and what was expected."""
        where = source or name or "model"
        if not isinstance(cfg, dict):
            raise EstimatorError(f"config of {where} must be a JSON object")
        top = families.family_of(cfg.get("model_type")) if isinstance(cfg.get("model_type"), str) else None
        dequantized = getattr(top, "dequantized_methods", ())
        config_fields.refuse_quantized(cfg, where, dequantized + ("fp8",))   # fp8: checked below
        fp8_weights = fp8.read(cfg, where)
        wrapped = families.unwrap_multimodal(cfg, where)   # image-text configs: their text model
        if wrapped is not None:
            config_fields.refuse_quantized(cfg, where, dequantized)   # FP8 module names of a wrapper: not modelled
            cfg, family = wrapped
            model_type = cfg["model_type"]
        else:
            model_type = cfg.get("model_type")
            family = families.family_of(model_type) if isinstance(model_type, str) else None
        if family is None:
            raise EstimatorError(
                f"unsupported model_type {model_type!r} in config of {where}: supported "
                f"{', '.join(families.supported_model_types())}")
        try:
            a = {k: config_fields.size(cfg, v) for k, v in family.aliases.items()}
            kw = dict(name=name or _text_or_none(cfg.get("_name_or_path")) or model_type, model_type=model_type,
                      arch=family, dtype=_dtype(cfg), config_dtype=_unpriced_dtype(cfg), **a,
                      use_cache=config_fields.optional_bool(cfg, "use_cache", True))
            for key in OBJECT_FIELDS:
                if cfg.get(key) is not None and not isinstance(cfg[key], dict):
                    raise EstimatorError(f"{key} must be a JSON object or null, got {cfg[key]!r:.60}")
            fields = family.spec_fields(cfg, model_type, a)
            check_layer_count(kw["name"], a["layers"])   # before one LayerSpec per layer is built
            out = cls(**kw, **fields, layer_kinds=family.layer_kinds(cfg, model_type, a["layers"]), fp8=fp8_weights)
            if out.activation not in ACTIVATIONS:
                raise EstimatorError(f"activation {out.activation!r:.60} (hidden_act, hidden_activation or "
                                     f"activation_function) is not one transformers knows"
                                     f"{closest(out.activation, ACTIVATIONS)}")
        except EstimatorError as exc:
            kind = "config" if str(exc).startswith("unsupported") else "malformed config"
            raise EstimatorError(f"{kind} of {where}: {exc}") from None
        if out.fp8 is not None and any(family.fp8_linears(out, g.layer) is None for g in out.layer_groups):
            config_fields.refuse_quantized(cfg, where, dequantized)   # a family whose FP8 modules are not modelled
        return out


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


PRICED_DTYPES = ("float16", "bfloat16", "float32")


def _dtype(cfg: dict) -> str | None:
    d = cfg.get("torch_dtype") or cfg.get("dtype")
    return d if d in PRICED_DTYPES else None


def _unpriced_dtype(cfg: dict) -> str | None:
    """The config's torch_dtype when it names one the estimator does not price (float8_e4m3fn,
    int8, "auto", ...): the estimate then says so in a note instead of silently using float16."""
    d = cfg.get("torch_dtype") or cfg.get("dtype")
    if d is None or d in PRICED_DTYPES:
        return None
    return d[:40] if isinstance(d, str) else repr(d)[:40]


@lru_cache(maxsize=None)
def zoo_names() -> tuple[str, ...]:
    return tuple(sorted(str(p.parent.relative_to(ZOO_DIR)) for p in ZOO_DIR.glob("*/*/config.json")))


def config_path(name_or_path: str) -> Path:
    """Zoo name (org/model, or just model) or a config.json file/folder -> the config file."""
    p = Path(name_or_path).expanduser()
    try:
        if p.is_dir():
            if (p / "config.json").exists():
                return p / "config.json"   # read_json refuses it if it is no regular file
        elif p.exists():
            return p                       # a file, or a FIFO / device read_json refuses by type
    except OSError as exc:   # a name longer than the system allows (ENAMETOOLONG), ...
        raise EstimatorError(f"unknown model {name_or_path[:80]!r}{'...' * (len(name_or_path) > 80)}: "
                             f"{exc.strerror or exc}") from None
    if (ZOO_DIR / name_or_path / "config.json").is_file():
        return ZOO_DIR / name_or_path / "config.json"
    short = {n.split("/")[-1].lower(): n for n in zoo_names()}
    if name_or_path.lower() in short:
        return ZOO_DIR / short[name_or_path.lower()] / "config.json"
    lowered = {n.lower(): n for n in zoo_names()}
    if name_or_path.lower() in lowered:
        return ZOO_DIR / lowered[name_or_path.lower()] / "config.json"
    raise EstimatorError(f"unknown model {name_or_path!r}{closest(name_or_path, zoo_names())}: not a shipped "
                         "config (`python -m estimator models` lists them) nor a path; give instead the path to "
                         "any Hugging Face config.json (file or folder), e.g. ./my-model/config.json")


@lru_cache(maxsize=256)
def load_model(name_or_path: str) -> ModelSpec:
    """ModelSpec for a zoo name or a path to a Hugging Face config.json (file or folder)."""
    path = config_path(name_or_path)
    cfg = read_json(path, f"malformed config {path}")
    if not isinstance(cfg, dict):
        raise EstimatorError(f"malformed config {path}: not a JSON object")
    if path.is_relative_to(ZOO_DIR):
        name = str(path.parent.relative_to(ZOO_DIR))
    else:
        name = _text_or_none(cfg.get("_name_or_path")) or str(path)
    return ModelSpec.from_hf_config(cfg, name=name, source=str(path))
