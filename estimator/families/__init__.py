"""Model families by HF ``model_type``: the one place that knows how each family's code differs.

The registry is data (``REGISTRY``: model_type -> the module and the name of its Family
instance): a family's module is imported when a model of that family is first looked up, so an
estimate of one model loads one family (issue 26: one-shot CLI time). ``FAMILIES``,
``BY_NAME``, ``BY_MODEL_TYPE``, ``HOST_MODEL_TYPES`` and each instance by its name (``LLAMA``,
``GPT_OSS``, ...) are still attributes of this package; they import the family modules on first
use (module ``__getattr__``).

Registering a family: a module with its Family instance (see base.py), and its model types in
REGISTRY, in the order the families are listed (tests/test_lazy_imports.py checks that the data
says what the instances say).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import EstimatorError
from .multimodal import TEXT_MODEL, unwrap

if TYPE_CHECKING:
    from .base import Family

# model_type -> (module under estimator/families, its Family instance): the families in the
# order FAMILIES lists them, each with its model types, its reference type first
REGISTRY: dict[str, tuple[str, str]] = {
    "llama": ("llama", "LLAMA"), "qwen2": ("llama", "LLAMA"), "mistral": ("llama", "LLAMA"),
    "opt": ("opt", "OPT"),
    "gpt2": ("gpt2", "GPT2"),
    "gpt_neox": ("gpt_neox", "GPT_NEOX"),
    "phi3": ("phi3", "PHI3"),
    "qwen3": ("qwen3", "QWEN3"),
    "gemma2": ("gemma", "GEMMA2"),
    "gemma3_text": ("gemma", "GEMMA3"),
    "mixtral": ("moe", "MIXTRAL"),
    "qwen3_moe": ("moe", "QWEN3_MOE"),
    # h24c: families whose layers are all alike (multimodal configs: by their text model, below)
    "olmo2": ("olmo2", "OLMO2"),
    "granite": ("granite", "GRANITE"),
    "smollm3": ("smollm3", "SMOLLM3"),
    "olmoe": ("olmoe", "OLMOE"),
    "phimoe": ("phimoe", "PHIMOE"),
    "deepseek_v3": ("deepseek", "DEEPSEEK_V3"),
    "glm4_moe": ("deepseek", "GLM4_MOE"),
    "gpt_oss": ("gpt_oss", "GPT_OSS"),
    "llama4_text": ("llama4", "LLAMA4"),
    "deepseek_v2": ("deepseek", "DEEPSEEK_V2"),
    "qwen3_next": ("qwen3_next", "QWEN3_NEXT"),
}
# the Family instances' names (the package's attributes), in FAMILIES order
INSTANCES: dict[str, str] = {attr: module for module, attr in REGISTRY.values()}
MULTIMODAL_TYPES: tuple[str, ...] = tuple(TEXT_MODEL)   # estimated by their text model (multimodal.py)

# Model types host calibration measures: every supported one, each family's reference type first
# (the others share its code, so their timings only refine it).
# deepseek_v3, glm4_moe and deepseek_v2 are left out: timing more tiny models would push the full
# 1-GPU calibration plan past its budget (77 s > 75 s, tests/test_calibrate.py); their host time
# is the op-level host model's (host_model.py), as for any family a profile did not time.
UNTIMED_MODEL_TYPES = ("deepseek_v3", "glm4_moe", "deepseek_v2")

_loaded: dict[str, Family] = {}   # instance name -> Family, as imported


def _instance(attr: str) -> Family:
    family = _loaded.get(attr)
    if family is None:
        module = importlib.import_module(f"{__name__}.{INSTANCES[attr]}")
        family = _loaded[attr] = getattr(module, attr)
    return family


def all_families() -> tuple[Family, ...]:
    """Every registered family, in registry order (imports every family module)."""
    return tuple(_instance(attr) for attr in INSTANCES)


def _host_model_types() -> tuple[str, ...]:
    fams = all_families()
    return tuple(t for t in (tuple(f.model_types[0] for f in fams if f.host_timed)
                             + tuple(t for f in fams if f.host_timed for t in f.model_types[1:]))
                 if t not in UNTIMED_MODEL_TYPES)


_LAZY = {"FAMILIES": all_families,
         "BY_NAME": lambda: {f.name: f for f in all_families()},
         "BY_MODEL_TYPE": lambda: {t: family_of(t) for t in REGISTRY},
         "HOST_MODEL_TYPES": _host_model_types}


def __getattr__(name: str) -> Any:
    """FAMILIES, BY_NAME, BY_MODEL_TYPE, HOST_MODEL_TYPES and the Family instances (LLAMA, ...):
    made, and kept as attributes, on first use."""
    if name in _LAZY:
        value = _LAZY[name]()
    elif name in INSTANCES:
        value = _instance(name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def supported_model_types() -> list[str]:
    return sorted(REGISTRY)


def unwrap_multimodal(cfg: dict, where: str):
    """(text config, family hooks) of a multimodal config (families/multimodal.py), else None."""
    return unwrap(cfg, where, family_of)


def family_of(model_type: Any) -> Family | None:
    """The family serving `model_type`, or None when the estimator does not know it (imports
    that family's module only)."""
    entry = REGISTRY.get(model_type) if isinstance(model_type, str) else None
    return None if entry is None else _instance(entry[1])


def family_named(name: str) -> Family | None:
    """The family whose ``name`` is `name`, or None (imports every family module)."""
    return next((f for f in all_families() if f.name == name), None)


def code_family(model_type: str) -> str:
    """Name of the family whose code runs `model_type` (itself when unknown): model types with
    the same code pool their host-overhead measurements."""
    family = family_of(model_type)
    return family.name if family else model_type


def tiny_config_kwargs(model_type: str, layers: int) -> dict[str, Any]:
    """kwargs for ``transformers.AutoConfig.for_model(**kw)``: a tiny random model of
    `model_type` with `layers` decoder layers, as host-overhead calibration times it."""
    family = family_of(model_type)
    if family is None:
        raise EstimatorError(f"unknown model family {model_type!r}: use one of {', '.join(_host_model_types())}")
    return family.tiny_config_kwargs(model_type, layers)
