"""Calibration profiles: measured kernel speeds, host overhead and power of one machine kind.

A profile is the JSON ``python -m estimator calibrate`` writes. Shipped profiles live in
``estimator/profiles/<device key>.json`` and are used automatically for that device. Devices
without one get a *datasheet profile*: the shape-efficiency curves of the reference profile
(the H100 calibration) scaled by the ratio of datasheet peaks, see ``datasheet_profile``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .device import DeviceSpec
from .errors import EstimatorError
from .interp import LogGrid

PROFILE_DIR = Path(__file__).parent / "profiles"
REFERENCE_PROFILE = "h100-sxm5-80gb"


@dataclass
class Profile:
    """Lookup tables built once from a profile dict; times in microseconds."""
    raw: dict
    source: str                       # path of the JSON, or "datasheet (scaled from ...)"
    compute_scales: dict = field(default_factory=dict)  # datasheet mode, per dtype: reference peak / this device's
    memory_scale: float = 1.0         # datasheet mode: reference bandwidth / this device's bandwidth
    _gemm: dict = field(default_factory=dict)
    _sdpa: dict = field(default_factory=dict)
    _memo: dict = field(default_factory=dict)   # table lookups are pure: (kind, args) -> us

    def __post_init__(self) -> None:
        for dtype, pts in self.raw.get("gemm", {}).items():
            if pts:  # value: achieved FLOP/s, so that time = flops / rate interpolates smoothly
                self._gemm[dtype] = LogGrid([(m, n, k, 2.0 * m * n * k / t) for m, n, k, t in pts])
        for dtype, pts in self.raw.get("sdpa", {}).items():
            by_d: dict[int, list] = {}
            for bh, s, d, t in pts:
                by_d.setdefault(int(d), []).append((bh, s, 2.0 * bh * s * s * d / t))
            self._sdpa[dtype] = {d: LogGrid(p) for d, p in by_d.items()}
        self._copy = LogGrid([(b, t) for b, t in self.raw["copy"]])
        self._ew = {k: LogGrid([(b, t) for b, t in pts]) for k, pts in (self.raw.get("elementwise") or {}).items() if pts}
        self._p2p = LogGrid([(b, t) for b, t in self.raw["p2p"]]) if self.raw.get("p2p") else None
        self._allreduce = {int(n): LogGrid([(b, t) for b, t in pts])
                           for n, pts in (self.raw.get("allreduce") or {}).items() if pts}

    def compute_scale(self, dtype: str) -> float:
        """Datasheet mode: how much slower this device's peak is for `dtype` (1.0 when calibrated)."""
        return self.compute_scales.get(dtype.removesuffix("_unaligned"), 1.0)

    @property
    def kind(self) -> str:
        return self.raw.get("kind", "gpu")

    def gemm_us(self, m: int, n: int, k: int, dtype: str) -> float:
        """Interpolated GEMM time; leading dimensions off multiples of 8 use the unaligned grid."""
        key = ("gemm", m, n, k, dtype)
        if key not in self._memo:
            self._memo[key] = self._gemm_us(m, n, k, dtype)
        return self._memo[key]

    def _gemm_us(self, m: int, n: int, k: int, dtype: str) -> float:
        table = self._gemm.get(dtype) or self._gemm.get("float16")
        if (n % 8 or k % 8) and f"{dtype}_unaligned" in self._gemm:
            table = self._gemm[f"{dtype}_unaligned"]
        return 2.0 * m * n * k / table(m, n, k) * self.compute_scale(dtype)

    def sdpa_us(self, bh: int, seq: int, d: int, dtype: str) -> float:
        tables = self._sdpa.get(dtype) or self._sdpa.get("float16") or next(iter(self._sdpa.values()))
        d0 = min(tables, key=lambda x: abs(math.log(x / d)))
        return 2.0 * bh * seq * seq * d / tables[d0](bh, seq) * self.compute_scale(dtype)

    def copy_us(self, nbytes: float) -> float:
        """Time of a device copy of `nbytes` (read nbytes, write nbytes)."""
        t = self._copy(max(nbytes, 1.0))
        lo = self.raw["copy"][0][0]
        if nbytes > self.raw["copy"][-1][0]:   # beyond the grid: bandwidth-bound, linear in bytes
            t = self._copy(self.raw["copy"][-1][0]) * nbytes / self.raw["copy"][-1][0]
        elif nbytes < lo:
            t = self._copy(lo)
        return max(t * self.memory_scale, self.floor_us)

    def elementwise_us(self, pattern: str, nbytes: float) -> float:
        """Memory-bound kernel of a calibrated access pattern moving `nbytes`; else a copy."""
        key = ("ew", pattern, nbytes)
        if key not in self._memo:
            self._memo[key] = self._elementwise_us(pattern, nbytes)
        return self._memo[key]

    def _elementwise_us(self, pattern: str, nbytes: float) -> float:
        pts = (self.raw.get("elementwise") or {}).get(pattern)
        if not pts:
            return self.copy_us(nbytes / 2)
        lo, hi = pts[0][0], pts[-1][0]
        table = self._ew[pattern]
        if nbytes > hi:
            t = table(hi) * nbytes / hi
        elif nbytes < lo:  # below the grid: bandwidth of the smallest point, latency of a copy
            t = max(table(lo) * nbytes / lo, self.copy_us(nbytes / 2) / self.memory_scale)
        else:
            t = table(nbytes)
        return max(t * self.memory_scale, self.floor_us)

    @property
    def floor_us(self) -> float:
        return float(self.raw.get("elementwise_floor_us", 2.0))

    def p2p_us(self, nbytes: float) -> float | None:
        if self._p2p is None:
            return None
        top = self.raw["p2p"][-1][0]
        return self._p2p(top) * nbytes / top if nbytes > top else self._p2p(nbytes)

    def allreduce_us(self, nbytes: float, gpus: int) -> float | None:
        if not self._allreduce:
            return None
        n = min(self._allreduce, key=lambda x: (abs(x - gpus), -x))
        pts = self.raw["allreduce"][str(n)]
        top = pts[-1][0]
        t = self._allreduce[n](top) * nbytes / top if nbytes > top else self._allreduce[n](nbytes)
        return t

    def host(self, model_type: str, family: str) -> dict:
        """Measured eager host time of this model type, else of its family."""
        host = self.raw.get("host", {})
        return host.get(model_type) or host.get(family) or {}

    @property
    def power(self) -> dict:
        return self.raw.get("power") or {}


