"""Writing a Plan: the text answer (cheapest layouts that meet the targets, why the rest fail),
CSV (one row per layout searched) or JSON, to stdout or a file whose suffix names the format."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields
from pathlib import Path


from .errors import EstimatorError
from .jsonout import strict_dict
from .tables import tabulate
from .outpath import check_writable, write_atomic
from .planner import REASON_TEXT, Plan, PlanCandidate, Range
from .prices import PRICES_FILE, shipped_prices

SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".txt": "table", ".md": "table"}


def _fig(value: float | None, rng: Range | None, spec: str) -> str:
    """'30.5 (27.5-46.5)': a figure and its 10-90 % range."""
    if value is None:
        return ""
    text = format(value, spec)
    return text if rng is None else f"{text} ({format(rng[0], spec)}-{format(rng[1], spec)})"


def _row(c: PlanCandidate, model: bool) -> list[str]:
    return [*([c.model] if model else []), c.device, c.dtype, str(c.gpus), c.layout, str(c.batch),
            _fig(c.usd_per_million_tokens, c.usd_per_million_tokens_range, ".3g"),
            _fig(c.throughput_tokens_per_s, c.throughput_tokens_per_s_range, ",.0f"),
            _fig(c.ttft_ms, c.ttft_ms_range, ".0f"), _fig(c.tpot_ms, c.tpot_ms_range, ".1f"),
            _fig(c.memory_gb, c.memory_gb_range, ".1f"), f"{c.usd_per_gpu_hour:g}"]


HEADERS = ["device", "dtype", "GPUs", "layout", "batch", "$/M tokens", "tokens/s", "TTFT ms", "TPOT ms",
           "GB/GPU", "$/GPU-h"]


def _targets_line(plan: Plan) -> str:
    t = plan.targets
    wants = [f"TTFT <= {t.ttft_ms:g} ms" if t.ttft_ms else "", f"TPOT <= {t.tpot_ms:g} ms" if t.tpot_ms else "",
             f"throughput >= {t.min_throughput_tokens_per_s:,.4g} tokens/s" if t.min_throughput_tokens_per_s else "",
             f"concurrency >= {t.concurrency}" if t.concurrency > 1 else ""]
    return (f"{t.input_tokens} input + {t.output_tokens} output tokens per request; targets: "
            + (", ".join(w for w in wants if w) or "none (cheapest per token)"))


def _prices_line(plan: Plan) -> str:
    shipped = shipped_prices()
    if all(shipped.get(k) == p for k, p in plan.prices.items()):
        return f"prices: {PRICES_FILE.name} (on-demand list prices per GPU-hour, 2025, as remembered: verify)"
    return "prices: " + ", ".join(f"{k} {p.usd_per_gpu_hour:g}" for k, p in plan.prices.items()) + " $/GPU-hour"


def text(plan: Plan, top: int = 10) -> str:
    """The answer in words and tables, per model: the `top` cheapest layouts that meet the
    targets, the count of the others per reason and the `top` closest misses."""
    models = list(dict.fromkeys(c.model for c in plan.candidates))
    out = [_targets_line(plan),
           f"searched {len(plan.candidates)} layouts ({plan.estimates} estimates; {plan.skipped} replica layouts "
           f"skipped: more replicas than needed or failing alike)", _prices_line(plan), ""]
    for model in models:
        meeting = [c for c in plan.meeting() if c.model == model]
        failing = [c for c in plan.failing() if c.model == model]
        out.append(f"{model}: {len(meeting)} of {len(meeting) + len(failing)} layouts meet the targets")
        if meeting:
            out.append("cheapest first (10-90 % range in brackets; cost per million generated tokens):")
            rows = [_row(c, False) + [", ".join(c.at_risk)] for c in meeting[:top]]
            out.append(tabulate(rows, headers=HEADERS + ["at risk"], disable_numparse=True))
        if failing:
            counts = {r: sum(r in c.reasons for c in failing) for r in REASON_TEXT}
            out.append("the others: " + ", ".join(f"{REASON_TEXT[r]} {n}" for r, n in counts.items() if n)
                       + " (a layout may miss several)")
            closest = list({c.device_key: c for c in reversed(failing)}.values())[::-1]   # each device's first
            closest.sort(key=failing.index)
            out.append("closest miss on each device (those that fit first):")
            rows = [_row(c, False) + [c.detail] for c in closest[:top]]
            out.append(tabulate(rows, headers=HEADERS + ["misses"], disable_numparse=True))
        out.append("")
    return "\n".join(out)


def _flat(c: PlanCandidate) -> dict:
    """A candidate as one flat row: ranges as _low / _high, lists joined with ';'."""
    row: dict = {}
    for f in fields(PlanCandidate):
        value = getattr(c, f.name)
        if f.name.endswith("_range"):
            base = f.name.removesuffix("_range")
            row[f"{base}_low"], row[f"{base}_high"] = value if value is not None else (None, None)
        elif isinstance(value, tuple):
            row[f.name] = ";".join(value)
        else:
            row[f.name] = value
        if f.name == "batch":
            row["layout"], row["concurrency"] = c.layout, c.concurrency
    return row


def to_csv(plan: Plan) -> str:
    """One row per layout searched, in search order; None as an empty cell."""
    rows = [_flat(c) for c in plan.candidates]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["model"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def to_dict(plan: Plan) -> dict:
    """targets, counts, prices with their sources, meeting (cheapest first), failing (closest first)."""
    def item(c: PlanCandidate) -> dict:
        return asdict(c) | {"layout": c.layout, "concurrency": c.concurrency}
    return {"targets": asdict(plan.targets), "layouts": len(plan.candidates), "estimates": plan.estimates,
            "skipped": plan.skipped, "reason_counts": plan.reason_counts(),
            "prices": {k: asdict(p) for k, p in plan.prices.items()},
            "meeting": [item(c) for c in plan.meeting()], "failing": [item(c) for c in plan.failing()]}


def to_json(plan: Plan) -> str:
    clean, _ = strict_dict(to_dict(plan))   # inf shortfall of a refusal -> null
    return json.dumps(clean, indent=1, allow_nan=False) + "\n"


def render(plan: Plan, fmt: str, top: int = 10) -> str:
    if fmt == "csv":
        return to_csv(plan)
    if fmt == "json":
        return to_json(plan)
    if fmt == "table":
        return text(plan, top)
    raise EstimatorError(f"unknown output format {fmt!r}: use one of table, csv, json")


def format_for(path: str) -> str:
    """The output format a file name asks for by its suffix."""
    fmt = SUFFIX_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise EstimatorError(f"--out {path}: unknown suffix {Path(path).suffix or '(none)'!r}: use one of "
                             f"{', '.join(SUFFIX_FORMATS)} (a PNG plot is --png FILE)")
    return fmt


def write(plan: Plan, path: str, top: int = 10) -> None:
    write_atomic(check_writable(path, "plan output"), render(plan, format_for(path), top))
