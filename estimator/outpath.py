"""Output files: checked writable before any measuring, then written atomically.

A calibration (a minute of GPU time) or a benchmark case (minutes) must never be measured into
a path that cannot take the result: ``check_writable`` fails first, with one line. Results are
written to a temporary file next to the target and renamed into place, so a reader (or a crash)
never sees half a file.
"""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import IO, Callable

from .errors import EstimatorError


def check_writable(path: str | os.PathLike[str], what: str = "output") -> Path:
    """`path` when a file can be created or replaced there (parent folders are created);
    else an EstimatorError naming the path and the reason."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise EstimatorError(f"{what} {out} is a directory, expected a file path")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _probe(out.parent, f".{out.name}.", ".probe")
    except OSError as exc:
        raise EstimatorError(f"cannot write {what} {out}: {exc.strerror or exc}") from None
    if out.exists() and not os.access(out, os.W_OK):
        raise EstimatorError(f"cannot write {what} {out}: the file is read-only")
    return out


def check_writable_dir(path: str | os.PathLike[str], what: str = "output folder", create: bool = True) -> Path:
    """`path` as a folder new files can be created in, else EstimatorError. With create=False a
    missing folder is not made: its nearest existing parent must take files instead."""
    folder = Path(path).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise EstimatorError(f"{what} {folder} is a file, expected a folder")
    if create:
        check_writable(folder / "write-check", what)
        return folder
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise EstimatorError(f"cannot write {what} {folder}: {existing} is a file")
    try:
        _probe(existing, ".write-check.", "")
    except OSError as exc:
        raise EstimatorError(f"cannot write {what} {folder}: {exc.strerror or exc}") from None
    return folder


def _probe(folder: Path, prefix: str, suffix: str) -> None:
    """Create and remove a file in `folder`: OSError when it cannot. Removed however the check
    ends: a Ctrl-C between the two (a streamed sweep checks its file as it starts) left it behind."""
    fd, probe = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    try:
        os.close(fd)
    finally:
        os.unlink(probe)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(path: Path) -> int:
    """The mode a file written to `path` gets: the replaced file's, else 0666 less the umask
    (mkstemp alone creates 0600, which hid reports from the user's group)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two output paths name one file (after ~, relative parts and links)."""
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def write_output(path: str | os.PathLike[str], data: str | bytes, what: str = "output") -> None:
    """write_atomic, with a failure (a full disk, EFBIG, a folder gone) as one EstimatorError
    line naming the file; the old file, if any, is left as it was."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise EstimatorError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def write_atomic(path: str | os.PathLike[str], text: str | bytes) -> None:
    """Write text (or bytes) to a temporary file next to path, then os.replace it into place;
    the file gets the mode `new_file_mode` gives, as a plain open() would."""
    _atomic(path, lambda handle: handle.write(text), binary=isinstance(text, bytes))


def write_atomic_stream(path: str | os.PathLike[str], fill: Callable[[IO[str]], object], what: str = "output") -> None:
    """write_output for text made while it is written: `fill(handle)` writes into the temporary
    file (a streamed sweep, row by row), which replaces `path` only once `fill` returns; a
    failure leaves the old file as it was (an OSError as one EstimatorError line naming it)."""
    try:
        _atomic(path, fill, binary=False)
    except OSError as exc:
        raise EstimatorError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def _atomic(path: str | os.PathLike[str], fill: Callable[[IO], object], binary: bool) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = new_file_mode(path)
    while True:
        # the name is chosen before the file exists, so that an interrupt landing anywhere after the
        # file is created (a Ctrl-C right as a streamed sweep starts: inside tempfile.mkstemp, between
        # its open and its return, one leaked in a fresh-clone CI run) still finds it to remove
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue   # another writer's temporary name: draw again (and remove nothing)
            os.fchmod(fd, mode)
            with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as handle:
                fill(handle)
            os.replace(tmp, path)
            return
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
