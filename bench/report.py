"""Report rendering: result rows -> reStructuredText tables and a JSON document.

Pure functions (no pytest, no measuring code). The RST layout follows the reference
table: a two-row header (metric name spanning Measured | Estimated | Error), one section
for single-GPU rows and one for multi-GPU rows, column widths taken from the content.
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping

from estimator import outpath

from . import metrics
from .compare import ERROR_BASIS, PAIRED_BASIS, errors, paired, relative_error
from .formats import NA, fmt_error, fmt_fixed2, fmt_int, fmt_sig3  # noqa: F401  (cell formats, re-exported)
from .formats import finite_number as _number
from .grid import grid_lines
from .metrics import Metric
from .report_generation import generation_workload, is_generation
from .rounds import StopRule, round_drift

SCHEMA_VERSION = 1
SUBHEADERS = ("Measured", "Estimated", "Error")


# -- RST helpers ------------------------------------------------------------------------------

def rst_escape(text: Any) -> str:
    """Plain text safe in an RST paragraph or cell: one line, no accidental inline markup."""
    text = " ".join(str(text).split())
    text = re.sub(r"([\\*`|])", r"\\\1", text)
    text = re.sub(r"_(?=\W|$)", r"\\_", text)  # 'name_' would be a hyperlink reference
    if text.endswith("::"):
        text = text[:-1] + "\\:"  # '::' at the end would announce a literal block
    return text


def _section(title: str, char: str) -> list[str]:
    return [title, char * len(title), ""]


def device_label(row: Mapping[str, Any]) -> str:
    """'H100 SXM5 80GB', 'H100 SXM5 80GB x 4', 'H100 SXM5 80GB x 4 (tensor)'."""
    label = str(row.get("device") or NA)
    gpus = _gpus(row)
    if gpus > 1:
        label += f" x {gpus}"
        parallel = row.get("parallel")
        if parallel and parallel != "pipeline":
            label += f" ({parallel})"
    return label


def _gpus(row: Mapping[str, Any]) -> int:
    try:
        return int(row.get("gpus") or 1)
    except (TypeError, ValueError):
        return 1


def _cells(row: Mapping[str, Any], columns: tuple[Metric, ...]) -> list[str]:
    measured = row.get("measured") or {}
    estimated = row.get("estimated") or {}
    cells = [rst_escape(row.get("model") or NA), rst_escape(device_label(row))]
    for m in columns:
        cells += [m.fmt(measured.get(m.key)), m.fmt(estimated.get(m.key)),
                  fmt_error(relative_error(estimated.get(m.key), measured.get(m.key)))]
    return cells


def grid_table(rows: Iterable[Mapping[str, Any]], columns: tuple[Metric, ...] = ()) -> list[str]:
    """Grid table; header = 'Model | Device | <metric> ...' over 'Measured | Estimated | Error'
    (the forward metrics unless `columns` are given, e.g. metrics.generation_table())."""
    cols = columns or metrics.forward()
    top = [("Model", 1, "l"), ("Device", 1, "l")] + [(m.header, 3, "l") for m in cols]
    sub = [(text, 1, "c") for text in ["", ""] + list(SUBHEADERS) * len(cols)]
    body = []
    for row in rows:
        cells = _cells(row, cols)
        body.append([(cells[0], 1, "l"), (cells[1], 1, "l")] + [(text, 1, "r") for text in cells[2:]])
    return grid_lines([top, sub], body)


def _case(row: Mapping[str, Any]) -> str:
    return str(row.get("case_id") or row.get("nodeid") or NA)


def _span(values: list, fmt: str) -> str:
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return low if low == high else f"{low}-{high}"


def table_notes(rows: list[Mapping[str, Any]]) -> list[str]:
    """Below a table: the profile its estimates used (one line, or one per row when they differ)
    and how well each measured median is known (rounds and spread, see bench/rounds.py)."""
    labels = {_case(r): (r.get("estimated") or {}).get("profile") for r in rows}
    labels = {case: str(label) for case, label in labels.items() if label}
    out: list[str] = []
    if len(set(labels.values())) == 1:
        out += [rst_escape(f"Profile: {next(iter(labels.values()))}."), ""]
    elif labels:
        out += ["Profiles:", ""] + [f"- {rst_escape(case)}: {rst_escape(label)}" for case, label in labels.items()] + [""]
    spreads = []
    for r in rows:
        measured = r.get("measured") or {}
        spread, median = _number(measured.get("runtime_ms_spread")), _number(measured.get("runtime_ms"))
        if spread is not None and median:
            spreads.append((_case(r), spread / median, len(measured.get("runtime_ms_rounds") or ())))
    if spreads:
        rule, rel, rounds = StopRule(), [s for _, s, _ in spreads], [n for _, _, n in spreads]
        text = (f"Runtime is the median of {_span(rounds, '{:d}')} rounds per row ({rule.describe()}); "
                f"the half-width of that interval, the row's spread, is {_span([x * 100 for x in rel], '{:.1f}')} %.")
        wide = [f"{case} +-{s * 100:.1f} % ({n} rounds)" for case, s, n in spreads if s > rule.spread]
        out += [rst_escape(text + (" Wider at the cap: " + ", ".join(wide) + "." if wide else "")), ""]
    return out + range_notes(rows)


def range_notes(rows: list[Mapping[str, Any]], key: str = "runtime_ms") -> list[str]:
    """The estimate's 10-90 % range of `key` per row that recorded one (estimator/ranges.py), and
    whether the measured value lies inside; nothing for rows recorded without ranges."""
    items = []
    for r in rows:
        rng = (r.get("estimated") or {}).get(f"{key}_range")
        if not rng or len(rng) != 2 or _number(rng[0]) is None or _number(rng[1]) is None:
            continue
        meas = _number((r.get("measured") or {}).get(key))
        where = "" if meas is None else f", measured {meas:.2f} {'inside' if rng[0] <= meas <= rng[1] else 'outside'}"
        items.append(f"- {rst_escape(_case(r))}: {rng[0]:.2f}-{rng[1]:.2f}{where}")
    if not items:
        return []
    return [rst_escape(f"{metrics.get(key).label} range of the estimate ({metrics.get(key).unit}), its 10th-90th "
                       "percentile from the measured errors of its regime (estimator/ranges.py):"), ""] + items + [""]


def unstable_counts(rows: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(cases marked unstable, cases checked): rows whose ``measured`` has ``unstable``."""
    checked = [r for r in rows if isinstance((r.get("measured") or {}).get("unstable"), bool)]
    return sum(1 for r in checked if r["measured"]["unstable"]), len(checked)


