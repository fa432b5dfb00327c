"""``python -m bench.accuracy.ranges`` (or ``python -m bench.accuracy ranges``): the 10th-90th
percentile ranges of ``estimator/ranges.json`` from the recorded rows, and how well they hold.

Every recorded row is re-estimated by the current estimator in each regime it can be estimated
in (``estimator/ranges.py``): with the device's shipped profile and its shipped host times (what
a user without a measurement of their own machine gets), with the host times of the row's own
machine (``estimated.host_us``, the ``run`` host source), and through the transfer model from the
other calibrated device (``bench/accuracy/transfer.py``), with either host. Per regime and metric
the 10th and 90th percentiles of measured / estimated are written, with the coarser regimes
(host source dropped, then the calibration) that estimates fall back to.

How well they hold is counted leave one machine out: the percentiles are fitted on the other
machines' rows and the held-out machine's measured values are checked against those ranges. A
machine is one measuring session (files of one GPU kind and count within ``SESSION_GAP_S`` of
each other; ``reports/measured/MACHINES.md``); the machines whose host times a profile carries are
read from its ``merged_from`` calibrations, so the rows measured on OTHER machines than the
estimate's host times can be told apart.
"""
from __future__ import annotations

import json
import re
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from estimator import Workload, estimate, get_device
from estimator.profile import Profile, profile_for, shipped_profile
from estimator.ranges import (RANGE_METRICS, RANGES_FILE, RangeTable, coarser, load_ranges, parse_ranges,
                              range_field, regime)

from ..report import write_atomic
from . import reference as refmod
from .recorded import MEASURED, ROOT, load_recorded, row_id, row_profile, workload
from .transfer import other_calibrated

COMMAND = "python -m bench.accuracy.ranges"
MIN_ROWS = 10                 # fewer rows of a metric in a regime: fall back to a coarser regime
METRIC_FALLBACK = {"ttft_ms": "runtime_ms", "tpot_ms": "runtime_ms"}   # 4 generation rows recorded
SESSION_GAP_S = 3600          # files of one GPU kind further apart than this: another machine
COVERAGE_TARGET = (0.70, 0.95)
WIDTH_TARGET = {"gpu": 0.10, "host": 0.50}


@dataclass(frozen=True)
class Sample:
    """One recorded row estimated in one regime."""
    row: str                      # row id (bench/accuracy/recorded.py)
    machine: str                  # where it was measured
    regime: str                   # estimator/ranges.py's key
    ratios: Mapping[str, float]   # metric -> measured / estimated
    other_host: bool              # the estimate's host times were measured on another machine


# -- machines -------------------------------------------------------------------------------------

def _when(text: str) -> datetime:
    t = datetime.fromisoformat(str(text))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def sessions(measured: Path = MEASURED) -> dict[str, dict[str, Any]]:
    """file name -> its machine: label, gpu, gpu_count, first and last file date."""
    docs = {p.name: json.loads(p.read_text(encoding="utf-8")).get("machine") or {}
            for p in sorted(measured.glob("*.json"))}
    files = sorted((m.get("gpu"), m.get("gpu_count"), _when(m["date"]), name) for name, m in docs.items() if m.get("date"))
    out: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for gpu, count, when, name in files:
        loan = docs[name].get("loan")   # a file that names its loan (reports/measured/MACHINES.md)
        if current is None or (gpu, count) != (current["gpu"], current["gpu_count"]) \
                or loan != current.get("loan") \
                or when - current["last"] > timedelta(seconds=SESSION_GAP_S):
            label = f"{count} x {str(gpu).removeprefix('NVIDIA ')} {when:%Y-%m-%d %H:%M}"
            current = {"label": label, "gpu": gpu, "gpu_count": count, "first": when, "last": when, "loan": loan}
        current["last"] = when
        out[name] = current
    return out


