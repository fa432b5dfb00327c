"""Text tables for the command line: tabulate, imported on first use.

Importing tabulate (0.10: wcwidth, importlib.metadata) costs tens of milliseconds, a large part
of a one-shot ``python -m estimator estimate`` (issue 26); ``--json``, ``--csv`` and the library
never print a table, so they never pay it.
"""
from __future__ import annotations

from typing import Any


def tabulate(*args: Any, **kwargs: Any) -> str:
    """tabulate.tabulate(*args, **kwargs)."""
    from tabulate import tabulate as table
    return table(*args, **kwargs)
