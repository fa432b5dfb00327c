"""Price of a grouped GEMM (transformers' ``grouped_mm`` experts path) from measured points.

A grouped GEMM multiplies the rows routed to each of E experts by that expert's (k x n) weight in
one kernel. Measured on an H200 (``estimator/calibrate/grouped.py``, reports/probes/), its time is
the larger of the weight bytes at about 2.3-3.7 TB/s and the FLOPs at about 530-690 TFLOP/s,
with an efficiency that depends on the rows per expert and the weight shape. So the time of a
query (E, m, n, k) is read off the measured shape nearest in weight size, interpolated in
log(rows per expert), and moved to the query's shape by the ratio of the roofline floors
(bytes / bandwidth vs FLOPs / rate, the rates being the best the grid reached).
Without measured points (a profile calibrated before this stage, or a transferred device) the
floor at the device's copy bandwidth and best GEMM rate is divided by FALLBACK_EFFICIENCY.
"""
from __future__ import annotations

import bisect
import math
from typing import Sequence

# Mean efficiency (floor / measured) over the H200 grid of 2026-12-01 (65 points, 0.5-0.95);
# used only where a profile has no grouped GEMM points.
FALLBACK_EFFICIENCY = 0.75


def _bytes(e: int, m: float, n: int, k: int, esize: int) -> float:
    return esize * (e * n * k + e * m * (n + k))


def _flops(e: int, m: float, n: int, k: int) -> float:
    return 2.0 * e * m * n * k


def floor_us(e: int, m: float, n: int, k: int, esize: int, bytes_per_us: float, flops_per_us: float) -> float:
    """The roofline floor: weights plus rows at `bytes_per_us`, or FLOPs at `flops_per_us`."""
    return max(_bytes(e, m, n, k, esize) / bytes_per_us, _flops(e, m, n, k) / flops_per_us)


class GroupedGemm:
    """Measured grouped GEMM points of one dtype: rows [experts, rows_per_expert, n, k, us]."""

    def __init__(self, rows: Sequence[Sequence[float]], esize: int) -> None:
        self.esize = esize
        pts = [tuple(r) for r in rows if len(r) == 5 and r[4] > 0]
        self.bytes_per_us = max((_bytes(e, m, n, k, esize) / us for e, m, n, k, us in pts), default=0.0)
        self.flops_per_us = max((_flops(e, m, n, k) / us for e, m, n, k, us in pts), default=0.0)
        shapes: dict[tuple[int, int, int], list[tuple[float, float]]] = {}
        for e, m, n, k, us in pts:
            shapes.setdefault((int(e), int(n), int(k)), []).append((math.log(m), us))
        self.shapes = {s: sorted(v) for s, v in shapes.items()}

    def __bool__(self) -> bool:
        return bool(self.shapes)

    def us(self, e: int, m: float, n: int, k: int) -> float:
        """Time of one grouped GEMM of `e` experts with `m` rows each (m may be fractional)."""
        m = max(m, 1e-3)
        size = math.log(e * n * k)
        shape = min(self.shapes, key=lambda s: (abs(math.log(s[0] * s[1] * s[2]) - size), s))
        curve = self.shapes[shape]
        x = math.log(max(m, 1.0))
        xs = [p[0] for p in curve]
        i = bisect.bisect_left(xs, x)
        if i <= 0:
            lo = hi = curve[0]
        elif i >= len(curve):
            lo = hi = curve[-1]
        else:
            lo, hi = curve[i - 1], curve[i]
        # interpolate the efficiency (floor / time) between the neighbours, at the query's rows
        eff_lo = self._floor(shape, math.exp(lo[0])) / lo[1]
        eff_hi = self._floor(shape, math.exp(hi[0])) / hi[1]
        f = 0.0 if hi[0] == lo[0] else min(1.0, max(0.0, (x - lo[0]) / (hi[0] - lo[0])))
        eff = eff_lo + f * (eff_hi - eff_lo)
        return floor_us(e, m, n, k, self.esize, self.bytes_per_us, self.flops_per_us) / eff

    def _floor(self, shape: tuple[int, int, int], m: float) -> float:
        e, n, k = shape
        return floor_us(e, m, n, k, self.esize, self.bytes_per_us, self.flops_per_us)