def calibration_machines(device_key: str, machines: Iterable[Mapping[str, Any]]) -> set[str]:
    """Labels of the machines whose calibrations a shipped profile merged (its host times)."""
    prof = shipped_profile(device_key)
    if prof is None:
        return set()
    entries = prof.raw.get("merged_from") or [f"? {prof.raw.get('date')} x{prof.raw.get('gpu_count')}"]
    gap = timedelta(seconds=SESSION_GAP_S)
    found = set()
    for entry in entries:
        m = re.match(r"\S+ (\S+) x(\d+)$", str(entry))
        if not m:
            continue
        when, count = _when(m.group(1)), int(m.group(2))
        found |= {s["label"] for s in machines if s["gpu"] == prof.raw.get("device_name")
                  and s["gpu_count"] == count and s["first"] - gap <= when <= s["last"] + gap}
    return found


def host_machines(prof: Profile, device_key: str, own: str, machines: list[Mapping[str, Any]]) -> set[str]:
    """The machines whose host times an estimate with `prof` used."""
    if prof.host_source == "run":
        return {own}
    return calibration_machines(prof.transfer.source.key if prof.transfer else device_key, machines)


# -- samples and percentiles ----------------------------------------------------------------------

def _profiles(row: Mapping[str, Any]) -> list[Profile]:
    """The profiles a row is estimated with: shipped and transferred, each with the shipped host
    and (when the row recorded it) its own machine's host."""
    dev = get_device(str(row["device"]))
    own_host = bool((row.get("estimated") or {}).get("host_us"))
    out = []
    for source in (None, other_calibrated(row)):
        if source is None and shipped_profile(dev.key) is None:
            continue
        out.append(profile_for(dev, transfer_from=source))
        if own_host:
            out.append(row_profile(row, source))
    return out


def samples(rows: list[dict[str, Any]] | None = None, measured: Path = MEASURED) -> list[Sample]:
    rows = load_recorded() if rows is None else rows
    where = sessions(measured)
    machines = list({s["label"]: s for s in where.values()}.values())
    out = []
    for row in rows:
        own = where[row["source"]]["label"] if row["source"] in where else str(row.get("machine"))
        for prof in _profiles(row):
            e = estimate(row["model"], row["device"], workload(row), prof)
            ratios = {}
            for m in RANGE_METRICS:
                meas, est = (row.get("measured") or {}).get(m), getattr(e, m)
                if isinstance(meas, (int, float)) and est and meas > 0:
                    ratios[m] = meas / est
            other = own not in host_machines(prof, get_device(str(row["device"])).key, own, machines)
            out.append(Sample(row_id(row), own, regime(e.bound, prof), ratios, other))
    return out


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    v = sorted(values)
    x = (len(v) - 1) * p / 100
    i = int(x)
    return v[i] if i + 1 >= len(v) else v[i] + (v[i + 1] - v[i]) * (x - i)


def fit(data: list[Sample]) -> dict[str, dict[str, dict[str, float]]]:
    """regime (every level of estimator.ranges.coarser) -> metric -> low, high, rows (distinct
    recorded rows: a coarser regime pools estimates of one row made in several finer ones)."""
    pooled: dict[str, dict[str, list[float]]] = {}
    ids: dict[tuple[str, str], set[str]] = {}
    for s in data:
        for key in coarser(s.regime):
            for m, r in s.ratios.items():
                pooled.setdefault(key, {}).setdefault(m, []).append(r)
                ids.setdefault((key, m), set()).add(s.row)
    return {key: {m: {"low": round(percentile(v, 10), 4), "high": round(percentile(v, 90), 4),
                      "rows": len(ids[key, m]), "estimates": len(v)}
                  for m, v in sorted(per.items())} for key, per in sorted(pooled.items())}


def document(data: list[Sample], files: list[str], date: str | None = None) -> dict[str, Any]:
    """The ranges.json document."""
    return {"comment": "10th / 90th percentiles of measured / estimated per regime (bound/calibration/host, "
                       "estimator/ranges.py) over the recorded rows re-estimated by the estimator of the date; "
                       "rows: distinct recorded rows, estimates: (row, estimate) pairs. Written by the command in source; never edit by hand.",
            "date": date or datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "source": {"command": COMMAND, "files": files},
            "percentiles": [10, 90], "min_rows": MIN_ROWS, "metric_fallback": METRIC_FALLBACK,
            "regimes": fit(data)}


