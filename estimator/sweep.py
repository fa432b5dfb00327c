"""Sweeps: one estimate per case of a grid of models x devices x workloads, one typed row each.

    from estimator.sweep import SweepSpec, run_sweep, parse_ints
    rows = run_sweep(SweepSpec(models=("facebook/opt-6.7b",), devices=("all",), batches=parse_ints("1:64:x2")))

A case the estimator refuses (seq beyond the model's positions, a head count tensor parallel cannot
split, generation over several GPUs) is a row whose ``error`` holds the one-line reason; unknown
model or device names are a mistake in the whole sweep and raise EstimatorError at once.
"""
from __future__ import annotations

import itertools
from itertools import islice
from dataclasses import dataclass
from typing import Iterator

from .api import Estimate, estimate
from .device import DeviceSpec, get_device, list_devices
from .errors import EstimatorError
from .many import OVERFLOW, estimate_many
from .model import ModelSpec, load_model
from .workload import PARALLEL_MODES, Workload, normalize_dtype, normalize_parallel

MAX_VALUES = 10_000  # values one axis may expand to (1:10**9 is a typo, not a sweep)
SORT_KEYS = {"runtime": ("runtime_ms", False), "throughput": ("throughput_tokens_per_s", True),
             "energy": ("energy_j_per_token", False)}
RANGE_HELP = ("comma list of values or ranges, stop included: 1,8,16 | 1:8 (every integer) | "
              "1:64:4 (step 4: 1,5,...,61) | 1:64:x2 (times 2: 1,2,4,...,64)")


def parse_ints(text: str, name: str = "value", minimum: int = 1) -> tuple[int, ...]:
    """'1,8,16', '1:8', '1:64:4', '1:64:x2' or a mix ('1,4:8') -> the integers, in order given,
    duplicates dropped; EstimatorError naming `name` for anything else."""
    values: list[int] = []
    for item in str(text).split(","):
        item = item.strip()
        try:
            values += _expand(item)
        except ValueError:
            raise EstimatorError(f"bad {name} {item!r}: {RANGE_HELP}") from None
        if len(values) > MAX_VALUES:
            raise EstimatorError(f"{name} {text!r} expands to more than {MAX_VALUES} values")
    bad = [v for v in values if v < minimum]
    if bad:
        raise EstimatorError(f"{name} must be at least {minimum}, got {bad[0]}")
    return tuple(dict.fromkeys(values))


def _expand(item: str) -> list[int]:
    parts = item.split(":")
    if len(parts) == 1:
        return [int(parts[0])]
    if len(parts) not in (2, 3):
        raise ValueError(item)
    start, stop = int(parts[0]), int(parts[1])
    step = parts[2].strip() if len(parts) == 3 else "1"
    if stop < start:
        raise ValueError(item)
    if step.lower().startswith("x"):
        factor = int(step[1:])
        if factor < 2 or start < 1:
            raise ValueError(item)
        out = [start]
        while out[-1] * factor <= stop and len(out) <= MAX_VALUES:
            out.append(out[-1] * factor)
        return out
    if int(step) < 1 or (stop - start) // int(step) >= MAX_VALUES:
        raise ValueError(item)
    return list(range(start, stop + 1, int(step)))


def parse_names(text: str) -> tuple[str, ...]:
    """'a, b,c' -> ('a', 'b', 'c'): names in order, empty items and duplicates dropped."""
    return tuple(dict.fromkeys(n.strip() for n in str(text).split(",") if n.strip()))


@dataclass(frozen=True)
class SweepRow:
    """One case of a sweep: its workload, the estimate's headline numbers, or why it was refused."""

    model: str
    device: str
    dtype: str
    batch: int
    seq: int
    gpus: int
    parallel: str              # pipeline | data | tensor, or single for one GPU
    new_tokens: int            # 0: a plain forward; N: model.generate of N new tokens
    runtime_ms: float | None = None
    memory_gb: float | None = None            # busiest GPU, 10^9 bytes
    memory_usable_gb: float | None = None     # what torch can allocate on the device (fits compares with it)
    # memory_gb by part (Estimate.memory_breakdown_gb of the busiest GPU): they add up to it
    weights_gb: float | None = None
    kv_cache_gb: float | None = None
    activations_gb: float | None = None        # a layer's working set at the peak, or 0 (then logits_gb)
    logits_gb: float | None = None             # the LM head's working set at the peak, or 0
    workspace_gb: float | None = None          # cuBLAS
    input_ids_gb: float | None = None
    energy_j_per_token: float | None = None
    throughput_tokens_per_s: float | None = None
    ttft_ms: float | None = None               # generation only
    tpot_ms: float | None = None               # generation only
    fits: bool | None = None
    bound: str | None = None                   # host | gpu
    error: str | None = None                   # the estimator's one-line refusal; then no numbers

    @property
    def ok(self) -> bool:
        return self.error is None


