"""Typed reads of optional Hugging Face config fields, each bad value one EstimatorError line.

A config.json written by hand can hold anything: ``"head_dim": "64"``, a negative
``num_key_value_heads``, ``"tie_word_embeddings": "no"``. transformers would fail later (or build
something else), and the estimator would either crash in arithmetic or return a plausible wrong
number. The families read every optional field through these helpers instead, so each problem
is named once, with the field and what was expected. A size set to null counts as absent
(transformers fills in its default for both); a flag set to null is false, as transformers' own
``if config.flag:`` reads it.
"""
from __future__ import annotations

from typing import Any

from .errors import EstimatorError, UnmodelledConfig

# Larger sizes are no model anyone can build: they only overflow float arithmetic downstream.
MAX_SIZE = 2**40


def _bad(key: str, expected: str, value: Any) -> EstimatorError:
    return EstimatorError(f"{key} must be {expected}, got {value!r}")


def is_size(value: Any) -> bool:
    """A positive integer (not a bool, not a float such as 64.0) of a buildable size."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SIZE


def size(cfg: dict, key: str) -> int:
    """A required positive integer field."""
    value = cfg.get(key)
    if not is_size(value):
        raise _bad(key, "a positive integer (at most 2^40)", value)
    return value


def optional_size(cfg: dict, key: str, default: int | None) -> int | None:
    """A positive integer field, or `default` when absent or null."""
    value = cfg.get(key)
    if value is None:
        return default
    if not is_size(value):
        raise _bad(key, "a positive integer or null", value)
    return value


def optional_bool(cfg: dict, key: str, default: bool) -> bool:
    """A true/false field: `default` when absent, false when null."""
    if key not in cfg:
        return default
    value = cfg[key]
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(key, "true or false", value)
    return value


def optional_text(cfg: dict, key: str, default: str) -> str:
    """A non-empty string field (an activation name), or `default` when absent or null."""
    value = cfg.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise _bad(key, "a non-empty string", value)
    return value


def divisible(key: str, value: int, by_key: str, by: int) -> None:
    """`value` (of field `key`) must be a multiple of `by` (of field `by_key`)."""
    if value % by:
        raise EstimatorError(f"{key} {value} is not divisible by {by_key} {by}")


def refuse_quantized(cfg: dict, where: str, dequantized: tuple[str, ...] = ()) -> None:
    """A config with a ``quantization_config`` (AWQ, GPTQ, bitsandbytes, FP8, any quant_method)
    loads quantized weights and kernels the estimator never priced: refused, naming the scheme,
    rather than estimated as 16-bit. A null one is absent, as transformers reads it; a method in
    `dequantized` (the family's ``dequantized_methods``) is one transformers dequantizes on load."""
    q = cfg.get("quantization_config")
    if q is None:
        return
    q = q if isinstance(q, dict) else {}
    method = q.get("quant_method")
    if not isinstance(method, str) or not method:   # old bitsandbytes configs name no method
        method = "bitsandbytes" if q.get("load_in_4bit") or q.get("load_in_8bit") else "unknown"
    if method in dequantized:   # the family's loader dequantizes it (gpt-oss's mxfp4 without triton)
        return
    bits = q.get("bits")
    detail = f"{bits}-bit " if is_size(bits) else ""
    raise UnmodelledConfig(
        f"quantized configs are not modelled: quant_method {method!r} in {where} ({detail}quantized weights "
        f"and their kernels are not calibrated; estimate the unquantized model's config)")
