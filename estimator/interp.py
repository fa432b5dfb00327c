"""Interpolation on calibration grids, in log space: one point in pure Python (microseconds),
many points at once over numpy arrays (``LogGrid.many``, issue 26)."""
from __future__ import annotations

import math
from bisect import bisect_right
from functools import partial
from itertools import product
from typing import Sequence


def _bracket(axis: Sequence[float], x: float) -> tuple[int, int, float]:
    """Indices around x on a sorted log axis and the weight of the upper one (clamped at the ends)."""
    if x <= axis[0] or len(axis) == 1:
        return 0, 0, 0.0
    if x >= axis[-1]:
        return len(axis) - 1, len(axis) - 1, 0.0
    hi = bisect_right(axis, x)
    lo = hi - 1
    return lo, hi, (x - axis[lo]) / (axis[hi] - axis[lo])


class LogGrid:
    """A regular grid of log(value) over log(coordinates); multilinear inside, clamped outside.

    ``points`` are (coords..., value) rows; grid cells no point covers take the value of the
    nearest covered cell (log distance), so sparse grids (e.g. wide GEMMs only for some k) work.
    """

    def __init__(self, points: Sequence[Sequence[float]]):
        if not points:
            raise ValueError("empty calibration grid")
        dims = len(points[0]) - 1
        self.axes = [sorted({math.log(p[i]) for p in points}) for i in range(dims)]
        known = {tuple(math.log(c) for c in p[:dims]): math.log(p[dims]) for p in points}
        self.values: dict[tuple[int, ...], float] = {}
        for idx in product(*(range(len(a)) for a in self.axes)):
            key = tuple(a[i] for a, i in zip(self.axes, idx))
            if key in known:
                self.values[idx] = known[key]
            else:
                # math.dist: the same nearest cell as a sum of squares, 5x faster (profiles load
                # at every suite start, see bench/calibration.py); dist(key, k) == dist(k, key)
                # exactly, and partial spares a Python frame per point (a third of the fill)
                self.values[idx] = known[min(known, key=partial(math.dist, key))]

    def __call__(self, *coords: float) -> float:
        axes = self.axes
        if len(axes) == 1:
            return self._call1(coords[0])
        if len(axes) == 2:
            return self._call2(coords[0], coords[1])
        if len(axes) == 3:
            return self._call3(coords[0], coords[1], coords[2])
        return self._call_any(coords)

    # One, two and three axes unrolled (the tables estimates look up): the same weights, multiplied
    # in the same order and summed over the corners in the same order as _call_any, so the same floats.
    def _call1(self, x: float) -> float:
        l0, h0, t0 = _bracket(self.axes[0], math.log(x))
        v = self.values
        total = 0.0
        w = 1.0 - t0
        if w:
            total += w * v[(l0,)]
        if t0:
            total += t0 * v[(h0,)]
        return math.exp(total)

    def _call2(self, x: float, y: float) -> float:
        axes, v = self.axes, self.values
        l0, h0, t0 = _bracket(axes[0], math.log(x))
        l1, h1, t1 = _bracket(axes[1], math.log(y))
        a0, a1 = 1.0 - t0, 1.0 - t1
        total = 0.0
        for w, key in ((a0 * a1, (l0, l1)), (a0 * t1, (l0, h1)), (t0 * a1, (h0, l1)), (t0 * t1, (h0, h1))):
            if w:
                total += w * v[key]
        return math.exp(total)

    def _call3(self, x: float, y: float, z: float) -> float:
        axes, v = self.axes, self.values
        l0, h0, t0 = _bracket(axes[0], math.log(x))
        l1, h1, t1 = _bracket(axes[1], math.log(y))
        l2, h2, t2 = _bracket(axes[2], math.log(z))
        a0, a1, a2 = 1.0 - t0, 1.0 - t1, 1.0 - t2
        total = 0.0
        for w01, i0, i1 in ((a0 * a1, l0, l1), (a0 * t1, l0, h1), (t0 * a1, h0, l1), (t0 * t1, h0, h1)):
            w = w01 * a2
            if w:
                total += w * v[(i0, i1, l2)]
            w = w01 * t2
            if w:
                total += w * v[(i0, i1, h2)]
        return math.exp(total)

    def _call_any(self, coords: Sequence[float]) -> float:
        brackets = [_bracket(a, math.log(c)) for a, c in zip(self.axes, coords)]
        total = 0.0
        for corner in product((0, 1), repeat=len(brackets)):
            w = 1.0
            idx = []
            for (lo, hi, t), c in zip(brackets, corner):
                w *= t if c else 1.0 - t
                idx.append(hi if c else lo)
            if w:
                total += w * self.values[tuple(idx)]
        return math.exp(total)

    def many(self, *coords: Sequence[float]):
        """The values at many points at once: one array (or number) per axis, broadcast together -> a numpy array.
        The same brackets, weights, corner order and sum as the scalar call; numpy's log / exp
        may differ from math's in the last bit (tests/test_interp_many.py bounds it at 1e-12
        relative). numpy is imported here only: a single estimate never loads it."""
        import numpy as np
        total = None
        brackets = []
        for axis, c in zip(self.axes, np.broadcast_arrays(*(np.asarray(c, dtype=float) for c in coords))):
            x = np.log(c)
            a = np.asarray(axis)
            hi = np.clip(np.searchsorted(a, x, side="right"), 1, max(1, len(a) - 1))
            lo = hi - 1
            inside = (x > a[0]) & (x < a[-1]) & (len(a) > 1)
            t = np.where(inside, (x - a[lo]) / np.where(inside, a[np.minimum(hi, len(a) - 1)] - a[lo], 1.0), 0.0)
            top = x >= a[-1]
            lo = np.where(inside, lo, np.where(top, len(a) - 1, 0))
            hi = np.where(inside, hi, lo)
            brackets.append((lo, hi, t))
        table = self._dense()
        total = np.zeros(np.shape(brackets[0][2]))
        below = [1.0 - t for _, _, t in brackets]
        for corner in product((0, 1), repeat=len(brackets)):
            w = 1.0
            idx = []
            for (lo, hi, t), a, c in zip(brackets, below, corner):
                w = w * (t if c else a)
                idx.append(hi if c else lo)
            # a corner of weight 0 adds w * value = 0.0 (values are finite): the scalar call's skip
            total = total + w * table[tuple(idx)]
        return np.exp(total)

    def _dense(self):
        """The grid's values as a dense numpy array, indexed like ``values`` (built once)."""
        import numpy as np
        dense = getattr(self, "_dense_values", None)
        if dense is None:
            dense = np.empty(tuple(len(a) for a in self.axes))
            for idx, v in self.values.items():
                dense[idx] = v
            self._dense_values = dense
        return dense