def load_profile_file(path: str | Path) -> Profile:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EstimatorError(f"cannot read profile {path}: {str(exc).splitlines()[0]}") from None
    for key in ("gemm", "sdpa", "copy"):
        if not raw.get(key):
            raise EstimatorError(f"profile {path} lacks {key!r} measurements")
    return Profile(raw, str(path))


@lru_cache(maxsize=64)
def shipped_profile(device_key: str) -> Profile | None:
    path = PROFILE_DIR / f"{device_key}.json"
    return load_profile_file(path) if path.is_file() else None


def datasheet_profile(device: DeviceSpec) -> Profile:
    """Reference calibration curves scaled to this device's datasheet peaks (documented default)."""
    return _datasheet_profile(device.key)


@lru_cache(maxsize=64)
def _datasheet_profile(key: str) -> Profile:
    from .device import get_device
    device = get_device(key)
    ref = shipped_profile(REFERENCE_PROFILE)
    if ref is None:
        raise EstimatorError(f"no reference profile {REFERENCE_PROFILE}.json shipped")
    ref_dev = get_device(REFERENCE_PROFILE)
    raw = dict(ref.raw)
    raw["p2p"], raw["allreduce"] = [], {}
    power = dict(ref.power)
    scale_w = device.power_limit_w / ref_dev.power_limit_w
    for k in ("gemm_w", "memory_w", "launch_bound_w"):
        if k in power:
            power[k] = device.idle_power_w + (power[k] - power.get("idle_w", ref_dev.idle_power_w)) * scale_w
    power["idle_w"] = device.idle_power_w
    raw["power"] = power
    return Profile(raw, f"datasheet (curves of {REFERENCE_PROFILE} scaled by peak ratios)",
                   compute_scales={d: ref_dev.tflops[d] / device.tflops[d] for d in ref_dev.tflops},
                   memory_scale=ref_dev.memory_bandwidth_gb_s / device.memory_bandwidth_gb_s)


def profile_for(device: DeviceSpec, path: str | Path | None = None) -> Profile:
    """An explicit profile file, else the shipped one for the device, else a datasheet profile."""
    if path:
        return load_profile_file(path)
    return shipped_profile(device.key) or datasheet_profile(device)
