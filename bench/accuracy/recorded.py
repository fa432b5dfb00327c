"""The recorded data set: every measured row of reports/measured/*.json, its id, the design /
held-out split, and its re-estimate by the CURRENT estimator."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from estimator import Workload, estimate, get_device, load_model
from estimator.profile import Profile, profile_for

from ..compare import GENERATION_METRICS, METRICS, PER_ROUND_KEYS, errors, relative_error
from ..row import Row

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"
MEASURED = REPORTS / "measured"

# -- Design rows: measurements that were looked at while building and calibrating the model.
# A row is a design row when its file is in DESIGN_SOURCES (the calibration suite runs) or its
# case id is in DESIGN_CASES, in whichever file it appears (these cases were kernel-profiled,
# see reports/profiles/). Every other row - other workloads, the second machine h100x1-* - is
# held out: it was never used to build the model.
DESIGN_SOURCES: tuple[str, ...] = ("h100x4-16x1024.json", "h100x4-archs.json",
                                   # looked at to fix tensor-parallel host time, float32 attention
                                   # and power, and Gemma 2's logits memory (2026-11-27)
                                   "h200x4-main.json", "h200x4-fp32.json", "h200x4-families.json")
DESIGN_CASES: tuple[str, ...] = ("gpt2-1gpu", "clm-1.1b-1gpu", "opt-1.3b-1gpu", "clm-60m-1gpu-1x128",
                                 # kernel-profiled on 2026-12-03 (loan 5) and fitted to: gpt-oss's attention,
                                 # the masked SDPA at head_dim 256 (estimator/cost.py)
                                 "gpt-oss-20b-H200-1gpu-8x2048-grouped_mm", "gemma-3-4b-text-H200-1gpu-1x16384")


def held_out(row: Mapping[str, Any]) -> bool:
    """True when the row was never used while building the model (see DESIGN_SOURCES/CASES)."""
    return row.get("source") not in DESIGN_SOURCES and row.get("case_id") not in DESIGN_CASES


HELD_OUT: Callable[[Mapping[str, Any]], bool] = held_out


def split(rows: Iterable[Mapping[str, Any]]) -> tuple[list[Any], list[Any]]:
    """(held-out rows, design rows), each in the given order."""
    rows = list(rows)
    return [r for r in rows if held_out(r)], [r for r in rows if not held_out(r)]


def machine_label(machine: Mapping[str, Any]) -> str:
    """'4 x H100 80GB HBM3 machine' from a measured file's machine block."""
    gpu = str(machine.get("gpu") or "unknown GPU").removeprefix("NVIDIA ")
    return f"{machine.get('gpu_count') or 0} x {gpu} machine"


def load_document(name: str) -> dict[str, Any]:
    """One measured file (reports/measured/<name>) as written by ``pytest bench/``."""
    return json.loads((MEASURED / name).read_text(encoding="utf-8"))


def load_recorded(paths: Iterable[str | Path] | None = None) -> list[dict[str, Any]]:
    """Every case with a measured runtime, annotated with `source` (file name) and `machine`."""
    rows = []
    for path in sorted(Path(p) for p in (paths if paths is not None else MEASURED.glob("*.json"))):
        doc = json.loads(path.read_text(encoding="utf-8"))
        label = machine_label(doc.get("machine") or {})
        for case in doc.get("cases") or []:
            # a finite, non-zero measured runtime (relative_error is None otherwise)
            if relative_error(1.0, (case.get("measured") or {}).get("runtime_ms")) is not None:
                rows.append(dict(case, source=path.name, machine=label))
    return rows


def row_id(row: Mapping[str, Any]) -> str:
    return f"{Path(str(row.get('source'))).stem}/{row.get('case_id')}"


def workload(row: Mapping[str, Any]) -> Workload:
    """The estimator's Workload of a recorded row (bench/row.py)."""
    return Row.from_dict(row).workload()


def host_key(r: Row) -> str:
    """The model type the row's host times are recorded under (its experts implementation's)."""
    spec = load_model(r.model)
    return spec.arch.host_keys(spec.arch.with_experts(spec, r.experts_implementation))[0]


