"""A result row of the bench, typed: ``Row`` (the case), ``Measured`` (what the hardware did) and
``Estimated`` (what the estimator said), each a frozen dataclass with units in its field names.

``to_dict`` gives the JSON row of reports/ exactly (keys, order, values): a field holding
``ABSENT`` is not written, so one class covers the forward, generation and distributed rows and
the rows recorded before a key existed (older rows have no ``runtime_ms_spread`` or ``host_us``).
``from_dict`` reads any recorded row back; keys it does not know (``out_of_bounds``, ``status``,
``source``, hand-written notes) are kept in ``extra`` and written after the known ones.

Legacy key: a distributed row (one with ``nodes``) writes its round count as ``rounds``, every
other row as ``runtime_rounds``; both are read into ``Measured.runtime_rounds``. The recorded
distributed rows use ``rounds`` and new rows keep writing it, so the results files stay as they are.

``Row.workload()`` is the estimator's ``Workload`` of a row: the one place where a row's
``parallel: single`` (one GPU) becomes the estimator's 1-GPU ``pipeline``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from estimator import Workload

SINGLE = "single"                 # a row's parallel mode on one GPU
ROUNDS_KEY, LEGACY_ROUNDS_KEY = "runtime_rounds", "rounds"
# The estimated block of a new generation row has host_us before breakdown (as bench/test_generate.py
# always wrote it); the recorded generation rows, given host_us when it was introduced (appended,
# 2d8e5e2), have it last, which is the field order. Both are kept byte for byte.
GENERATE_KEY_ORDER = ("runtime_ms", "memory_gb", "energy_j_per_token", "throughput_tokens_per_s", "ttft_ms",
                      "tpot_ms", "generate_ms", "generate_energy_j_per_token", "host_ms", "gpu_busy_ms", "bound",
                      "profile", "phases", "host_us", "breakdown")


class _Absent:
    """The value of a field whose key a row does not have (never written)."""
    _instance = None

    def __new__(cls) -> "_Absent":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "key_order")]


def _to_dict(obj: Any, rename: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The fields that are not ABSENT, in field order (or `key_order` first where the object has
    one; renamed where asked), then `extra`."""
    rename = rename or {}
    names = _fields(type(obj))
    first = [k for k in getattr(obj, "key_order", ()) if k in names]
    names = first + [k for k in names if k not in first]
    out = {rename.get(k, k): getattr(obj, k) for k in names if getattr(obj, k) is not ABSENT}
    return out | dict(obj.extra)


def _from_dict(cls: type, d: Mapping[str, Any], aliases: Mapping[str, str] | None = None) -> Any:
    aliases = aliases or {}
    known = set(_fields(cls))
    kw: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in d.items():
        name = aliases.get(key, key)
        if name in known and name not in kw:
            kw[name] = value
        else:
            extra[key] = value
    return cls(**kw, extra=extra)


