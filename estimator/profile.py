"""Calibration profiles: measured kernel speeds, host overhead and power of one machine kind.

A profile is the JSON ``python -m estimator calibrate`` writes. Shipped profiles live in
``estimator/profiles/<device key>.json`` and are used automatically for that device. Devices
without one get the closest calibrated device's profile carried over by the transfer model
(estimator/transfer.py), see ``transfer_profile`` and ``profile_for``. The JSON's sections are
declared once in profile_schema.py.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple

from .device import GB, DeviceSpec, host_device
from .errors import EstimatorError
from .interp import LogGrid
from .profile_check import check_profile
from .profile_schema import (GENERATE_REQUIRED, HEADER, HostTimes, PowerModel, ProfileData, overlay_host,
                             parse_profile)

if TYPE_CHECKING:   # transfer.py and grouped.py: imported where a transfer or an MoE's experts need them
    from .transfer import Transfer

__all__ = ["Profile", "PowerModel", "HostTimes", "GenerateHost", "load_profile_file", "shipped_profile",
           "calibrated_devices", "transfer_profile", "profile_for"]

PROFILE_DIR = Path(__file__).parent / "profiles"
REFERENCE_PROFILE = "h100-sxm5-80gb"

# Transfers a profile has no measurement of (datasheet devices, one-GPU calibrations) take the
# datasheet bandwidth of the interconnect plus a fixed latency.
P2P_LATENCY_US = 10.0         # a device-to-device .to() of activations
ALLREDUCE_LATENCY_US = 20.0   # an NCCL ring all-reduce
SMALL_COPY_US = 15.0          # a small input (rotary cos/sin, position ids) accelerate's hook copies
ALLGATHER_HOST_US = 5.0       # host time to launch the all-gather of the logits (never measured)
# Memoized table lookups kept per profile (about 400 bytes each; an estimate of a new workload
# adds some 15): bounded, so a sweep of 100,000 distinct estimates on one device stays within
# about 10 MB of memo (tests/test_memory_growth.py), a sweep over d devices d times that.
MEMO_MAX_ENTRIES = 20_000
# Priced kernel lists (schedule.Pass.price: some 30 OpCosts, ~10 kB each) kept in a memo of their own:
# counted among the small lookups they would fill 20,000 entries with ~30 MB.
MEMO_MAX_LISTS = 1_000


# generate()'s own host time where a profile has no "generate" section (the shipped H100 and H200
# profiles predate the stage): derived from the 4 x H200 probes of 2026-11-27
# (reports/probes/h200x4-gen.jsonl, transformers 5.17, six cases): set-up = TTFT minus the
# estimated prefill, per step = TPOT minus the forward's calibrated host time (median of the cases).
# A limitation: host time moved 1.5-2x between machines of the same kind; calibrate to do better.
GENERATE_SETUP_US = 2500.0
GENERATE_STEP_US = 600.0
GENERATE_HOST_KEYS = GENERATE_REQUIRED   # required in a "generate" entry


def monotone_times(rows) -> list[tuple[float, float]]:
    """(bytes, us) rows with each time at most that of every larger size: a smaller copy never
    takes longer than a larger one, so a point that did was timed launch-bound (a 1 MB copy at
    7.2 us beside 8 MB at 4.2 us on a 2026-12-03 H200 calibration priced every small decode
    kernel 3.5x too long) and takes the next larger size's time."""
    out, best = [], math.inf
    for b, t in sorted(((float(b), float(t)) for b, t in rows), reverse=True):
        best = min(best, t)
        out.append((b, best))
    return out[::-1]


SQUARE_MIN_M = 128   # rows of a GPU profile's square GEMM grid; fewer: the decode (small-M) points


