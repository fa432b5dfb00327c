"""Accuracy of the CURRENT estimator against the recorded GPU measurements.

Data for the CI gate (tests/test_accuracy_gate.py) and the three generated reports:
``python -m bench.accuracy`` rewrites reports/accuracy.rst, reports/accuracy.png and
reports/seed_reference.rst. No pytest import; matplotlib is needed only for the PNG.
"""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from tabulate import tabulate

from estimator.estimate import estimate
from estimator.workload import Workload

from .compare import ERROR_BASIS, METRICS, errors, out_of_bounds, relative_error
from .report import rst_escape, write_atomic

# -- Gate bounds: largest |(estimated - measured) / measured| the CI gate accepts, per metric.
# These are the targets. Improve the model to meet them; do not loosen them to pass.
GATE_BOUNDS: dict[str, float] = {
    "runtime_ms": 0.05,
    "memory_gb": 0.01,
    "energy_j_per_token": 0.10,
    "throughput_tokens_per_s": 0.05,
}

# -- Known misses: rows whose error is outside GATE_BOUNDS today, each with the largest |error|
# the gate still accepts for it (today's error plus one point). They are listed in
# reports/accuracy.rst; the gate fails on any other row leaving its bound and on any known miss
# getting worse. Rewritten only by `python -m bench.accuracy --record-misses`, which also refuses
# to raise an allowance that exists: an improvement shrinks the list, a regression fails CI.
KNOWN_MISSES_FILE = Path(__file__).resolve().parent.parent / "reports" / "known_misses.json"
MISS_HEADROOM = 0.01


def known_misses() -> dict[str, dict[str, float]]:
    """row id -> {metric: allowed |error|} for today's misses (empty when none recorded)."""
    if not KNOWN_MISSES_FILE.is_file():
        return {}
    return json.loads(KNOWN_MISSES_FILE.read_text())["allowed"]


def allowed_error(row_key: str, metric: str, misses: Mapping[str, Mapping[str, float]] | None = None) -> float:
    """The bound the gate applies to one metric of one row."""
    misses = known_misses() if misses is None else misses
    return max(GATE_BOUNDS[metric], misses.get(row_key, {}).get(metric, 0.0))


# -- Design rows: measurements that were looked at while building and calibrating the model.
# A row is a design row when its file is in DESIGN_SOURCES (the calibration suite runs) or its
# case id is in DESIGN_CASES, in whichever file it appears (these cases were kernel-profiled,
# see reports/profiles/). Every other row - other workloads, the second machine h100x1-* - is
# held out: it was never used to build the model.
DESIGN_SOURCES: tuple[str, ...] = ("h100x4-16x1024.json", "h100x4-archs.json")
DESIGN_CASES: tuple[str, ...] = ("gpt2-1gpu", "clm-1.1b-1gpu", "opt-1.3b-1gpu", "clm-60m-1gpu-1x128")


def held_out(row: Mapping[str, Any]) -> bool:
    """True when the row was never used while building the model (see DESIGN_SOURCES/CASES)."""
    return row.get("source") not in DESIGN_SOURCES and row.get("case_id") not in DESIGN_CASES


HELD_OUT: Callable[[Mapping[str, Any]], bool] = held_out

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"
MEASURED = REPORTS / "measured"
REFERENCE_TABLE = REPORTS / "reference_table.txt"
LABELS = {"runtime_ms": "Runtime", "memory_gb": "Memory",
          "energy_j_per_token": "Energy", "throughput_tokens_per_s": "Throughput"}


# -- rows ---------------------------------------------------------------------------------------

def machine_label(machine: Mapping[str, Any]) -> str:
    """'4 x H100 80GB HBM3 machine' from a measured file's machine block."""
    gpu = str(machine.get("gpu") or "unknown GPU").removeprefix("NVIDIA ")
    return f"{machine.get('gpu_count') or 0} x {gpu} machine"


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


