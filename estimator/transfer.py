"""Cross-device transfer: estimate a device from another device's calibration.

Comparing two calibrations of different cards (an H100 SXM and an H200 SXM, the same compute
die with 1.43x the HBM bandwidth, ``reports/calibration/``) shows which measured terms follow
the datasheet and which do not:

- A kernel follows a datasheet peak only for the part of its time that the peak bounds. Large
  contiguous copies and elementwise kernels ran 0.71x as long on the H200 (= the bandwidth
  ratio), but strided, transposing and casting kernels ran 0.97x, and kernels of a few MB
  0.93-0.98x: their time is set by the SMs (access pattern, latency), not by HBM. GEMMs and
  attention ran within 1-3 % (equal tensor peaks), small GEMMs alike.
  So a kernel's source time t splits into a bound fraction f (its bytes at the source's
  measured copy bandwidth, or its FLOPs at the source's best measured rate, over t) that scales
  with the datasheet ratio r, and the rest, which scales with a ratio u:
      t_target = t * (f * r + (1 - f) * u)
  Within one architecture u is the SM count ratio (the SMs run that part; 1 for the H100/H200
  pair, measured). Across architectures the rest is taken to scale like the bound part (u = r):
  SM count alone does not carry clocks, cache sizes and load/store width, and u = r is what the
  RTX A5000/A6000 rows of the user's reference table support (single-GPU runtime within 4.5 %
  mean from the H100 calibration; u = SM ratio gave 19 %).
- Power: the boards drew what their own limits and idle levels allow. Measured idle power with
  clocks up (113 W on H100, 125 W on H200) is not the datasheet idle (70 W) the device files
  carry, so the source's measured levels are scaled by the target/source ratio of the device
  files' idle power (idle levels) and of the power limits (load levels above idle).
  How far clocks drop at the power limit (``gemm_burst_tflops`` / ``gemm_sustained_tflops``) is
  the source board's own behaviour: kept only for a target of the same architecture and power
  limit (H100 <-> H200 SXM: sustained GEMM rates 649 vs 619 TFLOP/s, alike), else dropped, so
  no power-cap slowdown is predicted for the target.
- Not transferred: links (p2p, all-reduce: the datasheet link bandwidth is used instead) and the
  host (Python dispatch depends on the machine's CPU, not on its GPU: the source's host times
  are kept; ``bench`` measures the host of the machine at hand).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .device import DeviceSpec
from .profile_schema import (BOARD_SPECIFIC, EMPTY, IDLE_LEVEL, KEEP_OR_EMPTY, LOAD_LEVEL, SCALE, ProfileData,
                             empty_of, power_keys, sections)

# The power levels by how they scale (declared with profile_schema.PowerModel).
POWER_LOAD_KEYS = power_keys(LOAD_LEVEL)         # launch_bound_w, gemm_w, memory_w, mixed_w
POWER_IDLE_KEYS = power_keys(IDLE_LEVEL)         # idle_w, hot_idle_w
POWER_BOARD_KEYS = power_keys(BOARD_SPECIFIC)    # the source board's clocks at its power limit


@dataclass(frozen=True)
class Transfer:
    """Scales a source calibration's kernel times to a target device (see the module doc)."""
    source: DeviceSpec
    target: DeviceSpec
    copy_bytes_per_us: float     # the source's measured large-copy bandwidth (bytes read + written)
    flops_per_us: dict           # dtype -> the source's best measured GEMM rate

    @classmethod
    def between(cls, source: DeviceSpec, target: DeviceSpec, calibration: ProfileData) -> Transfer:
        """The transfer of `source`'s calibration to `target`: its largest copy's bandwidth and
        its best GEMM rate of every dtype are what the datasheet ratios scale."""
        copy_top_bytes, copy_top_us = calibration.copy[-1]
        rates = {d: max(2.0 * m * n * k / t for m, n, k, t in pts) for d, pts in calibration.gemm.items() if pts}
        return cls(source, target, 2.0 * copy_top_bytes / copy_top_us, rates)

    def carry_over(self, raw: dict) -> dict:
        """The source's profile dict as the target's: each section as profile_schema declares
        (links emptied, power levels scaled, the rest kept: the host is the machine's, not the GPU's)."""
        out = dict(raw)
        for section in sections(transfer=EMPTY):
            out[section.name] = empty_of(section)
        for section in sections(transfer=KEEP_OR_EMPTY):
            out[section.name] = raw.get(section.name) or empty_of(section)
        for section in sections(transfer=SCALE):
            out[section.name] = self.power(raw.get(section.name) or {}) if raw.get(section.name) else None
        return out

    @property
    def label(self) -> str:
        return f"transfer from {self.source.key} to {self.target.key}"

    @property
    def same_architecture(self) -> bool:
        return self.source.architecture == self.target.architecture

    def unbound_ratio(self, bound_ratio: float) -> float:
        """u of the module doc: SM count ratio within an architecture, else the bound ratio."""
        return self.source.sm_count / self.target.sm_count if self.same_architecture else bound_ratio

    @property
    def bandwidth_ratio(self) -> float:
        return self.source.memory_bandwidth_gb_s / self.target.memory_bandwidth_gb_s

    def peak_ratio(self, dtype: str) -> float:
        src, tgt = self.source.tflops, self.target.tflops
        d = dtype.removesuffix("_unaligned")
        return src[d] / tgt[d] if d in src and d in tgt else src["float16"] / tgt["float16"]

    def memory_us(self, t_us: float, nbytes: float) -> float:
        """A memory-bound kernel of `nbytes` (read + written) that took `t_us` on the source."""
        f = min(1.0, nbytes / (self.copy_bytes_per_us * t_us)) if t_us > 0 else 0.0
        r = self.bandwidth_ratio
        return t_us * (f * r + (1.0 - f) * self.unbound_ratio(r))

    def compute_us(self, t_us: float, flops: float, dtype: str) -> float:
        """A GEMM or attention kernel of `flops` that took `t_us` on the source."""
        rate = self.flops_per_us.get(dtype) or max(self.flops_per_us.values())
        f = min(1.0, flops / (rate * t_us)) if t_us > 0 else 0.0
        r = self.peak_ratio(dtype)
        return t_us * (f * r + (1.0 - f) * self.unbound_ratio(r))

    # The two rules above over numpy arrays of times (profile.py's *_many lookups, forward_many.py):
    # the same arithmetic in the same order, so the same floats (tests/test_forward_many.py).
    def memory_us_many(self, t_us, nbytes):
        import numpy as np
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = nbytes / (self.copy_bytes_per_us * t_us)
        f = np.where((t_us > 0) & (ratio < 1.0), ratio, np.where(t_us > 0, 1.0, 0.0))
        r = self.bandwidth_ratio
        return t_us * (f * r + (1.0 - f) * self.unbound_ratio(r))

    def compute_us_many(self, t_us, flops, dtype: str):
        import numpy as np
        rate = self.flops_per_us.get(dtype) or max(self.flops_per_us.values())
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = flops / (rate * t_us)
        f = np.where((t_us > 0) & (ratio < 1.0), ratio, np.where(t_us > 0, 1.0, 0.0))
        r = self.peak_ratio(dtype)
        return t_us * (f * r + (1.0 - f) * self.unbound_ratio(r))

    def power(self, power: dict) -> dict:
        """The source's measured power levels as the target would draw them."""
        out = dict(power)
        idle_scale = self.target.idle_power_w / self.source.idle_power_w
        limit_scale = self.target.power_limit_w / self.source.power_limit_w
        idle_src = power.get("idle_w", self.source.idle_power_w)
        for k in POWER_IDLE_KEYS:
            if k in power:
                out[k] = power[k] * idle_scale
        for k in POWER_LOAD_KEYS:
            if k in power:
                out[k] = idle_src * idle_scale + (power[k] - idle_src) * limit_scale
        if not (self.same_architecture and self.target.power_limit_w == self.source.power_limit_w):
            for k in POWER_BOARD_KEYS:
                out.pop(k, None)
        out["idle_w_per_gpu"] = [out.get("idle_w", self.target.idle_power_w)]
        out["power_limit_w"] = self.target.power_limit_w
        return out


def closest(target: DeviceSpec, calibrated: list[DeviceSpec]) -> DeviceSpec | None:
    """The calibrated device nearest `target`: same architecture first, then the smallest
    log-distance in memory bandwidth and fp16 tensor peak."""
    def distance(d: DeviceSpec) -> tuple:
        return (d.architecture != target.architecture,
                abs(math.log(d.memory_bandwidth_gb_s / target.memory_bandwidth_gb_s))
                + abs(math.log(d.tflops["float16"] / target.tflops["float16"])), d.key)
    return min(calibrated, key=distance) if calibrated else None
