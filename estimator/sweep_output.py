"""Writing sweep rows and fit answers: a readable table (tabulate), CSV or JSON, to stdout or a
file whose suffix names the format (.csv, .json, else the table)."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Sequence


from .errors import EstimatorError
from .fit import FitAnswer
from .jsonout import strict_dict
from .tables import tabulate
from .outpath import check_writable, write_output
from .sweep import SweepRow, largest_parts

FORMATS = ("table", "csv", "json")
SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".txt": "table", ".md": "table", ".rst": "table"}


PARAM_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def format_params(count: float) -> str:
    """A parameter count readably: 30.5B, 6.7B, 125M, 60.3M, 350K; a count that rounds to 1000 of
    one unit is written in the next (999.9M: 1.0B, not 1000M)."""
    for i, (scale, unit) in enumerate(PARAM_UNITS):
        if count >= scale:
            value = count / scale
            text = f"{value:.0f}" if value >= 99.95 else f"{value:.1f}"
            if text == "1000" and i > 0:
                return f"{count / PARAM_UNITS[i - 1][0]:.1f}{PARAM_UNITS[i - 1][1]}"
            return f"{text}{unit}"
    return f"{count:.0f}"


def _num(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _fits(row: SweepRow) -> str:
    if row.fits is None:
        return ""
    return "yes" if row.fits else f"NO (> {row.memory_usable_gb:g} GB)"


def _parts(row: SweepRow) -> str:
    """The two largest parts of the busiest GPU's memory: 'weights 2.6, kv_cache 3.2'."""
    return ", ".join(f"{name} {gb:.2f}" for name, gb in largest_parts(row))


def sweep_table(rows: Sequence[SweepRow]) -> str:
    """One line per row; generation columns only when some row generates; refused rows say why;
    the memory column's two largest parts (every part: --csv / --json)."""
    generation = any(r.new_tokens for r in rows)
    headers = ["model", "device", "dtype", "batch", "seq", "gpus", "parallel", *(["new"] if generation else []),
               "runtime ms", "GB/GPU", "largest parts GB", "J/token", "tokens/s", *(["TTFT ms", "TPOT ms"] if generation else []),
               "fits", "bound", "refused"]
    table = []
    for r in rows:
        table.append([r.model, r.device, r.dtype, r.batch, r.seq, r.gpus, r.parallel,
                      *([r.new_tokens] if generation else []),
                      _num(r.runtime_ms, ".2f"), _num(r.memory_gb, ".2f"), _parts(r),
                      _num(r.energy_j_per_token, ".4g"),
                      _num(r.throughput_tokens_per_s, ",.0f"),
                      *([_num(r.ttft_ms, ".2f"), _num(r.tpot_ms, ".2f")] if generation else []),
                      _fits(r), r.bound or "", r.error or ""])
    return tabulate(table, headers=headers, disable_numparse=True)


def fit_table(answers: Sequence[FitAnswer]) -> str:
    """One line per answer: the fewest GPUs and mode that fit, their memory, the largest batch there."""
    generation = any(a.new_tokens for a in answers)
    headers = ["model", "device", "dtype", "seq", *(["new"] if generation else []), "batch", "fewest GPUs",
               "parallel", "GB/GPU", "usable GB", "runtime ms", "largest batch", "why not"]
    table = [[a.model, a.device, a.dtype, a.seq, *([a.new_tokens] if generation else []), a.batch,
              "" if a.gpus is None else a.gpus, a.parallel or "", _num(a.memory_gb, ".2f"),
              f"{a.memory_usable_gb:g}", _num(a.runtime_ms, ".2f"),
              "" if a.max_batch is None else (f">= {a.max_batch}" if a.max_batch_capped else str(a.max_batch)),
              a.reason or ""] for a in answers]
    return tabulate(table, headers=headers, disable_numparse=True)


def to_csv(items: Sequence[SweepRow] | Sequence[FitAnswer], kind: type) -> str:
    """Every field of `kind` as a column; None as an empty cell."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(kind)], lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow({k: "" if v is None else v for k, v in asdict(item).items()})
    return out.getvalue()


def to_json(items: Sequence[SweepRow] | Sequence[FitAnswer]) -> str:
    """A strict JSON list of objects, one per item (non-finite numbers as null)."""
    clean, _ = strict_dict({"items": [asdict(i) for i in items]})
    return json.dumps(clean["items"], indent=1, allow_nan=False) + "\n"


def render(items: Sequence[SweepRow] | Sequence[FitAnswer], fmt: str, kind: type) -> str:
    """`items` (all SweepRow or all FitAnswer, `kind`) in format table | csv | json."""
    if fmt == "csv":
        return to_csv(items, kind)
    if fmt == "json":
        return to_json(items)
    if fmt == "table":
        return (fit_table(items) if kind is FitAnswer else sweep_table(items)) + "\n"  # type: ignore[arg-type]
    raise EstimatorError(f"unknown output format {fmt!r}: use one of {', '.join(FORMATS)}")


def format_for(path: str) -> str:
    """The output format a file name asks for by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise EstimatorError(f"--out {path}: unknown suffix {suffix or '(none)'!r}: use one of "
                             f"{', '.join(SUFFIX_FORMATS)} (a PNG plot is --plot METRIC --png FILE)")
    return SUFFIX_FORMATS[suffix]


def write(items: Sequence[SweepRow] | Sequence[FitAnswer], path: str, kind: type) -> None:
    """Write `items` to `path`, atomically, in the format its suffix names."""
    fmt = format_for(path)
    write_output(check_writable(path, "sweep output"), render(items, fmt, kind), "sweep output")
