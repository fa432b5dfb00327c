"""Reading a JSON input file (config, device file, profile, run file) with one-line errors.

``json.loads`` alone turns hostile files into tracebacks: nesting 100,000 deep is a RecursionError,
a 5000-digit integer a ValueError about ``sys.set_int_max_str_digits``, and a file nested just
below the recursion limit crashes whatever walks it next. ``read_json`` gives each of them one
EstimatorError line naming the file, and refuses nesting deeper than ``MAX_DEPTH`` (no input of
this project nests more than about six levels). ``allow_constants=False`` also refuses the
non-standard ``NaN`` / ``Infinity`` tokens Python's json accepts.

Only regular files are read, and only up to ``MAX_BYTES``: a FIFO would block the open forever
and ``/dev/zero`` never ends (a MemoryError), so ``read_json`` looks at the file's type with
``stat`` (which never blocks) and refuses anything else in one line before opening it.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from .errors import EstimatorError

MAX_DEPTH = 64
MAX_BYTES = 64 * 10**6   # the largest input of this project (a profile) is about 40 kB


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists / objects nest deeper than `limit` (iterative: no recursion of its own)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_json(text: str, where: str, allow_constants: bool = True) -> Any:
    """`text` parsed, or EstimatorError('<where>: <reason>') in one line."""
    try:
        value = json.loads(text, **({} if allow_constants else {"parse_constant": _no_constant}))
    except RecursionError:
        raise EstimatorError(f"{where}: nested too deeply to read") from None
    except ValueError as exc:   # JSONDecodeError, integers of more than 4300 digits, NaN refused
        reason = _first_line(exc)
        if "integer string conversion" in reason:
            reason = "holds an integer of more than 4300 digits"
        raise EstimatorError(f"{where}: {reason}") from None
    if too_deep(value):
        raise EstimatorError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    return value


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_text_file(path: str | Path, where: str, limit: int | None = None) -> str:
    """The UTF-8 text of regular file `path` (at most `limit` bytes, default MAX_BYTES); FIFOs,
    devices, sockets, folders and larger files are refused by type and size before any read."""
    limit = MAX_BYTES if limit is None else limit
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise EstimatorError(f"{where}: {_file_kind(info.st_mode)}, expected a regular file")
        if info.st_size > limit:
            raise EstimatorError(f"{where}: {info.st_size:,} bytes, more than the {limit:,} an input may hold")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:   # grew since the stat
            raise EstimatorError(f"{where}: more than the {limit:,} bytes an input may hold")
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EstimatorError(f"{where}: {_first_line(exc)}") from None


def read_json(path: str | Path, where: str, allow_constants: bool = True) -> Any:
    """The JSON value in file `path`; EstimatorError('<where>: <reason>'), `where` naming the file."""
    return parse_json(read_text_file(path, where), where, allow_constants)
