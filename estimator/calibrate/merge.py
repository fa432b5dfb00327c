"""Assemble the shipped profile of a device from several calibration runs of the same kind.

Kernel tables come from the newest single run (``base``). Host overhead is noisy on shared
machines (the same run repeated minutes apart differed up to 2x for one family), so it is the
median over every run, pooling model types whose eager code is the same (Llama, Mistral and
Qwen2 share one decoder layer). Multi-GPU parts (p2p, all-reduce, dispatch hooks) come from the
runs that had several GPUs. Only calibration runs enter here, never forward-pass measurements.
Usage: python -m estimator.calibrate.merge OUT BASE [RUN ...]
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from ..families import code_family as _code
from ..profile_schema import (FIRST_MULTI_GPU, MEDIAN_MULTI_GPU, POOLED_MEDIAN, PROVENANCE, HostTimes, empty_of,
                              sections)


def _pooled(every: list[dict], base: dict, name: str) -> dict:
    """Per model type of `base`: the median of each host time over every run of its code family."""
    pools: dict[str, dict[str, list[float]]] = {}
    for run in every:
        for family, h in (run.get(name) or {}).items():
            pool = pools.setdefault(_code(family), {k: [] for k in HostTimes._fields})
            for k in HostTimes._fields:
                pool[k].append(h[k])
    return {family: {k: round(statistics.median(v), 3) for k, v in pools[_code(family)].items()}
            | {"samples": len(pools[_code(family)][HostTimes._fields[0]])}
            for family in (base.get(name) or {})}


def merge(base: dict, runs: list[dict]) -> dict:
    """`base` with host overhead pooled over all runs and multi-GPU parts from the multi-GPU runs
    (each section as profile_schema.ProfileData declares its merge)."""
    out = dict(base)
    every = [base, *runs]
    for section in sections(merge=POOLED_MEDIAN):
        out[section.name] = _pooled(every, base, section.name)
    multi = [r for r in every if r.get("gpu_count", 0) > 1]
    if multi:
        first = multi[0]
        for section in sections(merge=FIRST_MULTI_GPU):
            out[section.name] = first.get(section.name, empty_of(section))
        for section in sections(merge=MEDIAN_MULTI_GPU):
            hooks = [r[section.name] for r in multi if r.get(section.name)]
            out[section.name] = ({f: round(statistics.median(h[f] for h in hooks if f in h), 3) for f in hooks[0]}
                                 if hooks else {})
    for section in sections(merge=PROVENANCE):
        out[section.name] = [f"{r.get('hostname', '?')} {r.get('date', '?')} x{r.get('gpu_count')}" for r in every]
    return out


def main(argv: list[str]) -> None:
    """OUT BASE [RUN ...]: merge the profile JSON files into OUT."""
    out, base, *rest = argv
    merged = merge(json.loads(Path(base).read_text()), [json.loads(Path(p).read_text()) for p in rest])
    Path(out).write_text(json.dumps(merged, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
