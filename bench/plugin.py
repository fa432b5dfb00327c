"""pytest plugin (``-p bench.plugin``): options, fixtures and hooks of the benchmark suite.

Thin glue only; the state lives in session.BenchSession on ``config.stash``. Measuring code
uses the fixtures and never imports the report module.

Fixtures:
    bench_config   -> options.BenchConfig
    bench_recorder -> session.Recorder: ``record(row)``, ``default_name = "..."``, ``paths``
    check_bounds   -> ``check_bounds(row, bounds=None) -> errors``: records the row with its
                      out-of-bounds lines (no separate ``record`` needed); pytest.fail when outside
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import pytest

from . import option_checks, options
from .options import BenchConfig
from .session import BenchSession, Recorder

SESSION_KEY = pytest.StashKey[BenchSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


class _ReportHook:
    """Per-run hook object: pytest_runtest_logreport gets no config, so bind the session here."""

    def __init__(self, session: BenchSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.session.on_report(report)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or config.option.version:
        return  # --help must work even with a bad option value
    bench_config = options.from_pytest_config(config)
    option_checks.check(bench_config)   # values that cannot work together: one line, before collection
    session = BenchSession(bench_config)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(_ReportHook(session), f"bench-session-{id(config)}")


def pytest_unconfigure(config: pytest.Config) -> None:
    config.pluginmanager.unregister(name=f"bench-session-{id(config)}")


def get_session(config: pytest.Config) -> BenchSession:
    """The run's BenchSession."""
    return config.stash[SESSION_KEY]


def get_bench_config(config: pytest.Config) -> BenchConfig:
    """Validated options, e.g. in ``pytest_generate_tests(metafunc)`` via metafunc.config."""
    return get_session(config).config


def pytest_itemcollected(item: pytest.Item) -> None:
    if SESSION_KEY in item.config.stash:
        item.config.stash[SESSION_KEY].note_item(item)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Before the first case is measured: the report folder must take files, or the run stops
    with one line (a case measured for minutes must never be lost to an unwritable folder)."""
    bench = session.config.stash.get(SESSION_KEY, None)
    if bench is not None and bench.bench_items and not session.config.option.collectonly:
        bench.check_writable()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None or not session.written:
        return
    terminalreporter.write_sep("=", "benchmark report")
    terminalreporter.write(session.render())
    for path in session.written:
        terminalreporter.write_line(f"wrote {path}")


@pytest.fixture
def bench_config(request: pytest.FixtureRequest) -> BenchConfig:
    """The validated benchmark options (models, gpus, batch, seq, dtype, bounds, ...)."""
    return get_bench_config(request.config)


@pytest.fixture
def bench_recorder(request: pytest.FixtureRequest) -> Recorder:
    """``bench_recorder.record(row)`` stores this test's result row and rewrites the reports."""
    return Recorder(get_session(request.config), request.node.nodeid)


@pytest.fixture
def check_bounds(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """``check_bounds(row, bounds=None)``: records row (once: a row this test already passed to
    ``bench_recorder.record`` is updated, not written again), fails the test if any error is out
    of bounds (BenchConfig.bounds unless given), else returns the errors dict."""
    session, nodeid = get_session(request.config), request.node.nodeid

    def check(row: Mapping[str, Any],
              bounds: Mapping[str, float] | None = None) -> dict[str, Any]:
        return session.check(nodeid, row, bounds)

    return check
