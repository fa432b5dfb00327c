"""Calibration profiles: measured kernel speeds, host overhead and power of one machine kind.

A profile is the JSON ``python -m estimator calibrate`` writes. Shipped profiles live in
``estimator/profiles/<device key>.json`` and are used automatically for that device. Devices
without one get a *datasheet profile*: the shape-efficiency curves of the reference profile
(the H100 calibration) scaled by the ratio of datasheet peaks, see ``datasheet_profile``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, NamedTuple

from .device import GB, DeviceSpec
from .errors import EstimatorError
from .interp import LogGrid

PROFILE_DIR = Path(__file__).parent / "profiles"
REFERENCE_PROFILE = "h100-sxm5-80gb"

# Transfers a profile has no measurement of (datasheet devices, one-GPU calibrations) take the
# datasheet bandwidth of the interconnect plus a fixed latency.
P2P_LATENCY_US = 10.0         # a device-to-device .to() of activations
ALLREDUCE_LATENCY_US = 20.0   # an NCCL ring all-reduce
SMALL_COPY_US = 15.0          # a small input (rotary cos/sin, position ids) accelerate's hook copies
ALLGATHER_HOST_US = 5.0       # host time to launch the all-gather of the logits (never measured)


@dataclass(frozen=True)
class PowerModel:
    """The profile's "power" section: board power of one GPU in watts, as
    ``calibrate.measure_power`` writes it from NVML energy counters (energy.py uses it).

    Required: ``idle_w`` (nothing running), ``launch_bound_w`` (tiny kernels back to back: clocks
    up, little work), ``gemm_w`` (a GEMM loop, at the power limit where it binds) and ``memory_w``
    (a copy loop). Optional, None when not measured: ``hot_idle_w`` (idle right after the GEMM
    loop: what a waiting pipeline stage draws), ``mixed_w`` and ``mixed_compute_fraction`` (a
    forward-pass-like mix of GEMM and elementwise kernels, and the GEMM share of its time),
    ``gemm_sustained_tflops`` and ``gemm_burst_tflops`` (GEMM-loop throughput at the power limit
    and before it binds), ``power_limit_w``; recorded for reference: ``gemm_sm_clock_mhz``,
    ``max_sm_clock_mhz`` and ``idle_w_per_gpu`` (the idle draw of every GPU of the machine).
    """
    idle_w: float
    launch_bound_w: float
    gemm_w: float
    memory_w: float
    hot_idle_w: float | None = None
    mixed_w: float | None = None
    mixed_compute_fraction: float | None = None
    gemm_sustained_tflops: float | None = None
    gemm_burst_tflops: float | None = None
    power_limit_w: float | None = None
    gemm_sm_clock_mhz: float | None = None
    max_sm_clock_mhz: float | None = None
    idle_w_per_gpu: tuple[float, ...] = ()

    @classmethod
    def from_dict(cls, power: dict | None, source: str) -> PowerModel | None:
        """None for an empty section (nothing measured, e.g. a CPU); a required key missing raises."""
        if not power:
            return None
        missing = [k for k in ("idle_w", "launch_bound_w", "gemm_w", "memory_w") if k not in power]
        if missing:
            raise EstimatorError(f"profile {source}: power section lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in power.items() if k in known}
        return cls(**kw | {"idle_w_per_gpu": tuple(power.get("idle_w_per_gpu", ()))})


class HostTimes(NamedTuple):
    """Eager host time of model(input_ids): per decoder layer, and the rest (embeddings, head)."""
    per_layer_us: float
    fixed_us: float


@dataclass
class Profile:
    """Lookup tables built once from a profile dict; times in microseconds."""
    raw: dict
    source: str                       # path of the JSON, or "datasheet (scaled from ...)"
    compute_scales: dict = field(default_factory=dict)  # datasheet mode, per dtype: reference peak / this device's
    memory_scale: float = 1.0         # datasheet mode: reference bandwidth / this device's bandwidth
    power: PowerModel | None = field(init=False, default=None)  # from raw["power"]; None: no energy
    _gemm: dict = field(default_factory=dict)
    _sdpa: dict = field(default_factory=dict)
    _memo: dict = field(default_factory=dict)   # table lookups are pure: (kind, args) -> us

    def __post_init__(self) -> None:
        self.power = PowerModel.from_dict(self.raw.get("power"), self.source)
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

    @property
    def device_name(self) -> str | None:
        """The name of the device the calibration ran on, as the machine reported it."""
        return self.raw.get("device_name")

    def memoized(self, key: tuple, compute: Callable[..., Any], *args: Any) -> Any:
        """compute(*args), once per key: lookups on a profile's tables are pure."""
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = compute(*args)
        return value

    def gemm_us(self, m: int, n: int, k: int, dtype: str) -> float:
        """Interpolated GEMM time; leading dimensions off multiples of 8 use the unaligned grid."""
        return self.memoized(("gemm", m, n, k, dtype), self._gemm_us, m, n, k, dtype)

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
        return self.memoized(("ew", pattern, nbytes), self._elementwise_us, pattern, nbytes)

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

    def transfer_us(self, nbytes: float, link_gb_s: float) -> float:
        """A blocking device-to-device copy: measured, else the datasheet link bandwidth."""
        t = self.p2p_us(nbytes)
        if t is None:
            t = nbytes / (link_gb_s * GB) * 1e6 + P2P_LATENCY_US
        return t

    def small_copy_us(self, nbytes: float) -> float:
        """A copy of a small input, mostly latency: measured, else a typical latency."""
        return self.p2p_us(nbytes) or SMALL_COPY_US

    def ring_allreduce_us(self, nbytes: float, gpus: int, link_gb_s: float) -> float:
        """An all-reduce over `gpus`: measured, else a ring moving 2(n-1)/n of the data over each link."""
        t = self.allreduce_us(nbytes, gpus)
        if t is None:
            t = 2 * (gpus - 1) / gpus * nbytes / (link_gb_s * GB) * 1e6 + ALLREDUCE_LATENCY_US
        return t

    @staticmethod
    def allgather_us(nbytes: float, link_gb_s: float) -> float:
        """An all-gather moving `nbytes` into each GPU (never calibrated): datasheet link bandwidth."""
        return nbytes / (link_gb_s * GB) * 1e6

    def host_times(self, model_type: str, family: str) -> HostTimes:
        """Measured eager host time of this model type, else of its family, else none."""
        host = self.raw.get("host", {})
        times = host.get(model_type) or host.get(family) or {}
        return HostTimes(float(times.get("per_layer_us", 0.0)), float(times.get("fixed_us", 0.0)))

    def dispatch_hook_us(self, model_type: str, family: str) -> float:
        """Host time accelerate's dispatch hook adds per hooked module (0 when not measured)."""
        hooks = self.raw.get("dispatch") or {}
        return float(hooks.get(model_type, hooks.get(family, 0.0)))


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
    power = dict(ref.raw.get("power") or {})
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