def write_ranges(path: Path = RANGES_FILE, measured: Path = MEASURED) -> dict[str, Any]:
    files = sorted(p.name for p in measured.glob("*.json"))
    rows = load_recorded(measured / f for f in files)
    doc = document(samples(rows, measured), [f"reports/measured/{f}" for f in files])
    write_atomic(path, json.dumps(doc, indent=1) + "\n")
    return doc


# -- how well they hold ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    sample: Sample
    metric: str
    inside: bool
    width: float     # high / low - 1 of the range it was checked against


def leave_one_machine_out(data: list[Sample]) -> list[Check]:
    """Each machine's samples checked against ranges fitted on the other machines' samples."""
    out = []
    for machine in sorted({s.machine for s in data}):
        table = parse_ranges(document([s for s in data if s.machine != machine], []))
        for s in (s for s in data if s.machine == machine):
            for m, r in s.ratios.items():
                found = table.lookup(s.regime, m)
                if found:
                    low, high = found[0].around_one   # the range the estimate carries
                    out.append(Check(s, m, low <= r <= high, high / low - 1))
    return out


def summary(checks: list[Check]) -> dict[str, Any]:
    n = len(checks)
    return {"rows": n, "coverage": sum(c.inside for c in checks) / n if n else None,
            "width": statistics.median(c.width for c in checks) if n else None}


def meets(bound: str, s: Mapping[str, Any]) -> bool:
    low, high = COVERAGE_TARGET
    return s["rows"] > 0 and low <= s["coverage"] <= high and s["width"] <= WIDTH_TARGET[bound] + 1e-12


def reference_checks(ref: list[dict[str, Any]], table: RangeTable | None = None) -> list[dict[str, Any]]:
    """The reference table's rows (A5000 / A6000, transferred estimates) against their ranges."""
    out = []
    for r in ref:
        e = estimate(r["model"], r["device"], Workload(r["batch"], r["seq"], refmod.DTYPE, r["gpus"], "pipeline"))
        for m in ("runtime_ms", "memory_gb"):
            rng = getattr(e, range_field(m))
            meas = r[m][0]
            out.append({"row": f"{r['model']} {r['label']}", "gpus": r["gpus"], "metric": m, "measured": meas,
                        "range": rng, "bound": e.bound, "inside": bool(rng) and rng[0] <= meas <= rng[1]})
    return out


# -- reports/accuracy.rst ---------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def regime_table(checks: list[Check]) -> list[list[Any]]:
    """Per regime and metric: rows, coverage and median width (leave one machine out), and the
    same over the rows whose estimate used another machine's host times, against the targets."""
    body = []
    for key, m in sorted({(c.sample.regime, c.metric) for c in checks}, key=lambda k: (k[0], RANGE_METRICS.index(k[1]))):
        part = [c for c in checks if (c.sample.regime, c.metric) == (key, m)]
        every, other = summary(part), summary([c for c in part if c.sample.other_host])
        body.append([key, m, every["rows"], _pct(every["coverage"]), _pct(every["width"]), other["rows"],
                     _pct(other["coverage"]), _pct(other["width"]),
                     "yes" if meets(key.split("/")[0], other) else ("no" if other["rows"] else "-")])
    return body


def bound_table(checks: list[Check]) -> list[list[Any]]:
    """The issue's test: per bound and metric, the rows measured on machines other than the one
    whose host times the estimate used, every regime together."""
    body = []
    for bound in ("gpu", "host"):
        for m in RANGE_METRICS:
            s = summary([c for c in checks if c.sample.other_host and c.metric == m
                         and c.sample.regime.startswith(bound + "/")])
            if s["rows"]:
                body.append([bound, m, s["rows"], _pct(s["coverage"]), _pct(s["width"]), "yes" if meets(bound, s) else "no"])
    return body


