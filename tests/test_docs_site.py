"""The documentation site (reports/site/) builds with warnings as errors and shows the
repository's own material: the reference-layout benchmark table, our estimates of the reference
table's rows, the accuracy report, every measured run, the command-line help, the library API."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the docs site needs sphinx (pip install -e '.[reports]')")

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "reports" / "site"


def _text(html: str) -> str:
    """The page's text: tags dropped, entities of the tables' cells undone, spaces collapsed."""
    text = re.sub(r"<[^>]+>", " ", html).replace("&amp;", "&").replace("&#8212;", "-")
    return " ".join(text.split())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
                           "-d", str(out / "doctrees"), str(SITE), str(out / "html")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"sphinx-build -W failed:\n{done.stderr[-4000:]}"
    assert not done.stderr.strip(), done.stderr[-4000:]   # no warning, not even a kept-going one
    return out / "html"


def _page(site: Path, name: str) -> str:
    return (site / f"{name}.html").read_text(encoding="utf-8")


def _first_table(rst: str) -> list[list[str]]:
    """The cells of the first grid table's body rows of an RST file (one list per row)."""
    rows, seen_header = [], False
    for line in rst.splitlines():
        if line.startswith("+="):
            seen_header = True
        elif seen_header and line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif seen_header and not line.strip():
            break
    return rows


@pytest.mark.parametrize("page, report", [("benchmark", "benchmark_h100.rst"),
                                          ("seed_reference", "seed_reference.rst")])
def test_the_reference_layout_tables_are_on_the_site(site, page, report) -> None:
    """The reference-layout bench table and the reference table's rows: every cell of the
    report's first table is in a table of the built page, row by row."""
    html = _page(site, page)
    rows = _first_table((ROOT / "reports" / report).read_text(encoding="utf-8"))
    assert len(rows) >= 2
    tables = _text(" ".join(re.findall(r"<table.*?</table>", html, flags=re.S)))
    for row in rows:
        assert " ".join(cell for cell in row if cell) in tables, row


def test_the_accuracy_report_and_its_figure(site) -> None:
    html = _page(site, "accuracy")
    assert "Estimator accuracy" in html and html.count("<table") >= 5
    assert (site / "_images" / "accuracy.png").is_file() and "_images/accuracy.png" in html


def test_every_measured_run_has_its_section(site) -> None:
    html = _page(site, "measured")
    for path in sorted((ROOT / "reports" / "measured").glob("*.rst")):
        assert f">{path.name}<" in html, path.name


def test_command_line_reference_is_the_commands_own_help(site) -> None:
    text = _text(_page(site, "cli"))
    for command in ("estimate", "sweep", "devices", "models", "calibrate"):
        assert f"usage: python -m estimator {command}" in text
    assert "--new-tokens" in text and "--parallel" in text


def test_library_reference(site) -> None:
    html = _page(site, "library")
    for name in ("estimator.api.estimate", "estimator.workload.Workload", "estimator.api.Estimate"):
        assert f'id="{name}"' in html, name
