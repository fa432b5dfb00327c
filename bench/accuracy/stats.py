"""Statistics over evaluated rows: mean / max |error| per group, gate pass / fail counts, and
how far estimates move between two calibration runs of the same machine."""
from __future__ import annotations

import json
import statistics
from typing import Any, Iterable, Mapping

from estimator import estimate

from .. import metrics
from .gate import within
from .recorded import REPORTS, evaluate, split, workload

CALIBRATION = REPORTS / "calibration"
REPEAT_RUNS = ("h100x1-run2a.json", "h100x1-run2b.json")  # two calibrations, same machine, minutes apart
REPEAT_MULTI_GPU = "h100x4-run1.json"  # the multi-GPU sections both are merged with
REPEAT_METRICS = ("runtime_ms", "memory_gb", "energy_j_per_token")
MOVED = 0.02  # a row "moved" when a metric changed by more than this


def group_stats(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """{'group', 'rows', 'mean': {metric: |error|}, 'max': {...}}; None where no row has a value."""
    line: dict[str, Any] = {"group": label, "rows": len(rows), "mean": {}, "max": {}}
    for m in metrics.keys(metrics.gated()):
        vals = [abs(r["error"][m]) for r in rows if r["error"].get(m) is not None]
        line["mean"][m] = statistics.fmean(vals) if vals else None
        line["max"][m] = max(vals) if vals else None
    return line


def _group_key(row: Mapping[str, Any]) -> tuple[str, int]:
    return str(row.get("device")), int(row.get("gpus") or 1)


def group_label(row: Mapping[str, Any]) -> str:
    return f"{row.get('device')} x {row.get('gpus') or 1}"


def summarize(rows: Iterable[Mapping[str, Any]], totals: bool = True) -> list[dict[str, Any]]:
    """Mean and max |error| per metric by (device, gpus), then 'all rows', 'held-out rows' and
    'design rows' lines. Rows without an `error` dict are evaluated first."""
    rows = [dict(r) if "error" in r else evaluate([r])[0] for r in rows]
    lines = [group_stats([r for r in rows if _group_key(r) == k], f"{k[0]} x {k[1]}")
             for k in sorted({_group_key(r) for r in rows})]
    if totals:
        held, design = split(rows)
        lines += [group_stats(rows, "all rows"), group_stats(held, "held-out rows"),
                  group_stats(design, "design rows")]
    return lines


def gate_counts(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """metric -> (rows inside the bound, rows outside it); rows without a measured value skipped."""
    counts = {}
    for m in metrics.keys(metrics.gated()):
        errs = [r["error"].get(m) for r in rows if (r.get("measured") or {}).get(m) is not None]
        inside = sum(1 for e in errs if within(e, m))
        counts[m] = (inside, len(errs) - inside)
    return counts


def calibration_run(name: str) -> dict[str, Any]:
    return json.loads((CALIBRATION / name).read_text())


def repeatability(rows: list[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """How far estimates move between two calibration runs: (rows moved > 2%, max move) for the
    whole profile and for kernel tables + power alone (host overhead held equal)."""
    from estimator.calibrate.merge import merge
    from estimator.profile import Profile
    a, b = (calibration_run(n) for n in REPEAT_RUNS)
    multi = calibration_run(REPEAT_MULTI_GPU)

    def profile(run: dict, host: dict) -> Profile:
        merged = merge(run, [multi])
        merged["host"] = host
        return Profile(merged, "repeatability")
    variants = {"whole profile": (profile(a, a["host"]), profile(b, b["host"])),
                "kernels and power (host equal)": (profile(a, a["host"]), profile(b, a["host"]))}
    out = {}
    for name, (pa, pb) in variants.items():
        moves = []
        for r in rows:
            w = workload(dict(r, parallel="pipeline"))
            ea, eb = estimate(r["model"], r["device"], w, pa), estimate(r["model"], r["device"], w, pb)
            moves.append(max(abs(getattr(eb, m) / getattr(ea, m) - 1) for m in REPEAT_METRICS))
        out[name] = (sum(1 for x in moves if x > MOVED), max(moves))
    return out