def reference_line(ref: list[dict[str, Any]]) -> str:
    if not ref:
        return "The reference table has no rows."
    checks = reference_checks(ref)
    parts = []
    for label, keep in (("single-GPU", lambda c: c["gpus"] == 1), ("multi-GPU", lambda c: c["gpus"] > 1)):
        for m in ("runtime_ms", "memory_gb"):
            part = [c for c in checks if keep(c) and c["metric"] == m]
            if part:
                outside = [c["row"] for c in part if not c["inside"]]
                parts.append(f"{label} {m}: {sum(c['inside'] for c in part)} of {len(part)} inside"
                             + (f" (outside: {', '.join(outside)})" if outside and len(outside) <= 6 else ""))
    return ("The user's reference rows (" + refmod.describe(ref) + "), estimated through the transfer model "
            "with the shipped host times, against the ranges of their regime: " + "; ".join(parts) + ". Their "
            "memory column counts something other than our peak allocated memory and our multi-GPU estimates "
            "of these rows miss by 15-57 % (``seed_reference.rst``): no 10-90 % range of the recorded errors "
            "can hold them.")


def ranges_lines(rows: list[dict[str, Any]] | None = None, ref: list[dict[str, Any]] | None = None,
                 table: RangeTable | None = None) -> list[str]:
    """The accuracy.rst section on the 10-90 % ranges."""
    from .rst import grid
    data = samples(rows)
    checks = leave_one_machine_out(data)
    ref = refmod.parse_reference() if ref is None else ref
    low, high = COVERAGE_TARGET
    out = [f"Every estimate carries a 10th-90th percentile range for each figure (``runtime_ms_range`` ...): "
           "the estimate times the 10th and 90th percentiles of measured / estimated over the recorded rows "
           "of its regime (widened to the estimate itself where both lie on one side of 1, so that every "
           "estimate lies inside its own range), bound (gpu / host) / calibration (the device's own or transferred) / host times "
           "(measured on the machine during the run, or the shipped profile's), in ``estimator/ranges.json``, "
           f"written by ``{COMMAND}``; a regime with fewer than {MIN_ROWS} rows of a figure falls back to a "
           "coarser one, TTFT and TPOT to the runtime of their regime. Every recorded row is estimated in each "
           "regime it can be (shipped profile, the other device's profile through the transfer model, each "
           "with the shipped host times and, where the row recorded them, its own machine's). Coverage is "
           "the share of measured values inside their range and width the median of high / low - 1, both "
           f"leave one machine out ({len({s.machine for s in data})} machines: the ranges are fitted on the "
           "other machines' rows). 'Other host' counts only the rows measured on a machine other than the "
           f"ones whose host times the estimate used. Targets: coverage {_pct(low)}-{_pct(high)}, width at most "
           f"{_pct(WIDTH_TARGET['gpu'])} GPU-bound and {_pct(WIDTH_TARGET['host'])} host-bound.", ""]
    out += grid(["Regime", "Figure", "Rows", "Coverage", "Width", "Other-host rows", "Coverage", "Width", "Meets"],
                regime_table(checks))
    out += ["The issue's test, every regime together, other-host rows only:", ""]
    out += grid(["Bound", "Figure", "Rows", "Coverage", "Width", "Meets"], bound_table(checks))
    return out + [reference_line(ref), ""]


def print_summary() -> None:
    checks = leave_one_machine_out(samples())
    for line in bound_table(checks):
        print("other-host", *line)
    print(reference_line(refmod.parse_reference()))


def main(argv: list[str] | None = None) -> None:
    doc = write_ranges()
    load_ranges.cache_clear()
    print(f"wrote {RANGES_FILE.relative_to(ROOT)}: {len(doc['regimes'])} regimes from {len(doc['source']['files'])} files")
    print_summary()


if __name__ == "__main__":
    main(sys.argv[1:])