class LazyTables(Mapping):
    """key -> a lookup table built from its points on first use. A profile's GEMM grid of one
    dtype takes ~4 ms to build (its empty cells filled from the nearest point) and an estimate
    reads one or two of the six: a one-shot estimate builds only those (issue 26). Holds the
    same tables, the same floats, as building them all up front."""

    __slots__ = ("_points", "_build", "_built")

    def __init__(self, points: Mapping[Any, Any], build: Callable[[Any], Any]) -> None:
        self._points, self._build, self._built = points, build, {}

    def __getitem__(self, key: Any) -> Any:
        table = self._built.get(key)
        if table is None:
            table = self._built[key] = self._build(self._points[key])   # KeyError: no such table
        return table

    def __contains__(self, key: object) -> bool:
        return key in self._points

    def __iter__(self):
        return iter(self._points)

    def __len__(self) -> int:
        return len(self._points)


@dataclass(frozen=True)
class DecodeGemm:
    """Time of a GEMM of few rows (a decode step's M = batch): it reads its whole weight, so
    time = launch_us + bytes / bytes_per_us, a line fitted on the calibration's small-M points
    (calibrate/grids.small_m_points). Interpolating their FLOP rate on the (m, n, k) grid instead
    filled the cells between the sparse small-M points (n, k in 512 / 2048 / 8192) from the nearest
    point, one slow outlier included: a 4096 x 4096 decode GEMM came out at 28 us on a 1 x H200
    calibration where its 33.5 MB take about 12 us, and decode energy of every model 40-120 % high
    (2026-12-03 loan). The fit drops points more than OUTLIER x above the line (a kernel choice
    of cuBLAS slower than its neighbours) and fits again."""
    launch_us: float
    bytes_per_us: float
    e: int

    OUTLIER = 1.25

    @classmethod
    def fit(cls, points, e: int) -> "DecodeGemm":
        rows = [(e * (m * k + n * k + m * n), float(t)) for m, n, k, t in points]
        line = cls._line(rows)
        for _ in range(3):
            kept = [(b, t) for b, t in rows if t <= cls.OUTLIER * (line[0] + b * line[1])]
            if len(kept) < 2 or len(kept) == len(rows):
                break
            rows, line = kept, cls._line(kept)
        return cls(line[0], 1.0 / line[1], e)

    @staticmethod
    def _line(rows) -> tuple[float, float]:
        """(intercept us, us per byte) by least squares, neither negative."""
        n = len(rows)
        mb, mt = sum(b for b, _ in rows) / n, sum(t for _, t in rows) / n
        var = sum((b - mb) ** 2 for b, _ in rows)
        slope = sum((b - mb) * (t - mt) for b, t in rows) / var if var > 0 else 0.0
        slope = max(slope, 1e-9)
        return max(0.0, mt - slope * mb), slope

    def us(self, m: int, n: int, k: int) -> float:
        return self.launch_us + self.e * (m * k + n * k + m * n) / self.bytes_per_us


class GenerateHost(NamedTuple):
    """Host time of model.generate beside the GPU work: a set-up once per call, then per step
    (the prefill and each decode step: the forward's Python plus logits processing, stopping
    criteria and cache bookkeeping) ``step_us + layers x step_per_layer_us``."""
    setup_us: float
    setup_per_layer_us: float
    step_us: float
    step_per_layer_us: float
    calibrated: bool   # False: GENERATE_* fallback constants on top of the forward's host times

    def setup_total_us(self, layers: int) -> float:
        return self.setup_us + layers * self.setup_per_layer_us

    def step_total_us(self, layers: int) -> float:
        return self.step_us + layers * self.step_per_layer_us


