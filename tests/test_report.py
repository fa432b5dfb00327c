"""bench.report: RST layout (golden), docutils cleanliness, JSON document, helpers."""
import io
import json
import os

import pytest

from bench import report
from bench.compare import ERROR_BASIS, METRICS

docutils_core = pytest.importorskip("docutils.core")

ROW_SINGLE = {
    "case_id": "opt-1.3b-H100-1gpu", "nodeid": "t.py::test[opt-1.3b-H100-1gpu]",
    "model": "facebook/opt-1.3b", "device": "H100 SXM5 80GB", "gpus": 1,
    "parallel": "pipeline", "batch": 16, "seq": 1024, "dtype": "float16",
    "measured": {"runtime_ms": 200.0, "memory_gb": 5.0, "energy_j_per_token": 0.0102,
                 "throughput_tokens_per_s": 81920.0, "memory_gb_per_gpu": [5.0]},
    "estimated": {"runtime_ms": 212.7, "memory_gb": 4.99, "energy_j_per_token": 0.01,
                  "throughput_tokens_per_s": 77021.0, "memory_gb_per_gpu": [4.99]},
    "status": "passed", "reason": None,
}
ROW_MULTI_FAILED = {
    "case_id": "clm-60m-H100-4gpu-tensor", "nodeid": "t.py::test[clm-60m-H100-4gpu-tensor]",
    "model": "AICrossSim/clm-60m", "device": "H100 SXM5 80GB", "gpus": 4,
    "parallel": "tensor", "batch": 16, "seq": 1024, "dtype": "float16",
    "measured": {"runtime_ms": 50.0, "memory_gb": 1.25, "energy_j_per_token": None,
                 "throughput_tokens_per_s": 327680.0},
    "estimated": {"runtime_ms": 60.0, "memory_gb": 1.3, "energy_j_per_token": 0.00213,
                  "throughput_tokens_per_s": 273067.0},
    "status": "failed",
    "reason": "runtime_ms: +20.0% > 10.0%; throughput_tokens_per_s: -16.7% > 10.0%",
    "out_of_bounds": ["runtime_ms: +20.0% > 10.0%", "throughput_tokens_per_s: -16.7% > 10.0%"],
}
ROW_SKIPPED = {"case_id": "opt-6.7b-H100-8gpu", "nodeid": "t.py::test[opt-6.7b-H100-8gpu]",
               "status": "skipped", "reason": "needs 8 GPUs, found 4"}
MACHINE = {"gpu": "NVIDIA H100 80GB HBM3", "gpu_count": 4, "driver": "550.54.15",
           "torch": "2.5.1", "transformers": "4.46.0", "accelerate": "1.0.1",
           "git_commit": "0123456789abcdef0123456789abcdef01234567", "dirty": True,
           "date": "2025-01-02T03:04:05+00:00", "hostname": "node7"}

# Written by hand after the reference table: metric names span Measured/Estimated/Error,
# both header rows above the '=' rule, numbers right-aligned, widths from the content.
GOLDEN = r"""Benchmark
=========

Input Sequence Size = :math:`16 \times 1024`, dtype: float16

Error is (estimated - measured) / measured, as a signed percentage. Throughput is in tokens per second, energy in joules per token; n/a marks a value that is not available.

Machine: NVIDIA H100 80GB HBM3 x 4, driver 550.54.15, torch 2.5.1, transformers 4.46.0, accelerate 1.0.1, commit 0123456789ab (dirty), 2025-01-02T03:04:05+00:00.

Single GPU
----------

+-------------------+----------------+----------+-----------+--------+----------+-----------+--------+----------+-----------+--------+----------+-----------+--------+
| Model             | Device         | Runtime (ms)                  | Memory (GB)                   | Energy (J/token)              | Throughput (token/s)          |
+-------------------+----------------+----------+-----------+--------+----------+-----------+--------+----------+-----------+--------+----------+-----------+--------+
|                   |                | Measured | Estimated | Error  | Measured | Estimated | Error  | Measured | Estimated | Error  | Measured | Estimated | Error  |
+===================+================+==========+===========+========+==========+===========+========+==========+===========+========+==========+===========+========+
| facebook/opt-1.3b | H100 SXM5 80GB |   200.00 |    212.70 | +6.35% |     5.00 |      4.99 | -0.20% |   0.0102 |    0.0100 | -1.96% |    81920 |     77021 | -5.98% |
+-------------------+----------------+----------+-----------+--------+----------+-----------+--------+----------+-----------+--------+----------+-----------+--------+

Multi GPU
---------

+--------------------+-----------------------------+----------+-----------+---------+----------+-----------+--------+----------+-----------+-------+----------+-----------+---------+
| Model              | Device                      | Runtime (ms)                   | Memory (GB)                   | Energy (J/token)             | Throughput (token/s)           |
+--------------------+-----------------------------+----------+-----------+---------+----------+-----------+--------+----------+-----------+-------+----------+-----------+---------+
|                    |                             | Measured | Estimated |  Error  | Measured | Estimated | Error  | Measured | Estimated | Error | Measured | Estimated |  Error  |
+====================+=============================+==========+===========+=========+==========+===========+========+==========+===========+=======+==========+===========+=========+
| AICrossSim/clm-60m | H100 SXM5 80GB x 4 (tensor) |    50.00 |     60.00 | +20.00% |     1.25 |      1.30 | +4.00% |      n/a |   0.00213 |   n/a |   327680 |    273067 | -16.67% |
+--------------------+-----------------------------+----------+-----------+---------+----------+-----------+--------+----------+-----------+-------+----------+-----------+---------+

Outside bounds
--------------

- clm-60m-H100-4gpu-tensor: runtime_ms: +20.0% > 10.0%; throughput_tokens_per_s: -16.7% > 10.0%

Skipped
-------

- opt-6.7b-H100-8gpu: needs 8 GPUs, found 4
"""