PART_FIELDS = ("weights_gb", "kv_cache_gb", "activations_gb", "logits_gb", "workspace_gb", "input_ids_gb")


@dataclass(frozen=True)
class SweepSpec:
    """The axes of a sweep; every combination is one case. dtype None: the model's own, else
    float16; devices may hold "all" (every device in the database); parallel only matters for
    gpus > 1 (one GPU is one case, parallel "single")."""

    models: tuple[str, ...]
    devices: tuple[str, ...]
    dtypes: tuple[str | None, ...] = (None,)
    batches: tuple[int, ...] = (16,)
    seqs: tuple[int, ...] = (1024,)
    gpus: tuple[int, ...] = (1,)
    parallels: tuple[str, ...] = ("pipeline",)
    new_tokens: tuple[int, ...] = (0,)
    profile: str | None = None
    transfer_from: str | None = None

    def resolved_models(self) -> list[ModelSpec]:
        return [load_model(m) for m in dict.fromkeys(self.models)]

    def resolved_devices(self) -> list[DeviceSpec]:
        names = [n for d in self.devices for n in ([x.key for x in list_devices()] if d.lower() == "all" else [d])]
        return list({dev.key: dev for dev in map(get_device, names)}.values())

    def resolved_parallels(self) -> tuple[str, ...]:
        modes = [m for p in self.parallels for m in (PARALLEL_MODES if p == "all" else (p,))]
        return tuple(dict.fromkeys(normalize_parallel(m) for m in modes))

    def resolved_dtypes(self, spec: ModelSpec) -> tuple[str, ...]:
        return tuple(dict.fromkeys(normalize_dtype(d) if d else (spec.dtype or "float16") for d in self.dtypes))


def workloads(spec: SweepSpec, model: ModelSpec) -> Iterator[tuple[str, int, int, int, str, int]]:
    """(dtype, batch, seq, gpus, parallel, new_tokens) of every case for `model`; 1 GPU once, as 'single'."""
    parallels = spec.resolved_parallels()
    for dtype, batch, seq, gpus, new in itertools.product(spec.resolved_dtypes(model), spec.batches, spec.seqs,
                                                          spec.gpus, spec.new_tokens):
        for mode in (("single",) if gpus == 1 else parallels):
            yield dtype, batch, seq, gpus, mode, new


def estimate_row(model: ModelSpec, device: DeviceSpec, dtype: str, batch: int, seq: int, gpus: int,
                 parallel: str, new_tokens: int = 0, profile: str | None = None,
                 transfer_from: str | None = None) -> SweepRow:
    """One case as a SweepRow; a refusal (EstimatorError, float overflow) is a row with its reason."""
    case = (dtype, batch, seq, gpus, parallel, new_tokens)
    try:
        result: Estimate | EstimatorError = estimate(model, device, case_workload(*case), profile, transfer_from)
    except EstimatorError as exc:
        result = exc
    except OverflowError:
        result = EstimatorError(OVERFLOW)
    return case_row(model, device, case, result)


def estimate_rows(model: ModelSpec, device: DeviceSpec, cases: list[tuple], profile: str | None = None,
                  transfer_from: str | None = None) -> list[SweepRow]:
    """estimate_row of every case (dtype, batch, seq, gpus, parallel, new_tokens), priced together
    by estimate_many; where the profile or the transfer source itself is refused, case by case
    as before (each row then names the reason estimate gives for it)."""
    built: list[Workload | EstimatorError] = []
    for case in cases:
        try:
            built.append(case_workload(*case))
        except EstimatorError as exc:
            built.append(exc)
    try:
        priced = iter(estimate_many(model, device, [w for w in built if isinstance(w, Workload)], profile,
                                    transfer_from))
    except EstimatorError:
        return [estimate_row(model, device, *case, profile=profile, transfer_from=transfer_from) for case in cases]
    return [case_row(model, device, case, w if isinstance(w, EstimatorError) else next(priced))
            for case, w in zip(cases, built)]