@dataclass
class Profile:
    """Lookup tables built once from a profile's typed fields (profile_schema.ProfileData);
    times in microseconds. ``raw`` is the profile's JSON as read (never rewritten); everything
    the estimator reads goes through ``data``."""
    raw: dict
    source: str                       # path of the JSON, or "transfer from <device> ..."
    transfer: Transfer | None = None  # set when the tables were measured on another device
    host_source: str = "shipped"      # "run": host times measured on the machine at hand (with_host)
    data: ProfileData = field(init=False, repr=False, compare=False)   # the typed view of raw
    power: PowerModel | None = field(init=False, default=None)  # the power section; None: no energy
    _gemm: Mapping = field(default_factory=dict)   # dtype -> LogGrid of its square GEMMs (LazyTables)
    _gemv: dict = field(default_factory=dict)   # dtype -> DecodeGemm fitted on the small-M points
    _sdpa: Mapping = field(default_factory=dict)   # dtype -> {head dim: LogGrid} (LazyTables)
    _memo: OrderedDict = field(default_factory=OrderedDict)   # table lookups are pure: (kind, args) -> us
    _lists: OrderedDict = field(default_factory=OrderedDict)  # priced kernel lists (memoized_list)
    # whole estimates of repeated workloads (result_cache.py)
    results: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False, compare=False)
    # values that depend on the host sections (host_model's corrections and decode glue): per
    # Profile object, since with_host shares the table memo with the profile it overlays
    _host_memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.data = d = parse_profile(self.raw, self.source)
        self.power = d.power
        self._floor_us = float(d.elementwise_floor_us)   # read at every kernel priced
        squares = {}
        for dtype, pts in d.gemm.items():
            small = [p for p in pts if p[0] < SQUARE_MIN_M] if d.kind != "cpu" else []
            square = [p for p in pts if p[0] >= SQUARE_MIN_M] if small else pts
            if square:
                squares[dtype] = square
            if small:
                self._gemv[dtype] = DecodeGemm.fit(small, 4 if dtype.startswith(("float32", "tf32")) else 2)
        self._gemm = LazyTables(squares, _gemm_grid)
        self._sdpa = LazyTables(d.sdpa, _sdpa_grids)
        self._copy = LogGrid(monotone_times(d.copy))
        self._ew = {k: LogGrid([(b, t) for b, t in pts]) for k, pts in d.elementwise.items() if pts}
        self._p2p = LogGrid([(b, t) for b, t in d.p2p]) if d.p2p else None
        self._allreduce = {n: LogGrid([(b, t) for b, t in pts]) for n, pts in d.allreduce.items()}

    @property
    def kind(self) -> str:
        return self.data.kind

    @property
    def device_name(self) -> str | None:
        """The name of the device the calibration ran on, as the machine reported it."""
        return self.data.device_name

    @property
    def header(self) -> Mapping[str, Any]:
        """The calibration's header fields present in the profile (date, device_name,
        gpu_count, hostname, torch, ...: profile_schema.HEADER), read-only."""
        return MappingProxyType({k: getattr(self.data, k) for k in HEADER if k in self.raw})

    def host_device(self) -> DeviceSpec:
        """The CPU this profile calibrated, described by its own measurements (no datasheet)."""
        d = self.data
        return host_device({"gemm": d.gemm, "copy": d.copy, "device_name": d.device_name})

    def memoized(self, key: tuple, compute: Callable[..., Any], *args: Any) -> Any:
        """compute(*args), once per key: lookups on a profile's tables are pure. The memo keeps
        at most MEMO_MAX_ENTRIES keys, dropping the oldest, so a long sweep of distinct
        workloads stays bounded in memory (every key of one estimate stays in it). An
        OrderedDict pops its oldest key in O(1); a plain dict's ``next(iter(memo))`` walks the
        deleted slots at its front, slower the longer a sweep evicts."""
        return _lookup(self._memo, MEMO_MAX_ENTRIES, key, compute, args)

    def memoized_host(self, key: tuple, compute: Callable[..., Any], *args: Any) -> Any:
        """``memoized`` for values that depend on the host sections (host, generate)."""
        if key not in self._host_memo:
            self._host_memo[key] = compute(*args)
        return self._host_memo[key]

    def host_op_costs(self) -> dict[str, float]:
        """Host us per call of each operation class (calibrate/host_ops.py; empty when not measured)."""
        return {k: float(v) for k, v in self.data.host_ops.items() if isinstance(v, (int, float))}

    def memoized_list(self, key: tuple, compute: Callable[[], list]) -> list:
        """compute(), once per key, in a memo of at most MEMO_MAX_LISTS priced kernel lists."""
        return _lookup(self._lists, MEMO_MAX_LISTS, key, compute, ())

    def gemm_us(self, m: int, n: int, k: int, dtype: str) -> float:
        """Interpolated GEMM time; leading dimensions off multiples of 8 use the unaligned grid."""
        return self.memoized(("gemm", m, n, k, dtype), self._gemm_us, m, n, k, dtype)

    def _gemm_us(self, m: int, n: int, k: int, dtype: str) -> float:
        # a profile without this dtype (a CPU calibration has float32 only): its first grid
        table = self._gemm.get(dtype) or self._gemm.get("float16") or next(iter(self._gemm.values()))
        if (n % 8 or k % 8) and f"{dtype}_unaligned" in self._gemm:
            table = self._gemm[f"{dtype}_unaligned"]
        flops = 2.0 * m * n * k
        t = flops / table(m, n, k)
        t = self.transfer.compute_us(t, flops, dtype) if self.transfer else t
        m0 = round(math.exp(table.axes[0][0]))
        gemv = self._gemv.get(dtype) if not self.transfer else None
        if m < m0 and gemv is not None:
            # a decode GEMM (calibrate/grids.small_m_points): the launch plus its bytes at the
            # bandwidth such GEMMs reached, never faster than the m0-row GEMM's FLOP rate
            return max(gemv.us(m, n, k), t)
        if m < m0:
            # Below the grid's rows (decode GEMMs of `batch` rows, a profile without the small-M
            # points): the clamped FLOP rate would make them m0/m times too fast; such a GEMM
            # reads its whole weight, so it takes the copy time of its bytes, yet no longer
            # than the same GEMM on m0 rows scaled by the bytes it moves.
            e = 4 if dtype.startswith(("float32", "tf32")) else 2
            nbytes = e * (m * k + n * k + m * n)
            t_m0 = self.gemm_us(m0, n, k, dtype) * nbytes / (e * (m0 * k + n * k + m0 * n))
            t = max(t, min(self.copy_us(nbytes / 2), t_m0))
        return t

    def grouped_gemm_us(self, experts: int, rows: float, n: int, k: int, dtype: str) -> float:
        """A grouped GEMM of MoE experts (estimator/grouped.py): the profile's measured points of
        this dtype (bfloat16's for float16: the same tensor rate), else the roofline of this
        profile's copy and GEMM times over FALLBACK_EFFICIENCY (older profiles, transfers)."""
        return self.memoized(("grouped", experts, rows, n, k, dtype), self._grouped_gemm_us, experts, rows, n, k, dtype)

    def _grouped_gemm_us(self, experts: int, rows: float, n: int, k: int, dtype: str) -> float:
        from .grouped import FALLBACK_EFFICIENCY, GroupedGemm
        e = 4 if dtype.startswith(("float32", "tf32")) else 2
        pts = self.data.grouped_gemm.get(dtype) or (self.data.grouped_gemm.get("bfloat16") if e == 2 else None)
        if pts and not self.transfer:
            return GroupedGemm(pts, e).us(experts, rows, n, k)
        weights = e * experts * n * k + e * experts * rows * (n + k)
        dense = self.gemm_us(max(1, round(experts * rows)), n, k, dtype)
        return max(self.copy_us(weights / 2), dense) / FALLBACK_EFFICIENCY

    def sdpa_us(self, bh: int, seq: int, d: int, dtype: str) -> float:
        tables = self._sdpa.get(dtype) or self._sdpa.get("float16") or next(iter(self._sdpa.values()))
        d0 = min(tables, key=lambda x: abs(math.log(x / d)))
        flops = 2.0 * bh * seq * seq * d
        t = flops / tables[d0](bh, seq)
        return self.transfer.compute_us(t, flops, dtype) if self.transfer else t

    def copy_us(self, nbytes: float) -> float:
        """Time of a device copy of `nbytes` (read nbytes, write nbytes)."""
        return max(self._on_target(self._measured_copy_us(nbytes), 2 * nbytes), self.floor_us)

    def _on_target(self, t_us: float, nbytes: float) -> float:
        """A memory-bound time measured on the profile's device, on the device estimated."""
        return self.transfer.memory_us(t_us, nbytes) if self.transfer else t_us

    def _measured_copy_us(self, nbytes: float) -> float:
        t = self._copy(max(nbytes, 1.0))
        grid = self.data.copy
        lo = grid[0][0]
        if nbytes > grid[-1][0]:   # beyond the grid: bandwidth-bound, linear in bytes
            t = self._copy(grid[-1][0]) * nbytes / grid[-1][0]
        elif nbytes < lo:
            t = self._copy(lo)
        return t

    def elementwise_us(self, pattern: str, nbytes: float) -> float:
        """Memory-bound kernel of a calibrated access pattern moving `nbytes`; else a copy."""
        return self.memoized(("ew", pattern, nbytes), self._elementwise_us, pattern, nbytes)

    def _elementwise_us(self, pattern: str, nbytes: float) -> float:
        pts = self.data.elementwise.get(pattern)
        if not pts:
            return self.copy_us(nbytes / 2)
        lo, hi = pts[0][0], pts[-1][0]
        table = self._ew[pattern]
        if nbytes > hi:
            t = table(hi) * nbytes / hi
        elif nbytes < lo:  # below the grid: bandwidth of the smallest point, latency of a copy
            t = max(table(lo) * nbytes / lo, max(self._measured_copy_us(nbytes / 2), self.floor_us))
        else:
            t = table(nbytes)
        return max(self._on_target(t, nbytes), self.floor_us)

    @property
    def floor_us(self) -> float:
        return self._floor_us

    def p2p_us(self, nbytes: float) -> float | None:
        if self._p2p is None:
            return None
        top = self.data.p2p[-1][0]
        return self._p2p(top) * nbytes / top if nbytes > top else self._p2p(nbytes)

    def allreduce_us(self, nbytes: float, gpus: int) -> float | None:
        if not self._allreduce:
            return None
        n = min(self._allreduce, key=lambda x: (abs(x - gpus), -x))
        pts = self.data.allreduce[n]
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

    # -- the lookups above for many kernels at once (forward_many.py): numpy arrays of sizes in,
    # arrays of times out, the same rules and the same floats as the scalar lookups (their
    # memo is skipped: each value is computed, not remembered). tests/test_forward_many.py
    # holds them to the scalar ones.
    def gemm_us_many(self, m, n, k, dtype: str):
        """gemm_us of each (m, n, k) (arrays or numbers, broadcast together)."""
        import numpy as np
        m, n, k = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (m, n, k)))
        table = self._gemm.get(dtype) or self._gemm.get("float16") or next(iter(self._gemm.values()))
        unaligned = self._gemm.get(f"{dtype}_unaligned")
        if unaligned is None:
            return self._gemm_us_many(table, m, n, k, dtype)
        odd = (n % 8 != 0) | (k % 8 != 0)
        out = np.empty(m.shape)
        for mask, t in ((~odd, table), (odd, unaligned)):
            if mask.any():
                out[mask] = self._gemm_us_many(t, m[mask], n[mask], k[mask], dtype)
        return out

    def _gemm_us_many(self, table: LogGrid, m, n, k, dtype: str):
        import numpy as np
        flops = 2.0 * m * n * k
        t = flops / table.many(m, n, k)
        t = self.transfer.compute_us_many(t, flops, dtype) if self.transfer else t
        m0 = round(math.exp(table.axes[0][0]))
        small = m < m0
        gemv = self._gemv.get(dtype) if not self.transfer else None
        if small.any() and gemv is not None:   # decode GEMMs: _gemm_us's line, the same floats
            ms, ns, ks = m[small], n[small], k[small]
            t = t.copy()
            t[small] = np.maximum(gemv.launch_us + gemv.e * (ms * ks + ns * ks + ms * ns) / gemv.bytes_per_us, t[small])
            return t
        if small.any():
            e = 4 if dtype.startswith(("float32", "tf32")) else 2
            ms, ns, ks = m[small], n[small], k[small]
            nbytes = e * (ms * ks + ns * ks + ms * ns)
            t_m0 = self.gemm_us_many(np.full(ms.shape, float(m0)), ns, ks, dtype) * nbytes / (e * (m0 * ks + ns * ks + m0 * ns))
            t = t.copy()
            t[small] = np.maximum(t[small], np.minimum(self.copy_us_many(nbytes / 2), t_m0))
        return t

    def sdpa_us_many(self, bh, seq, d: int, dtype: str):
        """sdpa_us of each (bh, seq) at one head dim `d`."""
        import numpy as np
        bh, seq = np.broadcast_arrays(np.asarray(bh, dtype=float), np.asarray(seq, dtype=float))
        tables = self._sdpa.get(dtype) or self._sdpa.get("float16") or next(iter(self._sdpa.values()))
        d0 = min(tables, key=lambda x: abs(math.log(x / d)))
        flops = 2.0 * bh * seq * seq * d
        t = flops / tables[d0].many(bh, seq)
        return self.transfer.compute_us_many(t, flops, dtype) if self.transfer else t

    def copy_us_many(self, nbytes):
        import numpy as np
        return np.maximum(self._on_target_many(self._measured_copy_us_many(nbytes), 2 * nbytes), self.floor_us)

    def _on_target_many(self, t_us, nbytes):
        return self.transfer.memory_us_many(t_us, nbytes) if self.transfer else t_us

    def _measured_copy_us_many(self, nbytes):
        import numpy as np
        nbytes = np.asarray(nbytes, dtype=float)
        grid = self.data.copy
        lo, top = grid[0][0], grid[-1][0]
        nbytes = np.atleast_1d(nbytes)
        t = np.where(nbytes > top, self._copy(top) * nbytes / top, self._copy(lo))
        inside = (nbytes <= top) & (nbytes >= lo)
        if inside.any():
            t[inside] = self._copy.many(np.where(nbytes[inside] > 1.0, nbytes[inside], 1.0))
        return t

    def elementwise_us_many(self, pattern: str, nbytes):
        import numpy as np
        nbytes = np.atleast_1d(np.asarray(nbytes, dtype=float))
        pts = self.data.elementwise.get(pattern)
        if not pts:
            return self.copy_us_many(nbytes / 2)
        lo, hi = pts[0][0], pts[-1][0]
        table = self._ew[pattern]
        t = table(hi) * nbytes / hi
        inside, below = (nbytes >= lo) & (nbytes <= hi), nbytes < lo
        if inside.any():
            t[inside] = table.many(nbytes[inside])
        if below.any():
            small = nbytes[below]
            t[below] = np.maximum(table(lo) * small / lo, np.maximum(self._measured_copy_us_many(small / 2), self.floor_us))
        return np.maximum(self._on_target_many(t, nbytes), self.floor_us)

    def p2p_us_many(self, nbytes):
        import numpy as np
        if self._p2p is None:
            return None
        top = self.data.p2p[-1][0]
        return np.where(nbytes > top, self._p2p(top) * nbytes / top, self._p2p.many(nbytes))

    def transfer_us_many(self, nbytes, link_gb_s: float):
        t = self.p2p_us_many(nbytes)
        return nbytes / (link_gb_s * GB) * 1e6 + P2P_LATENCY_US if t is None else t

    def small_copy_us_many(self, nbytes):
        import numpy as np
        t = self.p2p_us_many(nbytes)
        return np.full(np.shape(nbytes), SMALL_COPY_US) if t is None else np.where(t != 0, t, SMALL_COPY_US)

    def ring_allreduce_us_many(self, nbytes, gpus: int, link_gb_s: float):
        import numpy as np
        if not self._allreduce:
            return 2 * (gpus - 1) / gpus * nbytes / (link_gb_s * GB) * 1e6 + ALLREDUCE_LATENCY_US
        n = min(self._allreduce, key=lambda x: (abs(x - gpus), -x))
        top = self.data.allreduce[n][-1][0]
        return np.where(nbytes > top, self._allreduce[n](top) * nbytes / top, self._allreduce[n].many(nbytes))

    def host_times(self, model_type: str, family: str) -> HostTimes:
        """Measured eager host time of this model type, else of its family, else none."""
        host = self.data.host
        return host.get(model_type) or host.get(family) or HostTimes(0.0, 0.0)

    def dispatch_hook_us(self, model_type: str, family: str) -> float:
        """Host time accelerate's dispatch hook adds per hooked module (0 when not measured)."""
        hooks = self.data.dispatch
        return float(hooks.get(model_type, hooks.get(family, 0.0)))

    def with_host(self, host: dict, dispatch: dict, source: str, generate: dict | None = None) -> "Profile":
        """This profile with host and hook times measured on another machine laid over its own
        (per family; families not measured there keep these): host time moves 20-50 % between
        machines of one GPU kind, kernel times do not."""
        raw = overlay_host(self.raw, host, dispatch, generate)
        kept = {f.name: getattr(self, f.name) for f in fields(self) if f.init and not f.name.startswith("_")}
        return Profile(**kept | {"raw": raw, "source": source, "host_source": "run"})


