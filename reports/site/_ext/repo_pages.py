"""Sphinx directives that put the repository's generated material on the documentation site.

``.. report-file:: ../accuracy.rst`` parses a report RST file in place, its titles as the page's
sections (``include`` would resolve its images against the including page, not the report);
``.. report-files:: ../measured/*.rst`` does so for every match, each under a section named by
its file; ``.. command-help::`` is ``python -m estimator --help`` and each sub-command's
``--help`` as literal blocks, run when the site is built, so the page never goes stale.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

HELP_COLUMNS = "100"   # argparse wraps to $COLUMNS: a fixed width keeps the page the same on every machine
IMAGE = re.compile(r"^(\s*\.\. (?:image|figure):: )(?!/|[a-z]+://)(\S+)")
TITLE_MARKS = set("=-~^\"'`#*+")


class _ReportDirective(SphinxDirective):
    required_arguments = 1

    def _paths(self) -> list[Path]:
        base = Path(self.env.doc2path(self.env.docname)).parent
        pattern = self.arguments[0]
        paths = sorted(base.glob(pattern)) if any(c in pattern for c in "*?[") else [base / pattern]
        if not paths:
            raise self.error(f"no report file matches {pattern}")
        return paths

    def _lines(self, path: Path, drop_title: bool) -> StringList:
        """The file's lines, image paths made relative to the site's source folder ("/..."),
        its top title dropped when it gets a section of its own."""
        self.env.note_dependency(str(path))
        srcdir = Path(self.env.srcdir)
        lines = path.read_text(encoding="utf-8").splitlines()
        if drop_title and len(lines) > 1 and lines[1] and set(lines[1]) <= TITLE_MARKS:
            lines = lines[2:]
        rel = os.path.relpath(path.parent, srcdir).replace(os.sep, "/")
        lines = [IMAGE.sub(lambda m: f"{m.group(1)}/{rel}/{m.group(2)}", line) for line in lines]
        return StringList(lines, source=str(path))

    def _parse(self, lines: StringList, into: nodes.Element) -> None:
        nested_parse_with_titles(self.state, lines, into)


class ReportFile(_ReportDirective):
    """One report file, parsed where the directive stands (its title: the page's)."""

    def run(self) -> list[nodes.Node]:
        container = nodes.section()   # a throw-away parent: its children are returned
        for path in self._paths():
            self._parse(self._lines(path, drop_title=False), container)
        return container.children


class ReportFiles(_ReportDirective):
    """Every matching report file, each in a section titled with its file name."""

    def run(self) -> list[nodes.Node]:
        out: list[nodes.Node] = []
        for path in self._paths():
            section = nodes.section(ids=[nodes.make_id(f"report-{path.stem}")], names=[path.stem])
            section += nodes.title(text=path.name)
            self._parse(self._lines(path, drop_title=True), section)
            out.append(section)
        return out


def estimator_help(*args: str) -> str:
    """``python -m estimator *args --help``'s output, as a user sees it."""
    env = dict(os.environ, COLUMNS=HELP_COLUMNS, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-m", "estimator", *args, "--help"], capture_output=True, text=True,
                          env=env, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"python -m estimator {' '.join(args)} --help failed: {done.stderr[-500:]}")
    return done.stdout


def subcommands(main_help: str) -> list[str]:
    """The sub-commands argparse lists in the usage line's ``{a,b,c}``."""
    found = re.search(r"\{([\w,-]+)\}", main_help)
    return found.group(1).split(",") if found else []


def _text_block(text: str) -> nodes.literal_block:
    block = nodes.literal_block(text, text)
    block["language"] = "text"   # not highlighted as Python
    return block


class CommandHelp(SphinxDirective):
    """``python -m estimator --help`` and every sub-command's help, one section each."""

    def run(self) -> list[nodes.Node]:
        try:
            main = estimator_help()
            helps = {command: estimator_help(command) for command in subcommands(main)}
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            raise self.error(str(exc)) from None
        out: list[nodes.Node] = [_text_block(main)]
        for command, text in helps.items():
            section = nodes.section(ids=[nodes.make_id(f"command-{command}")], names=[f"command {command}"])
            section += nodes.title(text=f"python -m estimator {command}")
            section += _text_block(text)
            out.append(section)
        return out


def setup(app):
    app.add_directive("report-file", ReportFile)
    app.add_directive("report-files", ReportFiles)
    app.add_directive("command-help", CommandHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