def case_workload(dtype: str, batch: int, seq: int, gpus: int, parallel: str, new_tokens: int = 0) -> Workload:
    """The Workload of a sweep case ('single': one GPU)."""
    return Workload(batch=batch, seq=seq, dtype=dtype, gpus=gpus,
                    parallel="pipeline" if parallel == "single" else parallel, new_tokens=new_tokens)


def case_row(model: ModelSpec, device: DeviceSpec, case: tuple, result: Estimate | EstimatorError) -> SweepRow:
    """The SweepRow of a case and its estimate, or of its refusal."""
    dtype, batch, seq, gpus, parallel, new_tokens = case
    head = dict(model=model.name, device=device.name, dtype=dtype, batch=batch, seq=seq, gpus=gpus,
                parallel=parallel, new_tokens=new_tokens, memory_usable_gb=device.memory_usable_gb)
    if isinstance(result, EstimatorError):
        return SweepRow(**head, error=str(result))
    est = result
    return SweepRow(**head, runtime_ms=est.runtime_ms, memory_gb=est.memory_gb, energy_j_per_token=est.energy_j_per_token,
                    throughput_tokens_per_s=est.throughput_tokens_per_s, ttft_ms=est.ttft_ms, tpot_ms=est.tpot_ms,
                    fits=est.fits, bound=est.bound, **busiest_parts(est))


def busiest_parts(est: Estimate) -> dict[str, float]:
    """The memory parts of the estimate's busiest GPU as SweepRow fields (weights_gb, ...)."""
    per_gpu = est.memory_gb_per_gpu
    if len(est.memory_breakdown_gb) != len(per_gpu):   # generation over a pipeline: no parts (yet)
        return {}
    parts = est.memory_breakdown_gb[per_gpu.index(max(per_gpu))]
    return {f"{k}_gb": v for k, v in parts.items()}


def largest_parts(row: SweepRow, n: int = 2) -> list[tuple[str, float]]:
    """The `n` largest memory parts of a row, largest first, as (part, GB); none for a refused row."""
    parts = [(f.removesuffix("_gb"), getattr(row, f)) for f in PART_FIELDS if getattr(row, f) is not None]
    return sorted(parts, key=lambda p: -p[1])[:n]


STREAM_CASES = 20_000   # cases priced together per chunk of a streamed sweep: bounded memory, arrays still long


def iter_sweep(spec: SweepSpec, chunk: int = STREAM_CASES) -> Iterator[SweepRow]:
    """Every case of `spec` in run_sweep's order, priced `chunk` cases at a time (estimate_many is
    exact to estimate, so the chunking changes no number): a million-case sweep streamed to a file
    holds one chunk of rows at a time."""
    models, devices = spec.resolved_models(), spec.resolved_devices()
    for m in models:
        for d in devices:
            cases = iter(workloads(spec, m))
            while batch := list(islice(cases, chunk)):
                yield from estimate_rows(m, d, batch, spec.profile, spec.transfer_from)


def run_sweep(spec: SweepSpec) -> list[SweepRow]:
    """Every case of `spec`, models outermost, then devices, then the workload axes in field order."""
    return list(iter_sweep(spec))


def sort_rows(rows: list[SweepRow], by: str) -> list[SweepRow]:
    """Rows best first by runtime (lowest), throughput (highest) or energy (lowest); refused rows
    and rows without the metric (energy without a power model) last, in their order."""
    if by not in SORT_KEYS:
        raise EstimatorError(f"unknown sort key {by!r}: use one of {', '.join(SORT_KEYS)}")
    field, descending = SORT_KEYS[by]
    have = [r for r in rows if getattr(r, field) is not None]
    rest = [r for r in rows if getattr(r, field) is None]
    return sorted(have, key=lambda r: getattr(r, field), reverse=descending) + rest
