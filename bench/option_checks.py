"""Checks of the parsed options that no single value's parser can make, run before collection.

options.py parses each value alone; what it cannot see ends a run late and badly: a path longer
than the file system takes (an OSError "File name too long" inside a hook: INTERNALERROR), node
options that can never meet (every case skipped, exit 0), a profile file that cannot be read
(each case fails instead of the run stopping). ``check`` raises ``pytest.UsageError`` with one
line naming the option, before anything is collected or measured.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from estimator.errors import EstimatorError

from . import results
from .options import BenchConfig

NAME_MAX_FALLBACK = 255    # bytes of one path component (Linux, macOS, most file systems)
PATH_MAX_FALLBACK = 4096   # bytes of a whole path (Linux)
# The longest file name the report writes in a folder beside `<name>`: write_atomic's temporary
# file ".<name>.json.<8 random characters>.tmp" (estimator/outpath.py), 19 bytes more than the name.
TEMP_FILE_EXTRA = len("..json.") + 8 + len(".tmp")
RUN_FILE = f"{results.new_run_id()}.json"   # a run file's name, as long as any run's


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:   # a name too long: Path.is_dir raises for that one
        return False


def _limits(path: Path) -> tuple[int, int]:
    """(name max, path max) in bytes of the file system the nearest existing folder of `path` is on."""
    existing = next((p for p in (path, *path.parents) if _is_dir(p)), None)
    try:
        if existing is None:
            raise OSError
        return os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        return NAME_MAX_FALLBACK, PATH_MAX_FALLBACK


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the file system cannot take `path` (a component or the whole too long), or None."""
    absolute = Path(os.path.abspath(os.path.expanduser(path)))
    name_max, path_max = _limits(absolute)
    for part in absolute.parts:
        size = len(os.fsencode(part))
        if size > name_max:
            return f"the name {_short(part)!r} is {size} bytes, longer than the {name_max} this file system takes"
    size = len(os.fsencode(str(absolute)))
    if size >= path_max:
        return f"the path is {size} bytes, longer than the {path_max - 1} this file system takes"
    return None


def _check_path(option: str, path: str | os.PathLike[str]) -> None:
    problem = path_problem(path)
    if problem:
        raise pytest.UsageError(f"{option}: {_short(str(path), 60)}: {problem}")


def check_paths(cfg: BenchConfig) -> None:
    """Model paths, the profile and every report file a run writes fit the file system."""
    for model in cfg.models:
        _check_path("--bench-models", model)
    if cfg.profile:
        _check_path("--bench-profile", cfg.profile)
    report_dir = Path(cfg.report_dir)
    _check_path("--bench-report-dir", report_dir / results.RUNS_DIR / "x" / RUN_FILE)
    if cfg.report_name:
        temp = "." + cfg.report_name + "x" * (TEMP_FILE_EXTRA - 1)
        problem = path_problem(report_dir / temp) or path_problem(
            results.runs_folder(report_dir, cfg.report_name) / temp)
        if problem:
            raise pytest.UsageError(f"--bench-report-name: {_short(cfg.report_name, 60)}: too long for the "
                                    f"report's files ({TEMP_FILE_EXTRA} bytes are added): {problem}")


def check_nodes(cfg: BenchConfig) -> None:
    """--bench-nnodes, --bench-node-rank and --bench-rdzv-endpoint can meet."""
    if cfg.node_rank >= cfg.nnodes:
        raise pytest.UsageError(f"--bench-node-rank: {cfg.node_rank} is not below --bench-nnodes {cfg.nnodes} "
                                f"(ranks are 0 to {cfg.nnodes - 1})")
    if cfg.nnodes > 1 and not cfg.rdzv_endpoint:
        raise pytest.UsageError(f"--bench-nnodes {cfg.nnodes} needs --bench-rdzv-endpoint host:port, where "
                                "the nodes meet (the same on every node)")
    host, colon, port = cfg.rdzv_endpoint.rpartition(":")
    if cfg.rdzv_endpoint and colon and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        raise pytest.UsageError(f"--bench-rdzv-endpoint: {_short(cfg.rdzv_endpoint, 60)!r} is not host or "
                                "host:port (a port from 1 to 65535)")


def check_profile(cfg: BenchConfig) -> None:
    """--bench-profile is a profile the estimator can read (JSON, its schema), read once now."""
    if not cfg.profile:
        return
    from estimator.profile import load_profile_file
    if not Path(cfg.profile).is_file():   # its length was checked first: is_file cannot raise
        raise pytest.UsageError(f"--bench-profile: no such file {cfg.profile}")
    try:
        load_profile_file(cfg.profile)
    except EstimatorError as exc:
        raise pytest.UsageError(f"--bench-profile: {exc}") from None


def check(cfg: BenchConfig) -> None:
    check_paths(cfg)
    check_nodes(cfg)
    check_profile(cfg)
