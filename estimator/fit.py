"""Fit questions over a sweep: the fewest GPUs (and the fastest parallel mode at that count) that
hold a workload, and the largest batch that still fits there.

"Fits" is the estimate's ``fits``: the busiest GPU's peak memory against what torch can allocate
on the device (``memory_usable_gb``). The largest batch is searched over powers of two (1, 2, 4,
... up to MAX_BATCH), then bisected between the last that fits and the first that does not;
peak memory grows with the batch, so that is exact. Data parallel batches step in multiples of
the GPU count (each replica takes batch / gpus). When the requested batch fits on none of the
counts, the answer is the largest smaller batch that fits (on the count and mode that hold the
most; fewest GPUs, then fastest, on a tie), with ``requested_fits`` False and the reason saying so.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

from .device import DeviceSpec
from .model import ModelSpec
from .sweep import SweepRow, SweepSpec, estimate_row

MAX_BATCH = 1 << 16        # the batch search stops here: "at least 65536"
FIT_GPUS = (1, 2, 4, 8)    # GPU counts tried when the sweep names none


@dataclass(frozen=True)
class FitAnswer:
    """For one model x device x dtype x workload: the fewest GPUs that fit and the largest batch there."""

    model: str
    device: str
    dtype: str
    seq: int
    new_tokens: int
    batch: int                     # the batch the GPU count was found for
    gpus: int | None               # None: fits on none of the counts tried
    parallel: str | None           # the fastest mode that fits at that count (single for one GPU)
    memory_gb: float | None        # busiest GPU at that count and mode
    memory_usable_gb: float
    runtime_ms: float | None
    max_batch: int | None          # the largest batch that fits at (gpus, parallel)
    max_batch_capped: bool = False  # True: max_batch is MAX_BATCH and still fits (at least that)
    reason: str | None = None      # why the requested batch does not fit: the least memory needed, or the refusal
    requested_fits: bool = True    # False: `batch` fits nowhere; gpus, parallel, memory_gb, runtime_ms
                                   # and max_batch are then for the largest smaller batch that fits


def _largest_batch(fits: Callable[[int], bool], step: int, known: int) -> tuple[int, bool]:
    """Largest multiple of `step` (<= MAX_BATCH) with fits(batch), given fits(known); (batch, capped)."""
    lo, k = known // step, 1
    while k <= lo:
        k *= 2
    while k * step <= MAX_BATCH and fits(k * step):
        lo, k = k, k * 2
    if k * step > MAX_BATCH:
        cap = MAX_BATCH // step
        if fits(cap * step):
            return cap * step, True
        k = cap
    hi = k                          # fits(lo * step), not fits(hi * step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid * step) else (lo, mid)
    return lo * step, False


def fit_answers(spec: SweepSpec, gpu_counts: tuple[int, ...] | None = None) -> list[FitAnswer]:
    """One FitAnswer per model x device x dtype x seq x new_tokens x batch of `spec`; GPU counts
    tried: `gpu_counts`, else FIT_GPUS, smallest first; modes: the spec's parallel modes."""
    counts = sorted(set(gpu_counts or FIT_GPUS))
    parallels = spec.resolved_parallels()
    answers = []
    for model, device in itertools.product(spec.resolved_models(), spec.resolved_devices()):
        for dtype, seq, new, batch in itertools.product(spec.resolved_dtypes(model), spec.seqs, spec.new_tokens,
                                                        spec.batches):
            answers.append(_answer(spec, model, device, dtype, seq, new, batch, counts, parallels))
    return answers


def _answer(spec: SweepSpec, model: ModelSpec, device: DeviceSpec, dtype: str, seq: int, new: int, batch: int,
            counts: list[int], parallels: tuple[str, ...]) -> FitAnswer:
    def row(b: int, gpus: int, mode: str) -> SweepRow:
        return estimate_row(model, device, dtype, b, seq, gpus, mode, new, spec.profile, spec.transfer_from)

    head = dict(model=model.name, device=device.name, dtype=dtype, seq=seq, new_tokens=new, batch=batch,
                memory_usable_gb=device.memory_usable_gb)
    tried: list[SweepRow] = []
    for gpus in counts:
        rows = [row(batch, gpus, mode) for mode in (("single",) if gpus == 1 else parallels)]
        tried += rows
        fitting = [r for r in rows if r.ok and r.fits]
        if fitting:
            best = min(fitting, key=lambda r: r.runtime_ms)
            step = gpus if best.parallel == "data" else 1
            top, capped = _largest_batch(lambda b: (r := row(b, gpus, best.parallel)).ok and bool(r.fits),
                                         step, batch)
            return FitAnswer(**head, gpus=gpus, parallel=best.parallel, memory_gb=best.memory_gb,
                             runtime_ms=best.runtime_ms, max_batch=top, max_batch_capped=capped)
    why = _why_not(tried, counts)
    smaller = _largest_smaller(row, batch, counts, parallels)
    if smaller is None:
        return FitAnswer(**head, gpus=None, parallel=None, memory_gb=None, runtime_ms=None, max_batch=None,
                         reason=why, requested_fits=False)
    r = smaller
    return FitAnswer(**head, gpus=r.gpus, parallel=r.parallel, memory_gb=r.memory_gb, runtime_ms=r.runtime_ms,
                     max_batch=r.batch, requested_fits=False,
                     reason=f"batch {batch} {why}; batch {r.batch} fits on {r.gpus} x {r.parallel}")


def _largest_smaller(row: Callable[[int, int, str], SweepRow], batch: int, counts: list[int],
                     parallels: tuple[str, ...]) -> SweepRow | None:
    """The row of the largest batch below `batch` that fits, over every count and mode (fewest GPUs,
    then fastest, on a tie); None when not even the smallest batch fits."""
    best: SweepRow | None = None
    for gpus in counts:
        for mode in ("single",) if gpus == 1 else parallels:
            step = gpus if mode == "data" else 1
            def fits(b: int) -> bool:
                r = row(b, gpus, mode)
                return r.ok and bool(r.fits)
            if step >= batch or not fits(step):
                continue
            lo, hi = 1, -(-batch // step)          # fits(lo * step); hi * step >= batch fits nowhere
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if fits(mid * step) else (lo, mid)
            r = row(lo * step, gpus, mode)
            if best is None or (r.batch, -r.gpus, -r.runtime_ms) > (best.batch, -best.gpus, -best.runtime_ms):
                best = r
    return best


def _why_not(tried: list[SweepRow], counts: list[int]) -> str:
    estimated = [r for r in tried if r.ok]
    if estimated:
        least = min(estimated, key=lambda r: r.memory_gb)
        return (f"fits on none of {', '.join(map(str, counts))} GPUs: needs at least {least.memory_gb:.1f} GB "
                f"per GPU ({least.gpus} x {least.parallel}), {least.memory_usable_gb:g} GB usable")
    return tried[-1].error or "no estimate"