def _gemm_grid(square: list) -> LogGrid:
    """The GEMM grid of one dtype; value: achieved FLOP/s, so that time = flops / rate interpolates smoothly."""
    return LogGrid([(m, n, k, 2.0 * m * n * k / t) for m, n, k, t in square])


def _sdpa_grids(pts: list) -> dict[int, LogGrid]:
    """The SDPA grids of one dtype, one per head dim: (batch x heads, seq) -> FLOP/s."""
    by_d: dict[int, list] = {}
    for bh, s, hd, t in pts:
        by_d.setdefault(int(hd), []).append((bh, s, 2.0 * bh * s * s * hd / t))
    return {hd: LogGrid(p) for hd, p in by_d.items()}


def _lookup(memo: OrderedDict, cap: int, key: tuple, compute: Callable[..., Any], args: tuple) -> Any:
    value = memo.get(key)
    if value is None:
        value = compute(*args)   # may memoize nested lookups itself
        while len(memo) >= cap:
            memo.popitem(last=False)
        memo[key] = value
    return value


def load_profile_file(path: str | Path) -> Profile:
    from .jsonin import read_json
    raw = read_json(path, f"cannot read profile {path}")
    check_profile(raw, str(path))   # one line per problem, before any table is built
    return Profile(raw, str(path))


