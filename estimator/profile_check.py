"""Validation of a calibration profile's JSON before any table is built from it.

A profile is measured data, but it is also a file a user can edit, truncate or point to by
mistake (a JSON list, a device file). Profile's lookup tables take logarithms and divide by the
measured times, so a zero, a string or a missing section surfaced as ZeroDivisionError, "math
domain error" or AttributeError deep inside an estimate. ``check_profile`` walks every section the
estimator reads and raises one EstimatorError line naming the file, the entry and what was
expected. Sections the estimator can do without (power, p2p, all-reduce, host, dispatch,
elementwise) may be absent or empty; the CPU profile ``calibrate`` writes has no power section
and estimates with energy None.
"""
from __future__ import annotations

import math
from typing import Any

from .errors import EstimatorError

REQUIRED = ("gemm", "sdpa", "copy")
POWER_REQUIRED = ("idle_w", "launch_bound_w", "gemm_w", "memory_w")
POWER_OPTIONAL = ("hot_idle_w", "mixed_w", "mixed_compute_fraction", "gemm_sustained_tflops",
                  "gemm_burst_tflops", "power_limit_w", "gemm_sm_clock_mhz", "max_sm_clock_mhz")
# Row layouts of the measured grids: coordinates then the time of one call in microseconds.
GRID_ROWS = {"gemm": "[m, n, k, time_us]", "sdpa": "[batch*heads, seq, head_dim, time_us]",
             "bytes": "[bytes, time_us]"}


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

    def grids_by_key(self, raw: dict, key: str, layout: str, required: bool = False) -> None:
        """A section of {dtype or pattern or GPU count: grid}."""
        section = self.mapping(raw, key)
        if required and not any(isinstance(v, list) and v for v in section.values()):
            raise EstimatorError(f"profile {self.source} lacks {key!r} measurements")
        for name, rows in section.items():
            # an empty SDPA grid would leave a dtype with no head dims to interpolate between
            self.grid(f"{key}.{name}", rows, layout, allow_empty=key != "sdpa")


def _check_power(c: _Checker, raw: dict) -> None:
    power = c.mapping(raw, "power")
    if not power:
        return  # no power model: estimates report energy None
    missing = [k for k in POWER_REQUIRED if k not in power]
    if missing:
        raise EstimatorError(f"profile {c.source}: power section lacks {', '.join(missing)}")
    for key in POWER_REQUIRED:
        c.number(f"power.{key}", power[key], positive=True)
    for key in POWER_OPTIONAL:
        if power.get(key) is not None:
            c.number(f"power.{key}", power[key])
    per_gpu = power.get("idle_w_per_gpu", [])
    if not isinstance(per_gpu, list) or not all(_is_number(v) and v >= 0 for v in per_gpu):
        raise c.fail("power.idle_w_per_gpu", "a list of watts", per_gpu)
    fraction = power.get("mixed_compute_fraction")
    if fraction is not None and fraction > 1:
        raise c.fail("power.mixed_compute_fraction", "a fraction between 0 and 1", fraction)


def _check_host(c: _Checker, raw: dict) -> None:
    for family, times in c.mapping(raw, "host").items():
        if not isinstance(times, dict):
            raise c.fail(f"host.{family}", "a JSON object of per_layer_us and fixed_us", times)
        for key in ("per_layer_us", "fixed_us"):  # fit of time over layers: the intercept may be < 0
            if key in times:
                c.number(f"host.{family}.{key}", times[key], minimum=-math.inf)
    for family, us in c.mapping(raw, "dispatch").items():
        c.number(f"dispatch.{family}", us)


def check_profile(raw: Any, source: str) -> dict:
    """`raw` (a parsed profile) when every section the estimator reads is well formed; else one
    EstimatorError line naming `source`, the entry and what it must be."""
    c = _Checker(source)
    if not isinstance(raw, dict):
        raise EstimatorError(f"profile {source} must hold a JSON object, got {type(raw).__name__}")
    c.grids_by_key(raw, "gemm", GRID_ROWS["gemm"], required=True)
    c.grids_by_key(raw, "sdpa", GRID_ROWS["sdpa"], required=True)
    if not raw.get("copy"):
        raise EstimatorError(f"profile {source} lacks 'copy' measurements")
    c.grid("copy", raw["copy"], GRID_ROWS["bytes"], allow_empty=False)
    c.grids_by_key(raw, "elementwise", GRID_ROWS["bytes"])
    if raw.get("p2p") is not None:
        c.grid("p2p", raw["p2p"], GRID_ROWS["bytes"])
    c.grids_by_key(raw, "allreduce", GRID_ROWS["bytes"])
    for n in c.mapping(raw, "allreduce"):
        if not (isinstance(n, str) and n.isdigit() and int(n) >= 2):
            raise c.fail("allreduce", "keyed by GPU counts of 2 or more", n)
    for key in ("elementwise_floor_us", "launch_us"):
        if raw.get(key) is not None:
            c.number(key, raw[key])
    for key in ("kind", "device_name"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise c.fail(key, "a string", raw[key])
    _check_power(c, raw)
    _check_host(c, raw)
    return raw