def row_profile(row: Mapping[str, Any], transfer_from: str | None = None) -> Profile:
    """The profile a recorded row is re-estimated with: the current shipped (or transferred)
    calibration, with the host times measured on the row's own machine when the row recorded
    them (``estimated.host_us``, written by the suite since 2026-11-27): host time moves 20-50 %
    between machines of one GPU kind, and the suite measures it on the machine at hand."""
    r = Row.from_dict(row)
    prof = profile_for(get_device(str(row["device"])), transfer_from=transfer_from)
    recorded = r.estimated
    used = recorded.host_us if recorded is not None else None
    if not used:
        return prof
    key = host_key(r)
    host = {key: {"per_layer_us": used["per_layer_us"], "fixed_us": used["fixed_us"]}}
    gen = recorded.generate_host_us or None
    return prof.with_host(host, {key: used.get("dispatch_hook_us", 0.0)},
                          f"{prof.source}, host of the row's machine", generate={key: dict(gen)} if gen else None)


def energy_profile(row: Mapping[str, Any], prof: Profile) -> Profile | None:
    """`prof` with the host times measured beside the row's energy window (``energy_host_us``,
    recorded since 2026-12-03), else None: the energy window runs at its own host speed."""
    r = Row.from_dict(row)
    used = r.estimated.energy_host_us if r.estimated is not None else None
    if not used:
        return None
    key = host_key(r)
    if "step_us" in used:   # a generation row: generate's entry
        return prof.with_host({}, {}, f"{prof.source}, host beside the energy window", generate={key: dict(used)})
    return prof.with_host({key: {"per_layer_us": used["per_layer_us"], "fixed_us": used["fixed_us"]}}, {},
                          f"{prof.source}, host beside the energy window")


def per_round_estimates(row: Mapping[str, Any], prof: Profile) -> dict[str, list[float]] | None:
    """A generation row measured with the host probe: its case re-estimated once per timed round
    with that round's generate host entry (``generate_host_us_rounds``), the values the row is
    judged on round by round (bench/compare.py's PAIRED_BASIS); None for other rows."""
    r = Row.from_dict(row)
    entries = r.estimated.generate_host_us_rounds if r.estimated is not None else None
    if not entries:
        return None
    key = host_key(r)
    out: dict[str, list[float]] = {k: [] for k in PER_ROUND_KEYS}
    for entry in entries:
        e = estimate(row["model"], row["device"], workload(row),
                     prof.with_host({}, {}, f"{prof.source}, the round's generate host", generate={key: dict(entry)}))
        for k in out:
            out[k].append(getattr(e, k))
    return out


def reestimate(row: Mapping[str, Any], transfer_from: str | None = None) -> dict[str, Any]:
    """The current estimator's four metrics (+ memory_gb_per_gpu) for a recorded row; with
    `transfer_from`, through the transfer model from that device's calibration. Energy at the
    host speed measured beside the energy window where the row recorded it."""
    prof = row_profile(row, transfer_from)
    e = estimate(row["model"], row["device"], workload(row), prof)
    out = {**{m: getattr(e, m) for m in METRICS}, "memory_gb_per_gpu": list(e.memory_gb_per_gpu)}
    if e.ttft_ms is not None:   # a generation row: its TTFT / TPOT are gated too
        out |= {m: getattr(e, m) for m in GENERATION_METRICS}
    rounds = per_round_estimates(row, prof)
    if rounds is not None:
        out["per_round"] = rounds
    eprof = energy_profile(row, prof)
    if eprof is not None:
        en = estimate(row["model"], row["device"], workload(row), eprof)
        out["energy_j_per_token"] = en.energy_j_per_token
        if en.ttft_ms is not None:
            out["generate_energy_j_per_token"] = en.generate_energy_j_per_token
    return out


def evaluate(rows: Iterable[Mapping[str, Any]],
             transfer_from: Callable[[Mapping[str, Any]], str | None] | None = None) -> list[dict[str, Any]]:
    """Rows with `estimated` replaced by a re-estimate and `error` added; an estimator
    exception leaves estimated/error empty and its message in `estimate_error`.
    `transfer_from(row)` names the device whose calibration is transferred to the row's."""
    out = []
    for row in rows:
        new = dict(row, estimated={}, estimate_error=None)
        try:
            new["estimated"] = reestimate(row, transfer_from(row) if transfer_from else None)
        except Exception as exc:  # reported per row, never fatal for the report
            new["estimate_error"] = f"{type(exc).__name__}: {exc}"
        new["error"] = errors(new)
        out.append(new)
    return out