def unstable_notes(rows: list[Mapping[str, Any]]) -> list[str]:
    """The section of the cases whose own rounds moved more than their bound while they ran
    (bench/rounds.py's ``stability``): counted, each with its spread; they are judged all the same."""
    n, checked = unstable_counts(rows)
    if not n:
        return []
    out = _section("Unstable", "-") + [rst_escape(
        f"{n} of {checked} cases unstable: their spread exceeded the bound (their rounds' block medians "
        "moved further apart than the case's runtime bound while it ran). They are judged like the others; "
        "their errors carry that spread."), ""]
    for r in rows:
        m = r.get("measured") or {}
        if m.get("unstable") is not True:
            continue
        drift, bound = _number(m.get("round_drift")), _number(m.get("round_drift_bound"))
        parts = [f"rounds moved {drift * 100:.1f} %" if drift is not None else "rounds moved"]
        if bound is not None:
            parts[0] += f" (bound {bound * 100:.0f} %)"
        spread, median = _number(m.get("runtime_ms_spread")), _number(m.get("runtime_ms"))
        if spread is not None and median:
            parts.append(f"median known within +-{spread / median * 100:.1f} % over "
                         f"{len(m.get('runtime_ms_rounds') or ())} rounds")
        probe = [x for x in m.get("host_cpu_probe_us") or () if _number(x) is not None]
        if len(probe) >= 2:
            parts.append(f"host probe moved {round_drift(probe) * 100:.1f} %")
        out.append(f"- {rst_escape(_case(r))}: {rst_escape(', '.join(parts))}")
    return out + [""]


