"""Append-only results: every run writes its own file; the table merges them.

A second ``pytest bench/`` into the same report folder used to replace the first run's JSON and
RST, so a partial run (one model, ``-k``) silently deleted the full table. Now each run writes
``<report dir>/runs/<report name>/<run id>.json`` (its own rows, machine and options) and the
report ``<name>.json`` / ``<name>.rst`` is rebuilt from every run file: per case id the newest
result wins, so no run deletes another's rows. A skip (no GPU, too few GPUs) is not a result:
it replaces only an older skip, never a measured row. A report written before run files
existed is kept as the oldest run. Files are written atomically; an unreadable run file is left
alone and skipped (it never costs the other runs their rows).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from estimator.outpath import write_atomic

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


def adopt_legacy_report(folder: Path, report_json: Path) -> None:
    """A report written before run files existed becomes the oldest run, so its rows survive."""
    if folder.is_dir() and any(folder.glob("*.json")):
        return
    try:
        old = json.loads(report_json.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(old, dict):
        return
    rows = [{k: v for k, v in r.items() if k != "error"} for key in ("cases", "skipped")
            for r in old.get(key) or () if isinstance(r, dict)]
    if rows:
        write_run(folder, LEGACY_RUN, rows, old.get("machine"), old.get("config") or {}, lambda d: d)


def load_runs(folder: Path, skip: str | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """(run id, rows) of every readable run file in `folder`, oldest first; `skip` = this run's id."""
    runs = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        if path.stem == skip:
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rows = doc.get("rows") if isinstance(doc, dict) else None
        if isinstance(rows, list):
            runs.append((path.stem, [r for r in rows if isinstance(r, dict) and r.get("case_id")]))
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
