"""The library's front door: arguments of the public API checked for type and value.

``estimate(None, "H100")`` or ``Workload(tf32="no")`` must not end in an AttributeError deep in
the model, nor read the string "no" as true: every public entry point (``estimate``,
``Workload``, sweeps) checks what it is given here first and raises one EstimatorError line
naming the argument, what it must be and what it got.

Also the per-estimate work bounds: an estimate walks every layer and every GPU, so a config of
10^7 layers or a million GPUs would run for minutes; beyond ``MAX_LAYERS`` / ``MAX_GPUS`` (far
above any real model or single job) it is refused at once.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from .errors import EstimatorError, closest

MAX_LAYERS = 10_000     # real models have at most a few hundred decoder layers
MAX_GPUS = 16_384       # GPUs one estimate spreads a pass over (the largest single jobs' scale)
MAX_TEXT = 4096         # a name or path longer than any file system takes


def shown(value: Any, width: int = 60) -> str:
    """repr(value), cut to `width` characters."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def check_bool(value: Any, name: str) -> bool:
    """`value` when it is True or False; a string like "false" or the number 0 is refused
    (bool("false") is True: reading it as a flag would invert the user's intent)."""
    if not isinstance(value, bool):
        raise EstimatorError(f"{name} must be True or False, got {_kind(value)} {shown(value)}")
    return value


def check_int(value: Any, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """`value` when it is an int (not a bool) in [minimum, maximum]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise EstimatorError(f"{name} must be an integer, got {_kind(value)} {shown(value)}")
    if value < minimum:
        word = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f"at least {minimum}"
        raise EstimatorError(f"{name} must be a {word} integer, got {value!r}" if minimum in (0, 1)
                             else f"{name} must be {word}, got {value!r}")
    if maximum is not None and value > maximum:
        raise EstimatorError(f"{name} {value:,} is more than the {maximum:,} an estimate handles")
    return value


def check_text(value: Any, name: str) -> str:
    """`value` when it is a non-empty string of at most MAX_TEXT characters."""
    if not isinstance(value, str):
        raise EstimatorError(f"{name} must be a string, got {_kind(value)} {shown(value)}")
    if not value.strip():
        raise EstimatorError(f"{name} must not be empty")
    if len(value) > MAX_TEXT:
        raise EstimatorError(f"{name} is {len(value):,} characters long, more than {MAX_TEXT} "
                             f"(a name or a path): {shown(value, 40)}")
    return value


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """`value` when it is one of `choices` (exactly, as a string)."""
    choices = tuple(choices)
    if not isinstance(value, str):
        raise EstimatorError(f"{name} must be one of {', '.join(choices)}; got {_kind(value)} {shown(value)}")
    if value not in choices:
        raise EstimatorError(f"unknown {name} {shown(value)}: use one of {', '.join(choices)}"
                             f"{closest(value, choices) if len(value) < 100 else ''}")
    return value


def check_instance(value: Any, name: str, types: tuple[type, ...], what: str) -> Any:
    """`value` when it is one of `types`, else an EstimatorError saying `what` it must be."""
    if not isinstance(value, types):
        raise EstimatorError(f"{name} must be {what}, got {_kind(value)} {shown(value)}")
    return value


def check_path_or(value: Any, name: str, types: tuple[type, ...], what: str, optional: bool = True) -> Any:
    """A path (str / os.PathLike, as a str) or one of `types` (an already loaded object); None
    too when `optional`."""
    if value is None:
        if optional:
            return None
        raise EstimatorError(f"{name} is required: {what}, got None")
    if isinstance(value, types):
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        return check_text(value, name)
    raise EstimatorError(f"{name} must be {what}{' or None' * optional}, got {_kind(value)} {shown(value)}")


def check_layer_count(name: str, layers: int) -> None:
    """Every layer is walked (and described): 10^7 of them would run for minutes."""
    if layers > MAX_LAYERS:
        raise EstimatorError(f"{name} has {layers:,} layers, more than the {MAX_LAYERS:,} an estimate "
                             f"walks (real models have at most a few hundred)")
