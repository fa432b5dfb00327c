"""State of one pytest run: recorded rows, their outcome, and the report files.

The files are rewritten after every change (atomically), so an interrupted run still leaves
the cases finished so far on disk. Each run writes its own run file and the report merges every
run's newest result per case id (bench/results.py): no run deletes another's rows.
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

from estimator.errors import EstimatorError
from estimator.outpath import check_writable_dir

from . import report, results
from .machine import machine_info
from .compare import ERROR_BASIS, PAIRED_BASIS, errors, out_of_bounds, paired
from .options import BenchConfig

BENCH_FIXTURES = ("bench_recorder", "check_bounds")
FALLBACK_NAME = "bench"


def _one_line(text: Any, limit: int = 300) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    text = " ".join(lines[:1]) if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _failure_message(longrepr: Any) -> str:
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None) or str(longrepr)
    for prefix in ("Failed: ",):
        message = message[len(prefix):] if message.startswith(prefix) else message
    return _one_line(message)


def _skip_message(longrepr: Any) -> str:
    message = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr
    message = str(message)
    return _one_line(message[len("Skipped: "):] if message.startswith("Skipped: ") else message)


class BenchSession:
    def __init__(self, config: BenchConfig,
                 machine: Callable[[], dict[str, Any]] = machine_info) -> None:
        self.config = config
        self._machine_provider = machine
        self._machine: dict[str, Any] | None = None
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}  # (nodeid, case_id) -> row
        self.bench_items: dict[str, str] = {}  # nodeid -> case id, for tests using our fixtures
        self._default_name: str | None = None
        self.written: list[Path] = []
        self.recorded_any = False
        self.run_id = results.new_run_id()
        self._warned: set[str] = set()

    # -- naming -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.report_name or self._default_name or FALLBACK_NAME

    def set_default_name(self, name: str) -> None:
        """First call wins; ignored once files exist (they keep the name they were written under)."""
        if self._default_name is None and not self.written and name:
            self._default_name = str(name)

    @property
    def paths(self) -> tuple[Path, Path]:
        base = Path(self.config.report_dir) / self.name
        return base.with_name(base.name + ".rst"), base.with_name(base.name + ".json")

    # -- collection ---------------------------------------------------------------------------
    def note_item(self, item: pytest.Item) -> None:
        if any(name in getattr(item, "fixturenames", ()) for name in BENCH_FIXTURES):
            callspec = getattr(item, "callspec", None)
            self.bench_items[item.nodeid] = callspec.id if callspec else item.name

    # -- recording ----------------------------------------------------------------------------
    def _store(self, nodeid: str, row: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Keep a copy of row (status 'recorded'); also says whether this test had already
        stored a row under the same case id."""
        if not isinstance(row, Mapping):
            raise TypeError(f"bench_recorder.record() takes a dict row, got {type(row).__name__}")
        for key in ("measured", "estimated"):
            if row.get(key) is not None and not isinstance(row[key], Mapping):
                raise TypeError(f"row[{key!r}] must be a dict of metric -> value")
        stored = copy.deepcopy(dict(row))
        stored["case_id"] = str(stored.get("case_id") or self.bench_items.get(nodeid) or nodeid)
        stored.update(nodeid=nodeid, status="recorded", reason=None)
        key = (nodeid, stored["case_id"])
        seen = key in self.rows
        self.rows[key] = stored
        self.recorded_any = True
        return stored, seen

    def record(self, nodeid: str, row: Mapping[str, Any]) -> dict[str, Any]:
        stored, _ = self._store(nodeid, row)
        self.write()
        return stored

    def check(self, nodeid: str, row: Mapping[str, Any],
              bounds: Mapping[str, float] | None = None) -> dict[str, float | None]:
        """Record row with its out-of-bounds lines, then pytest.fail with one line per metric
        outside the bounds. A row this test already recorded is updated in memory only: the
        test's outcome (on_report, right after the call) writes the files once more anyway."""
        row_errors = errors(row)
        bad = out_of_bounds(row_errors, self.config.bounds if bounds is None else bounds)
        stored, seen = self._store(nodeid, dict(row, out_of_bounds=bad))
        if not seen:
            self.write()
        if bad:
            basis = PAIRED_BASIS if paired(row) else ERROR_BASIS
            pytest.fail(f"{stored['case_id']}: estimate outside bounds, error = {basis}:\n"
                        + "\n".join(bad), pytrace=False)
        return row_errors

    def on_report(self, report_: pytest.TestReport) -> None:
        outcome_phase = report_.when == "call" or (report_.when == "setup" and report_.skipped)
        if not outcome_phase:
            return
        rows = [r for (nodeid, _), r in self.rows.items() if nodeid == report_.nodeid]
        if rows:
            for row in rows:
                if hasattr(report_, "wasxfail"):
                    row["status"], row["reason"] = "failed", f"xfail: {report_.wasxfail}"
                elif report_.skipped:
                    row["status"], row["reason"] = "skipped", _skip_message(report_.longrepr)
                elif report_.failed:
                    row["status"] = "failed"
                    row["reason"] = ("; ".join(row.get("out_of_bounds") or ())
                                     or _failure_message(report_.longrepr))
                else:
                    row["status"], row["reason"] = "passed", None
            self.write()
        elif report_.skipped and report_.nodeid in self.bench_items:
            case_id = self.bench_items[report_.nodeid]
            self.rows[(report_.nodeid, case_id)] = {
                "case_id": case_id, "nodeid": report_.nodeid, "status": "skipped",
                "reason": _skip_message(report_.longrepr)}
            self.write()

    # -- output -------------------------------------------------------------------------------
    def machine(self) -> dict[str, Any]:
        if self._machine is None:
            self._machine = self._machine_provider()
        return self._machine

    def check_writable(self) -> None:
        """Before any case is measured: the report folder must take files (pytest.UsageError)."""
        runs = Path(self.config.report_dir) / results.RUNS_DIR
        try:
            check_writable_dir(self.config.report_dir, "--bench-report-dir", create=False)
            check_writable_dir(runs, "the run folder of --bench-report-dir", create=False)
            if self.config.report_name:
                check_writable_dir(results.runs_folder(self.config.report_dir, self.config.report_name),
                                   "the run folder of --bench-report-dir", create=False)
        except EstimatorError as exc:
            raise pytest.UsageError(str(exc)) from None

    def warn(self, message: str) -> None:
        """One warning per message per run (the files are rewritten after every case)."""
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message, stacklevel=2)

    @staticmethod
    def _reportable(row: dict[str, Any]) -> None:
        """Raises if the report cannot render `row` (a row of an older run file)."""
        report.render_rst([row], None)
        json.dumps(report.results_document([row], None, {}), allow_nan=False)

    def merged_rows(self) -> list[dict[str, Any]]:
        """Every run's newest result per case id, this run's rows last (bench/results.py)."""
        folder = results.runs_folder(self.config.report_dir, self.name)
        return results.merge(results.load_runs(folder, skip=self.run_id, warn=self.warn, check=self._reportable),
                             self.rows.values())

    def render(self) -> str:
        return report.render_rst(self.merged_rows(), self.machine())

    def write(self) -> None:
        if not self.recorded_any:  # nothing measured yet: no files
            return
        rst_path, json_path = self.paths
        folder = results.runs_folder(self.config.report_dir, self.name)
        try:
            results.adopt_legacy_report(folder, json_path)
            results.write_run(folder, self.run_id, self.rows.values(), self.machine(), self.config.as_dict(),
                              report._jsonable)
        except OSError as exc:   # the report below still holds this run's rows
            self.warn(f"cannot write the run file in {folder} ({exc.strerror or exc}); this run's rows are "
                      f"only in {json_path}")
        rows = self.merged_rows()
        document = report.results_document(rows, self.machine(), self.config.as_dict())
        for path, text in ((json_path, json.dumps(document, indent=2, allow_nan=False) + "\n"),
                           (rst_path, report.render_rst(rows, self.machine()))):
            try:
                report.write_atomic(path, text)
            except OSError as exc:   # a full disk after an earlier run: stop with one line
                self.stop_unwritable(path, exc)
        self.written = [rst_path, json_path]

    @staticmethod
    def stop_unwritable(path: Path, exc: OSError) -> None:
        """End the run (pytest.exit: one line, no INTERNALERROR from a hook): a report file cannot
        be written. write_atomic replaces a file only once its new text is complete, so every file
        already there stays as it was; further cases would be measured for nothing."""
        pytest.exit(f"cannot write the report {path} ({exc.strerror or exc}): the run stops here; the "
                    "files already there are as they were, this run's rows since its last write are not in them",
                    returncode=pytest.ExitCode.INTERRUPTED)


class Recorder:
    """What the ``bench_recorder`` fixture hands a test: ``record(row)`` and ``default_name``."""

    def __init__(self, session: BenchSession, nodeid: str) -> None:
        self._session = session
        self.nodeid = nodeid

    def record(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Store a copy of row for this test (status 'recorded') and rewrite the report files."""
        return self._session.record(self.nodeid, row)

    @property
    def default_name(self) -> str:
        return self._session.name

    @default_name.setter
    def default_name(self, name: str) -> None:
        self._session.set_default_name(name)

    @property
    def paths(self) -> tuple[Path, Path]:
        """(rst, json) the report is written to."""
        return self._session.paths
