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


def merge(base: dict, runs: list[dict]) -> dict:
    """`base` with host overhead pooled over all runs and multi-GPU parts from the multi-GPU runs."""
    out = dict(base)
    every = [base, *runs]
    pools: dict[str, dict[str, list[float]]] = {}
    for run in every:
        for family, h in (run.get("host") or {}).items():
            pool = pools.setdefault(_code(family), {"per_layer_us": [], "fixed_us": []})
            pool["per_layer_us"].append(h["per_layer_us"])
            pool["fixed_us"].append(h["fixed_us"])
    out["host"] = {family: {k: round(statistics.median(v), 3) for k, v in pools[_code(family)].items()}
                   | {"samples": len(pools[_code(family)]["per_layer_us"])}
                   for family in (base.get("host") or {})}
    multi = [r for r in every if r.get("gpu_count", 0) > 1]
    if multi:
        first = multi[0]
        out["p2p"], out["allreduce"] = first.get("p2p", []), first.get("allreduce", {})
        hooks = [r["dispatch"] for r in multi if r.get("dispatch")]
        out["dispatch"] = {f: round(statistics.median(h[f] for h in hooks if f in h), 3) for f in hooks[0]} if hooks else {}
    out["merged_from"] = [f"{r.get('hostname', '?')} {r.get('date', '?')} x{r.get('gpu_count')}" for r in every]
    return out


def main(argv: list[str]) -> None:
    """OUT BASE [RUN ...]: merge the profile JSON files into OUT."""
    out, base, *rest = argv
    merged = merge(json.loads(Path(base).read_text()), [json.loads(Path(p).read_text()) for p in rest])
    Path(out).write_text(json.dumps(merged, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