def reestimate(row: Mapping[str, Any]) -> dict[str, Any]:
    """The current estimator's four metrics (+ memory_gb_per_gpu) for a recorded row."""
    parallel = row.get("parallel") or "pipeline"
    w = Workload(int(row["batch"]), int(row["seq"]), str(row["dtype"]), int(row.get("gpus") or 1),
                 "pipeline" if parallel == "single" else parallel)
    e = estimate(row["model"], row["device"], w)
    return {**{m: getattr(e, m) for m in METRICS}, "memory_gb_per_gpu": list(e.memory_gb_per_gpu)}


def evaluate(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows with `estimated` replaced by a re-estimate and `error` added; an estimator
    exception leaves estimated/error empty and its message in `estimate_error`."""
    out = []
    for row in rows:
        new = dict(row, estimated={}, estimate_error=None)
        try:
            new["estimated"] = reestimate(row)
        except Exception as exc:  # reported per row, never fatal for the report
            new["estimate_error"] = f"{type(exc).__name__}: {exc}"
        new["error"] = errors(new)
        out.append(new)
    return out


def _stats(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    line: dict[str, Any] = {"group": label, "rows": len(rows), "mean": {}, "max": {}}
    for m in METRICS:
        vals = [abs(r["error"][m]) for r in rows if r["error"].get(m) is not None]
        line["mean"][m] = statistics.fmean(vals) if vals else None
        line["max"][m] = max(vals) if vals else None
    return line


def group_label(row: Mapping[str, Any]) -> str:
    return f"{row.get('device')} x {row.get('gpus') or 1}"


def summarize(rows: Iterable[Mapping[str, Any]], totals: bool = True) -> list[dict[str, Any]]:
    """Mean and max |error| per metric by (device, gpus), then 'all rows', 'held-out rows' and
    'design rows' lines. Rows without an `error` dict are evaluated first."""
    rows = [dict(r) if "error" in r else evaluate([r])[0] for r in rows]
    keys = sorted({(str(r.get("device")), int(r.get("gpus") or 1)) for r in rows})
    lines = [_stats([r for r in rows if (str(r.get("device")), int(r.get("gpus") or 1)) == k],
                    f"{k[0]} x {k[1]}") for k in keys]
    if totals:
        lines += [_stats(rows, "all rows"), _stats([r for r in rows if held_out(r)], "held-out rows"),
                  _stats([r for r in rows if not held_out(r)], "design rows")]
    return lines


def gate_failures(row: Mapping[str, Any]) -> list[str]:
    """'metric: +x% > y%' for each metric outside GATE_BOUNDS (or the estimator's exception)."""
    if row.get("estimate_error"):
        return [f"estimator raised {row['estimate_error']}"]
    return out_of_bounds(row["error"], GATE_BOUNDS)


def gate_counts(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """metric -> (rows inside the bound, rows outside it); rows without a measured value skipped."""
    counts = {}
    for m in METRICS:
        errs = [r["error"].get(m) for r in rows if (r.get("measured") or {}).get(m) is not None]
        inside = sum(1 for e in errs if e is not None and abs(e) <= GATE_BOUNDS[m] + 1e-12)
        counts[m] = (inside, len(errs) - inside)
    return counts


# -- RST helpers ------------------------------------------------------------------------------

def pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    text = f"{value * 100:{'+' if signed else ''}.1f}%"
    return text.replace("-0.0%", "+0.0%")


class Raw(str):
    """A table cell that already is RST markup (not escaped)."""


def grid(header: list[str], body: list[list[Any]]) -> list[str]:
    """A docutils-clean grid table: cells escaped unless Raw, strings kept as written."""
    cells = [[c if isinstance(c, Raw) else rst_escape(c) for c in row] for row in body]
    return tabulate(cells, [rst_escape(h) for h in header], tablefmt="grid",
                    disable_numparse=True).splitlines() + [""]


def section(title: str, char: str = "-") -> list[str]:
    return [title, char * len(title), ""]


def summary_table(lines: list[dict[str, Any]]) -> list[str]:
    header = ["Group", "Rows"] + [f"{LABELS[m]} {k}" for m in METRICS for k in ("mean", "max")]
    return grid(header, [[l["group"], l["rows"]] + [pct(l[k][m]) for m in METRICS for k in ("mean", "max")]
                         for l in lines])


# -- reports/accuracy.rst and .png ---------------------------------------------------------------

def write_accuracy_rst(rows: list[dict[str, Any]] | None = None, ref: list[dict[str, Any]] | None = None,
                       path: Path = REPORTS / "accuracy.rst") -> Path:
    rows = evaluate(load_recorded()) if rows is None else rows
    ref = parse_reference() if ref is None else ref
    held = [r for r in rows if held_out(r)]
    bounds = ", ".join(f"{LABELS[m].lower()} {pct(b)}" for m, b in GATE_BOUNDS.items())
    out = section("Estimator accuracy", "=") + [
        f"Every recorded row of ``reports/measured/*.json`` ({len(rows)} rows, "
        f"{len({r['machine'] for r in rows})} machines) re-estimated with the current code and the "
        "shipped device profile; the estimates stored in those files (made on the day) are ignored.",
        "",
        f"Error basis: {rst_escape(ERROR_BASIS)}; the tables give the absolute error in percent, "
        "positive errors mean the estimator over-predicts. Memory is the peak allocated on the "
        f"busiest GPU. CI gate bounds (``bench/accuracy.py``): {bounds}.", ""]
    out += section("How rows were split") + [
        "Design rows were looked at while building and calibrating the model: every row of "
        + ", ".join(f"``{s}``" for s in DESIGN_SOURCES) + " (the calibration suite runs), and the "
        "kernel-profiled cases " + ", ".join(f"``{c}``" for c in DESIGN_CASES)
        + " in whichever file they appear. All other rows (other workloads, the second machine "
        f"``h100x1-*``) are held out: {len(held)} held-out and {len(rows) - len(held)} design rows.", ""]
    out += [
        "What the split can and cannot show: every number the estimator uses comes from "
        "microbenchmarks (``reports/calibration/``: kernel grids, access patterns, host overhead of "
        "tiny models, power loops), never from these forward passes. But the *form* of the model "
        "(which kernels exist, the power model, blocking cross-GPU copies, the power-cap slowdown) "
        "was chosen while looking at the errors of all rows, held-out ones included; the held-out "
        "errors are therefore not a clean test of those choices, only of the numbers.", ""]
    out += section("All rows") + summary_table(summarize(rows))
    out += section("Held-out rows") + summary_table(summarize(held, totals=False) + [_stats(held, "held-out rows")])
    out += section("Gate") + grid(
        ["Metric", "Bound", "Pass", "Fail", "Held-out pass", "Held-out fail"],
        [[LABELS[m], pct(GATE_BOUNDS[m]), *gate_counts(rows)[m], *gate_counts(held)[m]] for m in METRICS])
    out += section("Repeatability of the calibration") + repeatability_lines(rows)
    out += section("Reference estimator") + reference_lines(ref)
    bad = [(r, gate_failures(r)) for r in rows]
    bad = [(r, f) for r, f in bad if f]
    out += section("Rows outside the gate bounds") + [
        f"{len(bad)} of {len(rows)} rows have at least one metric outside its bound. Signed errors, "
        "the out-of-bound ones in bold.", ""]
    body = []
    for r, fails in bad:
        cells = [pct(r["error"].get(m), signed=True) for m in METRICS]
        cells = [Raw(f"**{c}**") if any(f.startswith(m) for f in fails) else c for m, c in zip(METRICS, cells)]
        body.append([row_id(r), "held out" if held_out(r) else "design", *cells]
                    + ([r["estimate_error"]] if r.get("estimate_error") else []))
    if body:
        extra = ["Estimator error"] if any(r.get("estimate_error") for r, _ in bad) else []
        width = 6 + len(extra)
        out += grid(["Row", "Split"] + [LABELS[m] for m in METRICS] + extra, [b + [""] * (width - len(b)) for b in body])
    out += section("Estimated vs measured runtime") + [
        ".. image:: accuracy.png", "   :alt: estimated vs measured runtime, log-log, with y = x and a 5% band", ""]
    write_atomic(path, "\n".join(out).rstrip("\n") + "\n")
    return path


CALIBRATION = REPORTS / "calibration"
REPEAT_RUNS = ("h100x1-run2a.json", "h100x1-run2b.json")  # two calibrations, same machine, minutes apart


def repeatability(rows: list[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """How far estimates move between two calibration runs: (rows moved > 2%, max move) for the
    whole profile and for kernel tables + power alone (host overhead held equal)."""
    from estimator.profile import Profile
    from estimator.profile_merge import merge
    a, b = (json.loads((CALIBRATION / n).read_text()) for n in REPEAT_RUNS)
    multi = json.loads((CALIBRATION / "h100x4-run1.json").read_text())

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
            w = Workload(batch=r["batch"], seq=r["seq"], dtype=r["dtype"], gpus=r["gpus"], parallel="pipeline")
            ea, eb = estimate(r["model"], "H100", w, pa), estimate(r["model"], "H100", w, pb)
            moves.append(max(abs(getattr(eb, m) / getattr(ea, m) - 1)
                             for m in ("runtime_ms", "memory_gb", "energy_j_per_token")))
        out[name] = (sum(1 for x in moves if x > 0.02), max(moves))
    return out


def repeatability_lines(rows: list[dict[str, Any]]) -> list[str]:
    rep = repeatability(rows)
    body = [[name, len(rows), moved, pct(worst)] for name, (moved, worst) in rep.items()]
    return [f"Two calibration runs on the same H100 machine, minutes apart (``{REPEAT_RUNS[0]}``, "
            f"``{REPEAT_RUNS[1]}``), each used alone to re-estimate every recorded row. Kernel "
            "tables and power repeat within about 2%; the host overhead of the eager model does not "
            "(the same tiny-model timing differed up to 2x between runs on these shared virtual "
            "machines), which moves host-bound rows. The shipped profile therefore takes the median "
            "host overhead of all five calibration runs (``estimator/profile_merge.py``).", ""] + grid(
        ["Profile part compared", "Rows", "Rows moved > 2%", "Largest move"], body)


def write_accuracy_png(rows: list[dict[str, Any]], path: Path = REPORTS / "accuracy.png") -> Path:
    """Log-log scatter of estimated vs measured runtime, one colour per machine and GPU count
    (held-out rows hollow), the y = x line and a +-5% band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    pts = [r for r in rows if r["error"].get("runtime_ms") is not None]
    groups = sorted({(r["machine"], int(r.get("gpus") or 1)) for r in pts})
    for k, (machine, gpus) in enumerate(groups):
        colour = f"C{k}"
        for design in (True, False):
            sel = [r for r in pts if (r["machine"], int(r.get("gpus") or 1)) == (machine, gpus)
                   and held_out(r) != design]
            if sel:
                ax.scatter([r["measured"]["runtime_ms"] for r in sel], [r["estimated"]["runtime_ms"] for r in sel],
                           s=30, edgecolors=colour, facecolors=colour if design else "none",
                           label=f"{machine}, {gpus} GPU{'s' if gpus > 1 else ''}"
                                 f" ({'design' if design else 'held out'})")
    lo = min(min(r["measured"]["runtime_ms"], r["estimated"]["runtime_ms"]) for r in pts) * 0.8
    hi = max(max(r["measured"]["runtime_ms"], r["estimated"]["runtime_ms"]) for r in pts) * 1.25
    xs = [lo, hi]
    ax.plot(xs, xs, "k-", lw=1, label="y = x")
    ax.fill_between(xs, [x * 0.95 for x in xs], [x * 1.05 for x in xs], color="grey", alpha=0.25, label="±5%")
    ax.set(xscale="log", yscale="log", xlim=xs, ylim=xs, xlabel="measured runtime (ms)",
           ylabel="estimated runtime (ms)", title="Current estimator vs recorded H100 runs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
    return path


# -- the user's reference table ---------------------------------------------------------------

def _num(text: str) -> float:
    return float(text.strip().rstrip("%"))


def parse_reference(path: Path = REFERENCE_TABLE) -> list[dict[str, Any]]:
    """Rows of reports/reference_table.txt: model, device, gpus, and per metric
    (measured, their estimate, their printed error in %; their basis is (est - meas) / est)."""
    text = path.read_text(encoding="utf-8")
    size = re.search(r"(\d+)\s*\\times\s*(\d+)", text)
    batch, seq = (int(size.group(1)), int(size.group(2))) if size else (16, 1024)
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 8 or "NVIDIA" not in cells[1]:
            continue
        dev = re.match(r"(?:NVIDIA\s+)?(.*?)(?:\s+x\s+(\d+))?$", cells[1])
        rows.append({"model": cells[0].replace("AlCrossSim/", "AICrossSim/"), "label": cells[1],
                     "device": dev.group(1), "gpus": int(dev.group(2) or 1), "batch": batch, "seq": seq,
                     "runtime_ms": tuple(_num(c) for c in cells[2:5]),
                     "memory_gb": tuple(_num(c) for c in cells[5:8])})
    return rows


def _basis_stats(ref: list[dict[str, Any]], metric: str) -> dict[str, tuple[float, float]]:
    """'theirs'/'ours' basis -> (mean, max) |error| of THEIR estimates."""
    theirs = [abs((e - m) / e) for m, e, _ in (r[metric] for r in ref)]
    ours = [abs((e - m) / m) for m, e, _ in (r[metric] for r in ref)]
    return {k: (statistics.fmean(v), max(v)) for k, v in (("theirs", theirs), ("ours", ours)) if v}


def reference_lines(ref: list[dict[str, Any]]) -> list[str]:
    """The reference estimator's own figures, recomputed on both bases (for accuracy.rst)."""
    if not ref:
        return ["``reports/reference_table.txt`` has no rows to compare with.", ""]
    body = []
    for label, part in (("single GPU", [r for r in ref if r["gpus"] == 1]),
                        ("multi GPU", [r for r in ref if r["gpus"] > 1]), ("all", ref)):
        for metric in ("runtime_ms", "memory_gb"):
            s = _basis_stats(part, metric)
            if s:
                body.append([label, len(part), LABELS[metric], pct(s["theirs"][0]), pct(s["theirs"][1]),
                             pct(s["ours"][0]), pct(s["ours"][1])])
    rt = _basis_stats(ref, "runtime_ms")
    return [
        f"The user's reference estimator (``reports/reference_table.txt``: {len(ref)} rows, RTX A5000 / "
        "A6000, 1 and 8 GPUs, 16 x 1024) quotes a runtime mean absolute error of 7.9% and a maximum of "
        "41.9%. Those figures are on its own basis, (estimated - measured) / estimated; recomputed from "
        f"the table they are {pct(rt['theirs'][0])} and {pct(rt['theirs'][1])}. On our basis, "
        f"(estimated - measured) / measured, the same estimates give {pct(rt['ours'][0])} and "
        f"{pct(rt['ours'][1])}. They are on different GPUs from our rows, so this is context, "
        "not a like-for-like comparison; see ``seed_reference.rst`` for our estimator on their rows.", ""] + grid(
        ["Rows", "N", "Metric", "Mean (their basis)", "Max (their basis)", "Mean (our basis)", "Max (our basis)"], body)


def write_seed_reference(ref: list[dict[str, Any]] | None = None,
                         path: Path = REPORTS / "seed_reference.rst") -> Path:
    """Our estimator (datasheet mode) on the rows of the user's reference table."""
    ref = parse_reference() if ref is None else ref
    ours: list[dict[str, Any] | str] = []
    for r in ref:
        try:
            e = estimate(r["model"], r["device"], Workload(r["batch"], r["seq"], "float16", r["gpus"], "pipeline"))
            ours.append({"runtime_ms": e.runtime_ms, "memory_gb": e.memory_gb, "profile": e.profile})
        except Exception as exc:  # shown in the row, never fatal
            ours.append(f"{type(exc).__name__}: {exc}")
    out = section("Our estimator on the reference table", "=") + [
        "Rows of the user's reference table (``reports/reference_table.txt``) with our estimator's "
        "prediction next to theirs. Errors are recomputed on our basis, "
        f"{rst_escape(ERROR_BASIS)}; their table prints (estimated - measured) / estimated. Their "
        "\"Throughput\" column holds runtime_ms / 16.384, not tokens per second, so it is not used.", ""]
    profiles = sorted({o["profile"] for o in ours if isinstance(o, dict)})
    out += section("Assumptions") + [
        "- dtype float16 for every row (the table's speeds imply tensor-core fp16/bf16 matmuls);",
        "- eager attention through SDPA, logits for every position, use_cache as ``model(input_ids)`` "
        "leaves it (the model's default);",
        "- multi-GPU rows are accelerate's balanced pipeline split (``device_map``), GPUs run one after another;",
        "- no profile is shipped for these GPUs, so the estimate runs in datasheet mode: "
        + rst_escape("; ".join(profiles) or "n/a") + ";",
        "- our memory is the peak allocated on the busiest GPU (max over GPUs). Their memory column "
        "is evidently defined differently (see the note below).", ""]
    if len(ref) != 24 or sum(r["gpus"] == 1 for r in ref) != 12:
        out += [f"Rows missing: parsed {len(ref)} rows ({sum(r['gpus'] == 1 for r in ref)} single-GPU), "
                "expected 24 (12 single, 12 multi); the table's layout did not match the parser.", ""]
    summary = []
    for metric, unit in (("runtime_ms", "ms"), ("memory_gb", "GB")):
        body, mine, theirs = [], [], []
        for r, o in zip(ref, ours):
            meas, est, _ = r[metric]
            err_theirs = relative_error(est, meas)
            theirs.append(abs(err_theirs))
            if isinstance(o, dict):
                err = relative_error(o[metric], meas)
                mine.append(abs(err))
                cells = [f"{o[metric]:.2f}", pct(err, signed=True)]
            else:
                cells = [o, "n/a"]
            body.append([r["model"], r["label"], f"{meas:.2f}", f"{est:.2f}", pct(err_theirs, signed=True), *cells])
        out += section(f"{LABELS[metric]} ({unit})") + grid(
            ["Model", "Device", "Measured", "Their estimate", "Their error", "Our estimate", "Our error"], body)
        summary.append([LABELS[metric], pct(statistics.fmean(theirs)), pct(max(theirs)),
                        pct(statistics.fmean(mine)) if mine else "n/a", pct(max(mine)) if mine else "n/a",
                        f"{len(mine)} of {len(ref)}"])
    out += section("Summary") + [f"Mean and max absolute error on our basis, {rst_escape(ERROR_BASIS)}.", ""]
    out += grid(["Metric", "Their mean", "Their max", "Our mean", "Our max", "Rows estimated"], summary)
    out += section("Notes on the table") + _table_notes(ref)
    write_atomic(path, "\n".join(out).rstrip("\n") + "\n")
    return path


def _table_notes(ref: list[dict[str, Any]]) -> list[str]:
    notes = ["- The model prefix \"AlCrossSim\" (lower-case L) is read as AICrossSim.",
             "- Their memory barely grows with model size (clm-60m 6.16 GB, clm-1.1b 8.17 GB at 16 x 1024) "
             "and is higher on 8 GPUs than on 1 for the clm models: it is not the per-GPU peak of "
             "allocated memory that our H100 measurements record (clm-60m: 2.0 GB in bf16), so memory "
             "errors here compare different quantities."]
    single = {(r["model"], r["device"]): r["runtime_ms"][0] for r in ref if r["gpus"] == 1}
    ratios = [f"{r['model'].split('/')[-1]} on {r['device']} {r['runtime_ms'][0] / single[r['model'], r['device']]:.2f}"
              for r in ref if r["gpus"] > 1 and (r["model"], r["device"]) in single]
    if ratios:
        notes.append("- Their measured multi-GPU / single-GPU runtime: " + ", ".join(ratios) + ". The OPT "
                     "pipeline rows are far slower than one GPU while the clm rows barely change; our "
                     "pipeline model (hooks plus one activation copy per GPU boundary) predicts no such "
                     "slowdown, so those rows dominate our multi-GPU runtime error.")
    for r in ref:
        for metric in ("runtime_ms", "memory_gb"):
            meas, est, printed = r[metric]
            recomputed = (est - meas) / est * 100
            rounding = 100 * 0.01 / est + 0.01  # values printed to 0.01, errors to 0.01 pp
            if abs(recomputed - printed) > rounding:
                notes.append(f"- {r['model']} on {r['label']}: the printed {LABELS[metric].lower()} error "
                             f"{printed:+.2f}% does not match (est - meas) / est = {recomputed:+.2f}% "
                             "of the printed values.")
    return [rst_escape(n) for n in notes] + [""]


def write_benchmark_rst(rows: list[dict[str, Any]], path: Path = REPORTS / "benchmark_h100.rst") -> Path:
    """The user's table (16 x 1024, six models, 1/2/4 GPUs) from the recorded 4 x H100 run,
    with estimates from the current code instead of those made on the day."""
    from .report import render_rst
    doc = json.loads((MEASURED / "h100x4-16x1024.json").read_text(encoding="utf-8"))
    table = []
    for r in rows:
        if r["source"] != "h100x4-16x1024.json":
            continue
        failing = out_of_bounds(r["error"], {m: allowed_error(row_id(r), m) for m in METRICS})
        table.append(dict(r, status="failed" if failing else "passed", reason="; ".join(failing) or None))
    text = render_rst(table, doc.get("machine"))
    note = ("Measured values: ``reports/measured/h100x4-16x1024.json`` (``pytest bench/`` on a lent "
            "4 x H100 80GB HBM3 machine, 2026-11-26). Estimated values: the current estimator "
            "(``python -m bench.accuracy`` regenerates this file). Rows listed under \"Outside bounds\" "
            "exceed the CI gate's bound for that row (``reports/known_misses.json``).")
    write_atomic(path, text.replace("\nSingle GPU\n", f"\n{note}\n\nSingle GPU\n", 1))
    return path


def record_misses(rows: list[dict[str, Any]], reset: bool = False) -> dict[str, dict[str, float]]:
    """Write today's misses and return them. An existing allowance is never raised unless
    `reset` (--reset-misses: a model change that trades rows; say which in the commit)."""
    old = {} if reset else known_misses()
    allowed: dict[str, dict[str, float]] = {}
    for r in rows:
        for m in METRICS:
            e = r["error"].get(m)
            if e is None or abs(e) <= GATE_BOUNDS[m]:
                continue
            value = round(abs(e) + MISS_HEADROOM, 4)
            if m in old.get(row_id(r), {}):
                value = min(value, old[row_id(r)][m])
            allowed.setdefault(row_id(r), {})[m] = value
    doc = {"comment": "Rows outside bench.accuracy.GATE_BOUNDS today, with the |error| the CI gate "
                      "still accepts for each (today's plus one point). Written by "
                      "`python -m bench.accuracy --record-misses`; shrink it, never grow it.",
           "gate_bounds": GATE_BOUNDS, "allowed": allowed}
    write_atomic(KNOWN_MISSES_FILE, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return allowed


def main(argv: list[str] | None = None) -> None:
    import sys
    argv = sys.argv[1:] if argv is None else argv
    rows = evaluate(load_recorded())
    if "--record-misses" in argv or "--reset-misses" in argv:
        misses = record_misses(rows, reset="--reset-misses" in argv)
        print(f"wrote {KNOWN_MISSES_FILE.relative_to(ROOT)}: {sum(len(v) for v in misses.values())} known misses")
    ref = parse_reference()
    for path in (write_accuracy_rst(rows, ref), write_accuracy_png(rows), write_seed_reference(ref),
                 write_benchmark_rst(rows)):
        print(f"wrote {path.relative_to(ROOT)}")
    for m, (inside, outside) in gate_counts(rows).items():
        print(f"{m}: {inside} pass, {outside} fail (bound {pct(GATE_BOUNDS[m])})")
    for line in summarize(rows)[-3:]:
        print(line["group"], {m: (pct(line["mean"][m]), pct(line["max"][m])) for m in METRICS})


if __name__ == "__main__":
    main()