def docutils_messages(text: str) -> str:
    """Everything docutils reports at level >= info (1); '' means the RST is clean."""
    stream = io.StringIO()
    docutils_core.publish_doctree(text, settings_overrides={
        "report_level": 1, "halt_level": 5, "warning_stream": stream})
    return stream.getvalue()


def test_golden_is_a_consistent_grid():
    # guards the hand-written golden itself: every table line has the same length
    # and its column borders line up with the top rule
    for block in GOLDEN.split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.startswith(("+", "|"))]
        if not lines:
            continue
        assert len({len(ln) for ln in lines}) == 1
        borders = {i for i, ch in enumerate(lines[0]) if ch == "+"}
        for ln in lines:
            marks = {i for i, ch in enumerate(ln) if ch == ("+" if ln[0] == "+" else "|")}
            assert marks <= borders and {0, len(ln) - 1} <= marks


def test_render_matches_golden():
    text = report.render_rst([ROW_SINGLE, ROW_MULTI_FAILED, ROW_SKIPPED], MACHINE)
    assert text == GOLDEN


def test_golden_parses_without_messages():
    assert docutils_messages(GOLDEN) == ""


def test_header_is_two_rows_with_spans():
    doctree = docutils_core.publish_doctree(GOLDEN, settings_overrides={"report_level": 5})
    tables = [n for n in doctree.findall() if n.tagname == "table"]
    assert len(tables) == 2
    thead = next(n for n in tables[0].findall() if n.tagname == "thead")
    first, second = [n for n in thead.children if n.tagname == "row"]
    assert [e.astext() for e in first.children] == [
        "Model", "Device", "Runtime (ms)", "Memory (GB)", "Energy (J/token)",
        "Throughput (token/s)"]
    assert [e.get("morecols", 0) for e in first.children] == [0, 0, 2, 2, 2, 2]
    assert [e.astext() for e in second.children][2:5] == ["Measured", "Estimated", "Error"]
    assert len(second.children) == 14


def test_sections_omitted_when_empty():
    only_single = report.render_rst([ROW_SINGLE], None)
    assert "Single GPU\n----------" in only_single
    assert "Multi GPU" not in only_single and "Outside bounds" not in only_single
    assert "Skipped" not in only_single and "Machine:" not in only_single
    only_multi = report.render_rst([ROW_MULTI_FAILED], None)
    assert "Single GPU" not in only_multi and "Multi GPU\n---------" in only_multi
    assert docutils_messages(only_single) == "" and docutils_messages(only_multi) == ""


def test_skipped_rows_are_not_tabled():
    text = report.render_rst([ROW_SKIPPED], MACHINE)
    assert "+---" not in text
    assert text.endswith("Skipped\n-------\n\n- opt-6.7b-H100-8gpu: needs 8 GPUs, found 4\n")
    assert docutils_messages(text) == ""


def test_failed_row_without_bounds_list_goes_to_failed():
    row = dict(ROW_SINGLE, status="failed", reason="CUDA out of memory", out_of_bounds=[])
    text = report.render_rst([row], None)
    assert "facebook/opt-1.3b | H100 SXM5 80GB" in text
    assert "Failed\n------\n\n- opt-1.3b-H100-1gpu: CUDA out of memory\n" in text
    assert "Outside bounds" not in text