@lru_cache(maxsize=64)
def shipped_profile(device_key: str) -> Profile | None:
    path = PROFILE_DIR / f"{device_key}.json"
    return load_profile_file(path) if path.is_file() else None


def calibrated_devices() -> list[DeviceSpec]:
    """Devices with a shipped calibration profile."""
    from .device import get_device
    return [get_device(p.stem) for p in sorted(PROFILE_DIR.glob("*.json"))]


def transfer_profile(target: DeviceSpec, source: DeviceSpec | str) -> Profile:
    """`source`'s shipped calibration carried to `target` through the transfer model
    (estimator/transfer.py), ignoring any profile `target` has of its own."""
    from .device import get_device
    src = get_device(source) if isinstance(source, str) else source
    return _transfer_profile(target.key, src.key)


@lru_cache(maxsize=64)
def _transfer_profile(target_key: str, source_key: str) -> Profile:
    from .device import get_device
    target, source = get_device(target_key), get_device(source_key)
    ref = shipped_profile(source.key)
    if ref is None:
        known = ", ".join(d.key for d in calibrated_devices())
        raise EstimatorError(f"no calibration of {source.key} to transfer from: calibrated devices are {known}")
    from .transfer import Transfer
    transfer = Transfer.between(source, target, ref.data)
    return Profile(transfer.carry_over(ref.raw), f"{transfer.label} (estimator/profiles/{source.key}.json)",
                   transfer=transfer)


def profile_for(device: DeviceSpec, path: str | Path | None = None,
                transfer_from: DeviceSpec | str | None = None) -> Profile:
    """An explicit profile file; else, with `transfer_from`, that device's calibration carried
    to this one; else the device's shipped profile; else the transfer from the closest
    calibrated device."""
    if path:
        return load_profile_file(path)
    if transfer_from:
        return transfer_profile(device, transfer_from)
    own = shipped_profile(device.key)
    if own is not None:
        return own
    from .transfer import closest
    source = closest(device, calibrated_devices())
    if source is None:
        raise EstimatorError(f"no calibrated device to transfer from for {device.key}")
    return transfer_profile(device, source)
