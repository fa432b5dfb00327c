"""Append-only results: every run writes its own file; the table merges them.

A second ``pytest bench/`` into the same report folder used to replace the first run's JSON and
RST, so a partial run (one model, ``-k``) silently deleted the full table. Now each run writes
``<report dir>/runs/<report name>/<run id>.json`` (its own rows, machine and options) and the
report ``<name>.json`` / ``<name>.rst`` is rebuilt from every run file: per case id the newest
result wins, so no run deletes another's rows. A skip (no GPU, too few GPUs) is not a result:
it replaces only an older skip, never a measured row. A report written before run files
existed is kept as the oldest run, also when the run folder holds only files it cannot read.
Files are written atomically. A run file that cannot be read (not JSON, nested too deep, not a
run) or a row of the wrong shape is left alone on disk and skipped with a warning that names the
file: it never costs the other runs their rows, and no file but this run's own is rewritten.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from estimator.errors import EstimatorError
from estimator.jsonin import read_json
from estimator.outpath import write_atomic

Warn = Callable[[str], None]

RUNS_DIR = "runs"
LEGACY_RUN = "00000000T000000-legacy"   # sorts before every timestamped run


def new_run_id() -> str:
    """UTC start time (sortable) and process id: unique per run, newest sorts last."""
    return f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%S%f}-{os.getpid()}"


def runs_folder(report_dir: Path, name: str) -> Path:
    return Path(report_dir) / RUNS_DIR / name


def write_run(folder: Path, run_id: str, rows: Iterable[Mapping[str, Any]],
              machine: Mapping[str, Any] | None, config: Mapping[str, Any], jsonable: Any) -> Path:
    """This run's own file (rows as recorded, with status); returns its path."""
    path = folder / f"{run_id}.json"
    document = jsonable({"run": run_id, "machine": machine, "config": config, "rows": list(rows)})
    write_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return path


def _readable_runs(folder: Path) -> bool:
    return any(_read_run(path)[0] is not None for path in sorted(folder.glob("*.json"))) if folder.is_dir() else False


def adopt_legacy_report(folder: Path, report_json: Path) -> None:
    """A report written before run files existed becomes the oldest run, so its rows survive
    (also beside run files that cannot be read: they hold none of its rows)."""
    if (folder / f"{LEGACY_RUN}.json").exists() or _readable_runs(folder) or not report_json.is_file():
        return
    try:
        old = read_json(report_json, f"report {report_json}")
    except EstimatorError:
        return
    if not isinstance(old, dict):
        return
    rows = [{k: v for k, v in r.items() if k != "error"} for key in ("cases", "skipped")
            for r in old.get(key) or () if isinstance(r, dict)]
    if rows:
        write_run(folder, LEGACY_RUN, rows, old.get("machine"), old.get("config") or {}, lambda d: d)


ROW_TEXT = ("case_id", "status", "reason", "model", "device", "device_short", "parallel", "dtype", "nodeid")
ROW_BLOCKS = ("measured", "estimated")


def row_problem(row: Any) -> str | None:
    """Why `row` (from a run file) is not a row this store wrote, or None: an object with a
    text case id, text fields as text, and measured / estimated objects."""
    if not isinstance(row, dict):
        return f"a row is {type(row).__name__}, not an object"
    if not isinstance(row.get("case_id"), str) or not row["case_id"]:
        return "a row has no text case_id"
    for key in ROW_TEXT:
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"row {row['case_id']!r:.60}: {key} is {type(row[key]).__name__}, not text"
    for key in ROW_BLOCKS:
        if row.get(key) is not None and not isinstance(row[key], dict):
            return f"row {row['case_id']!r:.60}: {key} is {type(row[key]).__name__}, not an object"
    if row.get("out_of_bounds") is not None and not (
            isinstance(row["out_of_bounds"], list) and all(isinstance(x, str) for x in row["out_of_bounds"])):
        return f"row {row['case_id']!r:.60}: out_of_bounds is not a list of text"
    return None


def _read_run(path: Path) -> tuple[list[Any] | None, str | None]:
    """(rows, None) of a run file, or (None, why it cannot be read)."""
    try:
        doc = read_json(path, "run file")
    except EstimatorError as exc:
        return None, str(exc).removeprefix("run file: ")
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        return None, "not a run (no list of rows)"
    return rows, None


def load_runs(folder: Path, skip: str | None = None, warn: Warn = lambda _: None,
              check: Callable[[dict[str, Any]], None] | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """(run id, rows) of every readable run file in `folder`, oldest first; `skip` = this run's id.
    A file that cannot be read, and each row of the wrong shape (or that `check` raises on), is
    left out with one `warn` line naming the file; the file itself is never touched."""
    runs = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        if path.stem == skip:
            continue
        rows, why = _read_run(path)
        if rows is None:
            warn(f"skipping run file {path}: {why}; it is left as it is")
            continue
        kept = []
        for row in rows:
            problem = row_problem(row)
            if problem is None and check is not None:
                try:
                    check(row)
                except Exception as exc:  # noqa: BLE001 - any row the report cannot render
                    problem = f"row {row['case_id']!r:.60} cannot be reported ({type(exc).__name__}: {exc})"
            if problem:
                warn(f"skipping a row of run file {path}: {problem}; the file is left as it is")
            else:
                kept.append(row)
        runs.append((path.stem, kept))
    return runs


def merge(older: list[tuple[str, list[dict[str, Any]]]], current: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Newest result per case id over the older runs, then this run's rows; a skip replaces only
    a skip. Rows from older runs carry their ``run`` id; order is first appearance."""
    merged: dict[str, dict[str, Any]] = {}
    for run_id, rows in [*older, (None, list(current))]:
        for row in rows:
            case = str(row["case_id"])
            kept = merged.get(case)
            if kept is not None and row.get("status") == "skipped" and kept.get("status") != "skipped":
                continue
            merged[case] = dict(row, run=run_id) if run_id else dict(row)
    return list(merged.values())
