"""Strict JSON for the CLI's --json: no NaN or Infinity, which strict parsers reject.

An estimate of an absurd workload (``--batch 10**300``) can overflow a float to inf. Python's
json writes that as ``Infinity``, which is not JSON. ``strict_dict`` turns every non-finite float
into null and says which fields it nulled, so the caller can add one note per field.
"""
from __future__ import annotations

import json
import math
from typing import Any


def _strict(value: Any, path: str, nulled: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        nulled.append(path)
        return None
    if isinstance(value, dict):
        return {k: _strict(v, f"{path}.{k}" if path else str(k), nulled) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v, f"{path}[{i}]", nulled) for i, v in enumerate(value)]
    return value


def strict_dict(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(copy of `data` with non-finite floats as None, the paths of the fields nulled)."""
    nulled: list[str] = []
    return _strict(data, "", nulled), nulled


def dumps_estimate(data: dict[str, Any]) -> str:
    """One strict JSON object: non-finite numbers become null, each with a note in ``notes``."""
    clean, nulled = strict_dict(data)
    if nulled:
        shown = ", ".join(nulled[:5]) + (f" and {len(nulled) - 5} more" if len(nulled) > 5 else "")
        clean.setdefault("notes", []).append(
            f"not a finite number (the workload overflows float arithmetic), written as null: {shown}")
    return json.dumps(clean, allow_nan=False)
