"""Writing sweep rows and fit answers: a readable table (tabulate), CSV or JSON, to stdout or a
file whose suffix names the format (.csv, .json, else the table)."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO, Iterable, Sequence


from .errors import EstimatorError
from .fit import FitAnswer
from .jsonout import strict_dict
from .tables import tabulate
from .outpath import check_writable, write_output, write_atomic_stream
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
    write_csv(items, out, kind)
    return out.getvalue()


def write_csv(items: Iterable[SweepRow] | Iterable[FitAnswer], handle: IO[str], kind: type) -> int:
    """to_csv's text into `handle`, item by item; returns how many. Fields read by name, not by
    dataclasses.asdict, whose deep copy of every value took half of a streamed sweep's time."""
    names = [f.name for f in fields(kind)]
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(names)
    count = 0
    for item in items:
        writer.writerow(["" if v is None else v for v in map(item.__getattribute__, names)])
        count += 1
    return count


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


STREAMED_FORMATS = ("csv", "json")   # written row by row; a table needs every row for its widths


def stream(rows: Iterable[SweepRow], handle: IO[str], fmt: str) -> int:
    """`rows` written to `handle` one at a time as CSV or JSON, the same text render() gives for
    the list of them; returns how many. Nothing holds more than the row at hand."""
    if fmt == "csv":
        return write_csv(rows, handle, SweepRow)
    if fmt != "json":
        raise EstimatorError(f"a streamed sweep is written as {' or '.join(STREAMED_FORMATS)}, not {fmt}")
    names, count = [f.name for f in fields(SweepRow)], 0
    for row in rows:   # to_json's layout: a list of indented objects, one per row
        clean, _ = strict_dict(dict(zip(names, map(row.__getattribute__, names))))
        text = json.dumps(clean, indent=1, allow_nan=False).replace("\n", "\n ")
        handle.write(("[\n " if count == 0 else ",\n ") + text)
        count += 1
    handle.write("\n]\n" if count else "[]\n")
    return count


def write_stream(rows: Iterable[SweepRow], path: str, fmt: str | None = None) -> int:
    """stream() into `path` (its suffix names csv or json), atomically: an interrupted or failed
    sweep leaves the old file, if any, as it was; returns the number of rows."""
    fmt = fmt or format_for(path)
    counted: list[int] = []
    # no check_writable probe here: the command checks its outputs before it prices anything, and a
    # probe file made now, just as streaming starts, was left behind by a Ctrl-C landing in it
    write_atomic_stream(path, lambda handle: counted.append(stream(rows, handle, fmt)), "sweep output")
    return counted[0]


def write(items: Sequence[SweepRow] | Sequence[FitAnswer], path: str, kind: type) -> None:
    """Write `items` to `path`, atomically, in the format its suffix names."""
    fmt = format_for(path)
    write_output(check_writable(path, "sweep output"), render(items, fmt, kind), "sweep output")
