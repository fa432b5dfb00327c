"""bench.accuracy reports: docutils-clean RST, a real PNG, all 24 reference rows."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from bench.accuracy import plot, recorded, reference, reports

docutils_core = pytest.importorskip("docutils.core")
from docutils import nodes  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def doctree(text: str) -> nodes.document:
    """Parse RST; fail on any docutils message of level warning or above."""
    warnings = io.StringIO()
    tree = docutils_core.publish_doctree(
        text, settings_overrides={"warning_stream": warnings, "report_level": 2, "halt_level": 5})
    assert warnings.getvalue() == "", warnings.getvalue()
    return tree


def body_rows(table: nodes.table) -> list[list[str]]:
    return [[entry.astext() for entry in row.findall(nodes.entry)]
            for body in table.findall(nodes.tbody) for row in body.findall(nodes.row)]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    rows = recorded.evaluate(recorded.load_recorded())
    ref = reference.parse_reference()
    reports.write_accuracy_rst(rows, ref, out / "accuracy.rst")
    reports.write_seed_reference(ref, out / "seed_reference.rst")
    return out


@pytest.mark.parametrize("name", ["accuracy.rst", "seed_reference.rst"])
def test_rst_is_docutils_clean(generated: Path, name: str) -> None:
    doctree((generated / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["accuracy.rst", "seed_reference.rst"])
def test_committed_rst_is_docutils_clean(name: str) -> None:
    doctree((recorded.REPORTS / name).read_text(encoding="utf-8"))


def test_accuracy_rst_content(generated: Path) -> None:
    text = (generated / "accuracy.rst").read_text(encoding="utf-8")
    tree = doctree(text)
    assert "(estimated - measured) / measured" in text
    assert any(img["uri"] == "accuracy.png" for img in tree.findall(nodes.image))
    assert "7.9%" in text and "41.9%" in text  # the reference estimator's quoted figures
    groups = [row[0] for row in body_rows(next(iter(tree.findall(nodes.table))))]
    assert {"all rows", "held-out rows", "design rows"} <= set(groups)


def test_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = plot.write_accuracy_png(recorded.evaluate(recorded.load_recorded()), tmp_path / "a.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_committed_png() -> None:
    path = recorded.REPORTS / "accuracy.png"
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def test_held_out_split() -> None:
    rows = recorded.load_recorded()
    held = [r for r in rows if recorded.HELD_OUT(r)]
    assert held and len(held) < len(rows)
    assert all(r["source"] not in recorded.DESIGN_SOURCES and r["case_id"] not in recorded.DESIGN_CASES
               for r in held)
    assert any(r["source"].startswith("h100x1-") for r in held)


def test_seed_reference_rows(generated: Path) -> None:
    text = (generated / "seed_reference.rst").read_text(encoding="utf-8")
    tables = list(doctree(text).findall(nodes.table))
    runtime = body_rows(tables[0])
    multi = [r for r in runtime if r[1].endswith(" x 8")]
    if len(runtime) != 24 or len(multi) != 12:
        assert "Rows missing" in text, f"{len(runtime)} rows ({len(multi)} multi-GPU) and no explanation"
    assert len(runtime) == 24 and len(multi) == 12
    assert len(body_rows(tables[1])) == 24  # memory
    assert not any(r[0].startswith("AlCrossSim") for r in runtime)


def test_benchmark_note_from_the_measured_file(tmp_path: Path) -> None:
    path = reports.write_benchmark_rst(recorded.evaluate(recorded.load_recorded()), tmp_path / "b.rst")
    machine = recorded.load_document(reports.BENCHMARK_SOURCE)["machine"]
    text = path.read_text(encoding="utf-8")
    assert f"on a lent {recorded.machine_label(machine)}, {machine['date'][:10]})" in text
    doctree(text)
