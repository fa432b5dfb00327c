"""Validation of a calibration profile's JSON before any table is built from it.

A profile is measured data, but it is also a file a user can edit, truncate or point to by
mistake (a JSON list, a device file). Profile's lookup tables take logarithms and divide by the
measured times, so a zero, a string or a missing section surfaced as ZeroDivisionError, "math
domain error" or AttributeError deep inside an estimate. ``check_profile`` walks every section
the schema (profile_schema.ProfileData) declares, in declaration order, and raises one
EstimatorError line naming the file, the entry and what was expected. Sections the estimator can
do without (power, p2p, all-reduce, host, dispatch, elementwise) may be absent or empty; the CPU
profile ``calibrate`` writes has no power section and estimates with energy None.
"""
from __future__ import annotations

import math
from typing import Any

from .errors import EstimatorError
from .profile_schema import (GRID, GRID_ROWS, GRIDS, HOST, NUMBER, NUMBERS, POWER, POWER_LEVELS,
                             POWER_OPTIONAL, POWER_REQUIRED, REQUIRED, SECTIONS, STRING, HostTimes)

__all__ = ["check_profile", "GRID_ROWS", "POWER_OPTIONAL", "POWER_REQUIRED", "REQUIRED"]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, expected: str, value: Any) -> EstimatorError:
        return EstimatorError(f"profile {self.source}: {where} must be {expected}, got {_short(value)}")

    def mapping(self, raw: dict, key: str) -> dict:
        """raw[key] as a dict; absent or null counts as empty."""
        value = raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, "a JSON object", value)
        return value

    def number(self, where: str, value: Any, minimum: float = 0.0, positive: bool = False) -> None:
        if not _is_number(value) or value < minimum or (positive and value <= 0):
            raise self.fail(where, "a positive number" if positive else f"a number >= {minimum:g}", value)

    def grid(self, where: str, rows: Any, layout: str, allow_empty: bool = True) -> None:
        """A list of rows of positive finite numbers; one-dimensional grids sorted by size."""
        width = layout.count(",") + 1
        if not isinstance(rows, list) or (not rows and not allow_empty):
            raise self.fail(where, f"a non-empty list of {layout} rows", rows)
        for i, row in enumerate(rows):
            if (not isinstance(row, list) or len(row) != width
                    or not all(_is_number(x) and x > 0 for x in row)):
                raise self.fail(f"{where}[{i}]", f"{layout} of positive numbers", row)
        sizes = [row[0] for row in rows]
        if width == 2 and sizes != sorted(sizes):
            raise self.fail(where, "sorted by bytes", sizes)


def _grids(c: _Checker, raw: dict, key: str, meta: dict) -> None:
    """A section of {dtype or pattern or GPU count: grid}."""
    section = c.mapping(raw, key)
    if meta["required"] and not any(isinstance(v, list) and v for v in section.values()):
        raise EstimatorError(f"profile {c.source} lacks {key!r} measurements")
    for name, rows in section.items():
        c.grid(f"{key}.{name}", rows, meta["layout"], allow_empty=meta["allow_empty_grids"])
    if meta["gpu_count_keys"]:
        for n in section:
            if not (isinstance(n, str) and n.isdigit() and int(n) >= 2):
                raise c.fail(key, "keyed by GPU counts of 2 or more", n)


def _grid(c: _Checker, raw: dict, key: str, meta: dict) -> None:
    if meta["required"]:
        if not raw.get(key):
            raise EstimatorError(f"profile {c.source} lacks {key!r} measurements")
        c.grid(key, raw[key], meta["layout"], allow_empty=False)
    elif raw.get(key) is not None:
        c.grid(key, raw[key], meta["layout"])


def _number(c: _Checker, raw: dict, key: str, meta: dict) -> None:
    if raw.get(key) is not None:
        c.number(key, raw[key], minimum=meta["minimum"])


def _string(c: _Checker, raw: dict, key: str, meta: dict) -> None:
    if raw.get(key) is not None and not isinstance(raw[key], str):
        raise c.fail(key, "a string", raw[key])


def _power(c: _Checker, raw: dict, key: str, meta: dict) -> None:
    power = c.mapping(raw, key)
    if not power:
        return  # no power model: estimates report energy None
    missing = [k for k in POWER_REQUIRED if k not in power]
    if missing:
        raise EstimatorError(f"profile {c.source}: power section lacks {', '.join(missing)}")
    for k in POWER_REQUIRED:
        c.number(f"{key}.{k}", power[k], positive=True)
    for k in POWER_OPTIONAL:
        if power.get(k) is not None:
            c.number(f"{key}.{k}", power[k])
    per_gpu = power.get("idle_w_per_gpu", [])
    if not isinstance(per_gpu, list) or not all(_is_number(v) and v >= 0 for v in per_gpu):
        raise c.fail(f"{key}.idle_w_per_gpu", "a list of watts", per_gpu)
    for level in POWER_LEVELS:
        top, value = level.metadata["maximum"], power.get(level.name)
        if top is not None and value is not None and value > top:
            raise c.fail(f"{key}.{level.name}", f"a fraction between 0 and {top:g}", value)


def _host(c: _Checker, raw: dict, key: str, meta: dict) -> None:
    for family, times in c.mapping(raw, key).items():
        if not isinstance(times, dict):
            raise c.fail(f"{key}.{family}", f"a JSON object of {' and '.join(HostTimes._fields)}", times)
        for k in HostTimes._fields:  # fit of time over layers: the intercept may be < 0
            if k in times:
                c.number(f"{key}.{family}.{k}", times[k], minimum=-math.inf)


def _numbers(c: _Checker, raw: dict, key: str, meta: dict) -> None:
    for family, us in c.mapping(raw, key).items():
        c.number(f"{key}.{family}", us, minimum=meta["minimum"])


_CHECKS = {GRIDS: _grids, GRID: _grid, NUMBER: _number, STRING: _string, POWER: _power, HOST: _host,
           NUMBERS: _numbers}


def check_profile(raw: Any, source: str) -> dict:
    """`raw` (a parsed profile) when every section the estimator reads is well formed; else one
    EstimatorError line naming `source`, the entry and what it must be."""
    if not isinstance(raw, dict):
        raise EstimatorError(f"profile {source} must hold a JSON object, got {type(raw).__name__}")
    c = _Checker(source)
    for section in SECTIONS:
        check = _CHECKS.get(section.metadata["kind"])   # recorded fields are not checked
        if check is not None:
            check(c, raw, section.name, section.metadata)
    return raw
