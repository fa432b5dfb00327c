"""Argument parsing shared by the CLI's commands: one-line usage errors, defaults in --help."""
from __future__ import annotations

import argparse
import sys


class Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit status 2, like every other bad input."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


class DefaultsFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Appends '(default: X)' to an option's help, except where the help already says its
    default in words or there is none to say (None, a flag's False); description and epilog
    keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action) or text
