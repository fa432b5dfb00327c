"""The work budget of a sweep and of fit questions: counted before any estimate, refused beyond it.

An estimate takes about 0.2-0.9 ms, so ``--batch 1:10000 --seq 1:10000`` (10^8 cases) or every
device of the database over a wide grid would run for hours with no answer. A sweep counts its
cases from its axes alone (nothing estimated yet), says the count, and refuses beyond
``MAX_CASES`` in one line; ``--max-cases N`` raises the limit. Fit questions count the
estimates they may run: every GPU count and mode tried, plus the largest-batch search.
"""
from __future__ import annotations

import math

from .errors import EstimatorError
from .sweep import SweepSpec
from .workload import normalize_dtype

MAX_CASES = 200_000   # about a minute of estimates: beyond it, a sweep is most likely a typo


def _dtype_count(spec: SweepSpec) -> int:
    for dtype in spec.dtypes:
        if dtype is not None:
            normalize_dtype(dtype)   # a bad name refused now, before the count is stated
    return len(dict.fromkeys(spec.dtypes))   # None: each model's own, one per model


def _grid(spec: SweepSpec) -> int:
    """Models x devices x dtypes x batches x seqs x new tokens; every name is resolved (an
    unknown model, device, dtype or parallel mode refused) before anything is counted."""
    spec.resolved_parallels()
    return (len(spec.resolved_models()) * len(spec.resolved_devices()) * _dtype_count(spec)
            * len(spec.batches) * len(spec.seqs) * len(spec.new_tokens))


def _modes(spec: SweepSpec, gpus: int) -> int:
    return 1 if gpus == 1 else len(spec.resolved_parallels())


def sweep_cases(spec: SweepSpec) -> int:
    """The number of rows run_sweep(spec) gives (at most: a model named twice counts once there)."""
    return _grid(spec) * sum(_modes(spec, g) for g in spec.gpus)


def fit_answers_count(spec: SweepSpec) -> int:
    """The number of answers fit_answers(spec) gives."""
    return _grid(spec)


def fit_cases(spec: SweepSpec, gpu_counts: tuple[int, ...], max_batch: int) -> int:
    """At most how many estimates fit_answers(spec, gpu_counts) runs: per answer, every GPU
    count and mode, plus the largest-batch search (doubling, then bisecting up to max_batch)."""
    search = 2 * (math.ceil(math.log2(max_batch)) + 1)
    return _grid(spec) * (sum(_modes(spec, g) for g in set(gpu_counts)) + search)


def check_cases(count: int, limit: int | None, what: str = "sweep", unit: str = "cases") -> int:
    """`count` when within `limit` (None: MAX_CASES); EstimatorError in one line otherwise, or
    when there is nothing to estimate."""
    limit = MAX_CASES if limit is None else limit
    if count == 0:
        raise EstimatorError(f"the {what} has no case to estimate: an axis names nothing")
    if count > limit:
        raise EstimatorError(f"the {what} has {count:,} {unit}, more than the limit of {limit:,} (about "
                             f"{count * 0.4e-3 / 60:,.0f} min of estimates): narrow its ranges, or raise "
                             f"the limit with --max-cases {count}")
    return count