def _workload(row: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    return row.get("batch"), row.get("seq"), row.get("dtype")


def _workload_line(workload: tuple[Any, Any, Any]) -> str:
    batch, seq, dtype = workload
    if batch is None or seq is None:
        text = "Input Sequence Size = unknown"
    else:
        text = f"Input Sequence Size = :math:`{int(batch)} \\times {int(seq)}`"
    return text + (f", dtype: {rst_escape(dtype)}" if dtype else "")


def _machine_line(machine: Mapping[str, Any] | None) -> str | None:
    if not machine:
        return None
    gpu, count = machine.get("gpu"), machine.get("gpu_count") or 0
    parts = [f"{gpu} x {count}" if gpu and count > 1 else (gpu or "no GPU")]
    for key, prefix in (("driver", "driver "), ("torch", "torch "),
                        ("transformers", "transformers "), ("accelerate", "accelerate ")):
        if machine.get(key):
            parts.append(f"{prefix}{machine[key]}")
    if machine.get("git_commit"):
        parts.append(f"commit {str(machine['git_commit'])[:12]}"
                     + (" (dirty)" if machine.get("dirty") else ""))
    if machine.get("date"):
        parts.append(str(machine["date"]))
    return rst_escape("Machine: " + ", ".join(str(p) for p in parts) + ".")


def render_rst(rows: Iterable[Mapping[str, Any]], machine: Mapping[str, Any] | None = None) -> str:
    """The whole report: title, workload line(s), Single GPU / Multi GPU tables, notes."""
    rows = list(rows)
    shown = [r for r in rows if r.get("status") != "skipped"]
    generated = [r for r in shown if is_generation(r)]
    shown = [r for r in shown if not is_generation(r)]
    workloads = list(dict.fromkeys(_workload(r) for r in shown))
    single_workload = len(workloads) == 1

    out = _section("Benchmark", "=")
    if single_workload:
        out += [_workload_line(workloads[0]), ""]
    out += [f"Error is {ERROR_BASIS}, as a signed percentage. Throughput is in tokens per "
            "second, energy in joules per token; n/a marks a value that is not available.", ""]
    machine_line = _machine_line(machine)
    if machine_line:
        out += [machine_line, ""]

    for title, keep in (("Single GPU", lambda r: _gpus(r) == 1),
                        ("Multi GPU", lambda r: _gpus(r) > 1)):
        part = [r for r in shown if keep(r)]
        if not part:
            continue
        out += _section(title, "-")
        for workload in workloads:
            table_rows = [r for r in part if _workload(r) == workload]
            if not table_rows:
                continue
            if not single_workload:
                out += [_workload_line(workload), ""]
            out += grid_table(table_rows) + [""] + table_notes(table_rows)

    if generated:
        out += _section("Generation", "-")
        out += ["TTFT is ``generate(..., max_new_tokens=1)``; TPOT the mean decode step, (generate - TTFT) "
                "/ (new tokens - 1); memory the peak of the call; energy per generated token.", ""]
        if any(paired(r) for r in generated):
            out += [f"Rows measured with the host probe judge runtime, TTFT, TPOT and throughput on {PAIRED_BASIS} "
                    "(the host moved 1.5-2x within seconds on the lent machines); their Measured and Estimated "
                    "columns show the medians of the rounds.", ""]
        for text in dict.fromkeys(generation_workload(r) for r in generated):
            part = [r for r in generated if generation_workload(r) == text]
            out += [text, ""] + grid_table(part, metrics.generation_table()) + [""] + range_notes(part)
    shown += generated
    out += unstable_notes(shown)
    failed = [r for r in shown if r.get("status") == "failed"]
    notes = (("Outside bounds", [(r, "; ".join(r["out_of_bounds"]))
                                 for r in failed if r.get("out_of_bounds")]),
             ("Failed", [(r, r.get("reason") or "failed")
                         for r in failed if not r.get("out_of_bounds")]),
             ("Skipped", [(r, r.get("reason") or "skipped")
                          for r in rows if r.get("status") == "skipped"]))
    for title, items in notes:
        if items:
            out += _section(title, "-")
            out += [f"- {rst_escape(r.get('case_id') or r.get('nodeid') or NA)}: "
                    f"{rst_escape(reason)}" for r, reason in items]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# -- JSON -------------------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy / torch scalars
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


def results_document(rows: Iterable[Mapping[str, Any]], machine: Mapping[str, Any] | None,
                     config: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready dict: shown rows under 'cases' (each with an 'error' dict), skipped ones under
    'skipped'. Non-finite floats become null."""
    rows = list(rows)
    cases = [dict(r, error=errors(r)) for r in rows if r.get("status") != "skipped"]
    skipped = [dict(r) for r in rows if r.get("status") == "skipped"]
    summary: dict[str, int] = {}
    for r in rows:
        summary[str(r.get("status"))] = summary.get(str(r.get("status")), 0) + 1
    unstable, checked = unstable_counts(cases)
    if checked:   # rows measured since the stability check (issue 25)
        summary |= {"unstable": unstable, "stability_checked": checked}
    return _jsonable({"schema_version": SCHEMA_VERSION, "error_basis": ERROR_BASIS, "paired_error_basis": PAIRED_BASIS,
                      "throughput_unit": "tokens/s", "machine": machine, "config": config,
                      "summary": summary, "cases": cases, "skipped": skipped})


write_atomic = outpath.write_atomic   # temporary file next to the target, then os.replace