@dataclass(frozen=True)
class Measured:
    """The ``measured`` block; field order is the JSON key order of reports/."""

    runtime_ms: float = ABSENT
    runtime_ms_rounds: list[float] = ABSENT
    runtime_ms_iqr: float = ABSENT
    memory_gb: float | None = ABSENT              # the busiest GPU; None: no allocator statistics (CPU)
    memory_gb_per_gpu: list[float] | None = ABSENT
    energy_j_per_token: float | None = ABSENT     # None: no energy counter
    energy_window_s: float | None = ABSENT
    power_w: float | None = ABSENT
    throughput_tokens_per_s: float = ABSENT
    runtime_ms_spread: float | None = ABSENT      # half-width of the median's 95 % CI (bench/rounds.py)
    runtime_rounds: int | None = ABSENT           # how many rounds were timed ("rounds" in distributed rows)
    ttft_ms: float = ABSENT                       # generation rows: time to the first token
    ttft_ms_rounds: list[float] = ABSENT
    tpot_ms: float = ABSENT
    generate_ms: float = ABSENT
    generate_energy_j_per_token: float | None = ABSENT
    warmup_passes: int = ABSENT                   # untimed passes until the median settled (bench/settle.py)
    warmup_s: float = ABSENT
    warmup_settled: bool = ABSENT
    host_probe_ms: list[float] = ABSENT           # the model at a few tokens, each probe block's median (bench/host_probe.py)
    energy_host_probe_ms: list[float] = ABSENT    # the same probe just before and just after the energy window
    host_factor: float = ABSENT                   # the profile's host time for this model x this factor = the probe
    host_factor_rounds: list = ABSENT             # that factor fitted to each round's own probe (generate: [set-up, step])
    host_cpu_probe_us: list[float] = ABSENT       # the pure-Python host probe before each timed round (bench/host_speed.py)
    host_cpu_probe_us_median: float = ABSENT
    round_drift: float = ABSENT                   # how far the case's own rounds moved (bench/rounds.py's round_drift)
    round_drift_bound: float | None = ABSENT      # the bound that drift is held to (the case's runtime bound)
    unstable: bool = ABSENT                       # drift beyond that bound: reported and counted, still judged
    # generation rows with the host probe: each timed round's runtime_ms, ttft_ms (the median of its
    # one-token calls) and tpot_ms, paired with ``Estimated.per_round`` (bench/compare.py)
    per_round: Mapping[str, list[float]] = ABSENT
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, latency: Any, memory: Any | None, energy: Any | None, tokens: int) -> "Measured":
        """From bench/measure.py's tracker results; None for a tracker that did not run (the CPU
        case has no allocator or energy counter)."""
        return cls(latency.runtime_ms, latency.runtime_ms_rounds, latency.runtime_ms_iqr,
                   memory.memory_gb if memory else None, memory.memory_gb_per_gpu if memory else None,
                   energy.energy_j_per_token if energy else None, energy.window_s if energy else None,
                   energy.power_w if energy else None, tokens / (latency.runtime_ms / 1e3),
                   latency.runtime_ms_spread, len(latency.runtime_ms_rounds))

    def to_dict(self, rounds_key: str = ROUNDS_KEY) -> dict[str, Any]:
        return _to_dict(self, {"runtime_rounds": rounds_key})

    as_dict = to_dict

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Measured":
        return _from_dict(cls, d, {LEGACY_ROUNDS_KEY: "runtime_rounds"})


def _ranges(est: Any, *keys: str) -> dict[str, Any]:
    """The estimate's [low, high] ranges of `keys` (ABSENT: an estimate object without them)."""
    return {f"{k}_range": getattr(est, f"{k}_range", ABSENT) for k in keys}


@dataclass(frozen=True)
class Estimated:
    """The ``estimated`` block (ABSENT everywhere: an accuracy row whose re-estimate failed);
    field order is the JSON key order of reports/."""

    runtime_ms: float = ABSENT
    memory_gb: float | None = ABSENT              # None in the CPU row (nothing measured to compare)
    energy_j_per_token: float | None = ABSENT
    throughput_tokens_per_s: float = ABSENT
    memory_gb_per_gpu: list[float] = ABSENT       # forward rows only
    ttft_ms: float = ABSENT                       # generation rows only, down to phases
    tpot_ms: float = ABSENT
    generate_ms: float = ABSENT
    generate_energy_j_per_token: float | None = ABSENT
    host_ms: float = ABSENT
    gpu_busy_ms: float = ABSENT
    bound: str = ABSENT
    profile: str = ABSENT
    phases: list[dict] = ABSENT
    breakdown: list[dict] = ABSENT
    host_us: Mapping[str, float] | None = ABSENT  # the host times the estimate used (recorded since 2026-11-27)
    generate_host_us: Mapping[str, float] | None = ABSENT  # generation rows: generate's host times used
    # the host times the energy estimate used: the energy window runs at its own host speed (its
    # calls ran 0.7-1.8x the rounds' pace on host-bound cases, 2026-12-03), probed beside it;
    # forward: {per_layer_us, fixed_us}; generation: generate's entry
    energy_host_us: Mapping[str, float] | None = ABSENT
    # [low, high], the estimate's 10-90 % ranges (estimator/ranges.py; recorded since 2026-12-01)
    runtime_ms_range: list[float] | None = ABSENT
    memory_gb_range: list[float] | None = ABSENT
    energy_j_per_token_range: list[float] | None = ABSENT
    ttft_ms_range: list[float] | None = ABSENT    # generation rows only
    tpot_ms_range: list[float] | None = ABSENT
    # generation rows with the host probe: the estimate of each timed round at the host speed its
    # probe measured (runtime_ms, ttft_ms, tpot_ms), and generate's host entry of each round
    per_round: Mapping[str, list[float]] = ABSENT
    generate_host_us_rounds: list[Mapping[str, float]] = ABSENT
    extra: Mapping[str, Any] = field(default_factory=dict)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)  # see GENERATE_KEY_ORDER

    @classmethod
    def from_estimate(cls, est: Any, host_us: Mapping[str, float] | None) -> "Estimated":
        """The block of an ``estimator.Estimate``: a generation estimate (ttft_ms set) has the
        generation fields and phases, a forward one memory_gb_per_gpu."""
        common = dict(runtime_ms=est.runtime_ms, memory_gb=est.memory_gb, energy_j_per_token=est.energy_j_per_token,
                      throughput_tokens_per_s=est.throughput_tokens_per_s, host_ms=est.host_ms,
                      gpu_busy_ms=est.gpu_busy_ms, bound=est.bound, profile=est.profile, breakdown=est.breakdown,
                      host_us=host_us, **_ranges(est, "runtime_ms", "memory_gb", "energy_j_per_token"))
        if est.ttft_ms is None:
            return cls(**common, memory_gb_per_gpu=est.memory_gb_per_gpu)
        return cls(**common, ttft_ms=est.ttft_ms, tpot_ms=est.tpot_ms, generate_ms=est.generate_ms,
                   generate_energy_j_per_token=est.generate_energy_j_per_token, phases=est.phases,
                   **_ranges(est, "ttft_ms", "tpot_ms"), key_order=GENERATE_KEY_ORDER)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Estimated":
        """A recorded block, written back in its own key order (rows of different dates have
        different orders: see GENERATE_KEY_ORDER)."""
        return dataclasses.replace(_from_dict(cls, d), key_order=tuple(d))