def test_two_workloads_and_nasty_text_stay_clean():
    other = dict(ROW_SINGLE, batch=8, seq=512, dtype="bfloat16", case_id="x_", model="m_*x`|",
                 measured={"runtime_ms": math_nan(), "memory_gb": 0.0},
                 estimated={"runtime_ms": 1.0, "memory_gb": 1.0})
    odd = dict(ROW_MULTI_FAILED, out_of_bounds=None, reason="line1\nsee `x`_ and *y* |z|::")
    text = report.render_rst([ROW_SINGLE, other, odd, dict(ROW_SKIPPED, reason="a_ b::")], None)
    assert text.count("Input Sequence Size") == 3  # one line per workload and section
    assert r"Input Sequence Size = :math:`8 \times 512`, dtype: bfloat16" in text
    assert text.count("Single GPU") == 1 and text.count("Multi GPU") == 1
    assert docutils_messages(text) == ""


def math_nan():
    return float("nan")


@pytest.mark.parametrize("value, expected", [
    (0.0102, "0.0102"), (0.00213, "0.00213"), (0.01, "0.0100"), (1.5, "1.50"),
    (123.4, "123"), (1234.5, "1230"), (0.009996, "0.0100"), (None, "n/a"),
    (float("nan"), "n/a"), (0, "0.00"),
])
def test_energy_three_significant_digits(value, expected):
    assert report.fmt_sig3(value) == expected


def test_other_formats():
    assert report.fmt_fixed2(693.774) == "693.77" and report.fmt_fixed2(None) == "n/a"
    assert report.fmt_int(42.6) == "43" and report.fmt_int(123456.2) == "123456"
    assert report.fmt_error(0.0635) == "+6.35%" and report.fmt_error(-0.0017) == "-0.17%"
    assert report.fmt_error(-1e-9) == "+0.00%" and report.fmt_error(None) == "n/a"


def test_device_label():
    assert report.device_label({"device": "H100 SXM5 80GB", "gpus": 1,
                                "parallel": "tensor"}) == "H100 SXM5 80GB"
    assert report.device_label({"device": "H100 SXM5 80GB", "gpus": 4,
                                "parallel": "pipeline"}) == "H100 SXM5 80GB x 4"
    assert report.device_label({"device": "H100 SXM5 80GB", "gpus": 2,
                                "parallel": "data"}) == "H100 SXM5 80GB x 2 (data)"


def test_results_document():
    config = {"bounds": {"runtime_ms": 0.1}}
    doc = report.results_document([ROW_SINGLE, ROW_MULTI_FAILED, ROW_SKIPPED], MACHINE, config)
    assert doc["schema_version"] == 1 and doc["error_basis"] == ERROR_BASIS
    assert doc["throughput_unit"] == "tokens/s"
    assert doc["machine"] == MACHINE and doc["config"] == config
    assert [c["case_id"] for c in doc["cases"]] == [ROW_SINGLE["case_id"],
                                                   ROW_MULTI_FAILED["case_id"]]
    assert [s["case_id"] for s in doc["skipped"]] == [ROW_SKIPPED["case_id"]]
    assert doc["summary"] == {"passed": 1, "failed": 1, "skipped": 1}
    first = doc["cases"][0]
    assert list(first["error"]) == list(METRICS)
    assert first["error"]["runtime_ms"] == pytest.approx(0.0635)
    assert first["measured"]["memory_gb_per_gpu"] == [5.0]  # extra keys kept
    assert doc["cases"][1]["error"]["energy_j_per_token"] is None
    assert "error" not in ROW_SINGLE  # inputs untouched
    nan_row = dict(ROW_SINGLE, measured={"runtime_ms": float("nan")})
    text = json.dumps(report.results_document([nan_row], None, {}), allow_nan=False)
    assert json.loads(text)["cases"][0]["measured"]["runtime_ms"] is None


def test_write_atomic(tmp_path):
    target = tmp_path / "sub" / "r.rst"
    report.write_atomic(target, "one\n")
    report.write_atomic(target, "two\n")
    assert target.read_text() == "two\n"
    assert os.listdir(target.parent) == ["r.rst"]  # no temporary left behind


def test_report_renders_only():
    # probing the machine (NVML, torch, git, cpu) lives in bench.machine
    assert not {"subprocess", "socket", "platform", "machine_info"} & set(vars(report))