@dataclass(frozen=True)
class Row:
    """One case's result row; `measured` / `estimated` are None until the case has them."""

    case_id: str
    model: str
    device: str                  # the GPU database's name (or the CPU profile's device name)
    device_short: str
    gpus: int
    parallel: str                # "single" on one GPU, else pipeline / data / tensor
    batch: int
    seq: int
    dtype: str
    kind: str | None = None      # "generate" for model.generate rows; None (not written): a forward pass
    new_tokens: int | None = None  # generation rows only
    nodes: int | None = None     # distributed (data / tensor, one process per GPU) rows only
    experts_implementation: str | None = None   # MoE rows: the experts path built and estimated
    measured: Measured | None = None
    estimated: Estimated | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON row, as reports/ has it."""
        out: dict[str, Any] = {"case_id": self.case_id}
        if self.kind is not None:
            out["kind"] = self.kind
        out |= dict(model=self.model, device=self.device, device_short=self.device_short, gpus=self.gpus,
                    parallel=self.parallel, batch=self.batch, seq=self.seq)
        if self.new_tokens is not None:
            out["new_tokens"] = self.new_tokens
        out["dtype"] = self.dtype
        if self.nodes is not None:
            out["nodes"] = self.nodes
        if self.experts_implementation is not None:
            out["experts_implementation"] = self.experts_implementation
        if self.measured is not None:
            out["measured"] = self.measured.to_dict(LEGACY_ROUNDS_KEY if self.nodes is not None else ROUNDS_KEY)
        if self.estimated is not None:
            out["estimated"] = self.estimated.to_dict()
        return out | dict(self.extra)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Row":
        """Any recorded row with a case (reports/measured/*.json ``cases``, run files, accuracy rows)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra", "measured", "estimated"}
        kw = {k: v for k, v in d.items() if k in known}
        extra = {k: v for k, v in d.items() if k not in known and k not in ("measured", "estimated")}
        measured, estimated = d.get("measured"), d.get("estimated")
        return cls(**kw, measured=Measured.from_dict(measured) if measured is not None else None,
                   estimated=Estimated.from_dict(estimated) if estimated is not None else None, extra=extra)

    def with_results(self, measured: Measured, estimated: Estimated) -> "Row":
        return dataclasses.replace(self, measured=measured, estimated=estimated)

    def workload(self) -> Workload:
        """The estimator's Workload of this row ('single' GPU rows are 1-GPU pipelines)."""
        return Workload(int(self.batch), int(self.seq), str(self.dtype), int(self.gpus or 1),
                        "pipeline" if self.parallel in (SINGLE, None) else self.parallel,
                        nodes=int(self.nodes or 1), new_tokens=int(self.new_tokens or 0),
                        experts_implementation=self.experts_implementation or None)


def parallel_label(parallel: str, gpus: int) -> str:
    """A row's parallel mode: 'single' on one GPU, else the case's mode."""
    return parallel if gpus > 1 else SINGLE
