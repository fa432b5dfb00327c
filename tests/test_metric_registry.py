"""bench/metrics.py is the one place a bench metric is declared: a throwaway metric registered
there shows up as a bench option, in BenchConfig.bounds, as a report column and in the CI gate."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import compare, metrics, options, report
from bench.accuracy import gate
from bench.formats import fmt_int
from bench.metrics import Metric

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
WIDGETS = Metric("widgets_per_s", "Widgets", "widget/s", fmt_int, default_bound=0.20, gate_bound=0.05,
                 option="widgets", bound_of="widgets per second")
SPROCKETS = Metric("sprockets_per_token", "Sprockets", "sprocket/token", fmt_int, default_bound=0.30,
                   gate_bound=None, option="sprockets", kind=metrics.GENERATE)


@pytest.fixture
def widgets():
    metrics.register(WIDGETS)
    yield WIDGETS
    metrics.unregister(WIDGETS.key)


@pytest.fixture
def sprockets():
    metrics.register(SPROCKETS)
    yield SPROCKETS
    metrics.unregister(SPROCKETS.key)


def _row(**extra):
    measured = {"runtime_ms": 100.0, "memory_gb": 5.0, "energy_j_per_token": 0.01,
                "throughput_tokens_per_s": 163840.0}
    estimated = dict(measured, runtime_ms=104.0)
    return {"case_id": "w1", "model": "facebook/opt-1.3b", "device": "H100 SXM5 80GB", "gpus": 1,
            "parallel": "pipeline", "batch": 16, "seq": 1024, "dtype": "float16",
            "measured": measured | extra.get("measured", {}),
            "estimated": estimated | extra.get("estimated", {})}


def test_todays_registry():
    assert compare.METRICS == ("runtime_ms", "memory_gb", "energy_j_per_token", "throughput_tokens_per_s")
    assert compare.GENERATION_METRICS == ("ttft_ms", "tpot_ms", "generate_energy_j_per_token")
    assert metrics.keys(metrics.generation_table()) == ("ttft_ms", "tpot_ms", "memory_gb",
                                                        "generate_energy_j_per_token")
    assert gate.gate_bounds() == {"runtime_ms": 0.05, "memory_gb": 0.01, "energy_j_per_token": 0.10,
                                  "throughput_tokens_per_s": 0.05, "ttft_ms": 0.05, "tpot_ms": 0.10}
    assert [o.flag for o in options.bound_options()] == [
        "--bound-runtime", "--bound-memory", "--bound-energy", "--bound-throughput", "--bound-ttft", "--bound-tpot"]
    assert options.BenchConfig().bound_energy == 0.15


def test_register_refuses_a_repeated_key_and_a_conflicting_shared_option():
    with pytest.raises(ValueError, match="already registered"):
        metrics.register(metrics.get("runtime_ms"))
    with pytest.raises(ValueError, match="option 'energy' has default 0.15"):
        metrics.register(Metric("x_j", "X", "J", fmt_int, 0.5, None, "energy"))
    assert "x_j" not in metrics.keys(metrics.all_metrics())


def test_a_registered_metric_is_a_bench_option_and_a_bound(widgets):
    opt = next(o for o in options.bound_options() if o.field == "bound_widgets")
    assert (opt.flag, opt.ini, opt.default) == ("--bound-widgets", "bound_widgets", "0.20")
    assert opt.help == "allowed |relative error| of widgets per second"
    config = options.BenchConfig()
    assert config.bounds["widgets_per_s"] == 0.20 and config.bound_widgets == 0.20
    assert list(config.bounds) == [*compare.METRICS]  # read afresh: the new metric is there
    assert config.as_dict()["bound_widgets"] == 0.20
    assert list(config.as_dict()).index("bound_widgets") < list(config.as_dict()).index("new_tokens")


def test_a_registered_metric_is_parsed_from_the_command_line_and_ini(widgets, pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.syspathinsert(ROOT)
    pytester.makeini("[pytest]\nbound_widgets = 25%\n")
    pytester.makepyfile(test_cfg='''
import json
def test_cfg(bench_config):
    with open("cfg.json", "w") as f:
        json.dump(bench_config.as_dict(), f)
''')
    assert pytester.runpytest("-p", "bench.plugin").ret == 0
    assert json.loads((pytester.path / "cfg.json").read_text())["bounds"]["widgets_per_s"] == 0.25
    assert pytester.runpytest("-p", "bench.plugin", "--bound-widgets", "0.4").ret == 0
    assert json.loads((pytester.path / "cfg.json").read_text())["bounds"]["widgets_per_s"] == 0.4
    result = pytester.runpytest("-p", "bench.plugin", "--bound-widgets", "lots")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--bound-widgets: 'lots' is not a non-negative fraction*"])


def test_a_registered_metric_is_a_report_column(widgets):
    text = report.render_rst([_row(measured={"widgets_per_s": 200.0}, estimated={"widgets_per_s": 210.0})])
    header = next(line for line in text.splitlines() if line.startswith("| Model"))
    assert header.rstrip("|").split("|")[-1].strip() == "Widgets (widget/s)"
    body = next(line for line in text.splitlines() if "facebook" in line)
    assert [cell.strip() for cell in body.strip("|").split("|")[-3:]] == ["200", "210", "+5.00%"]
    assert "widgets_per_s" in report.results_document([_row()], None, {})["cases"][0]["error"]


def test_a_generate_metric_is_a_generation_column_and_bound(sprockets):
    assert metrics.keys(metrics.generation_table())[-1] == "sprockets_per_token"
    assert options.BenchConfig().generation_bounds["sprockets_per_token"] == 0.30
    assert "sprockets_per_token" not in options.BenchConfig().bounds
    row = dict(_row(measured={"sprockets_per_token": 3.0}, estimated={"sprockets_per_token": 3.0}),
               kind="generate", new_tokens=8)
    text = report.render_rst([row])
    assert "Sprockets (sprocket/token)" in text.split("Generation")[1]
    assert compare.errors(row)["sprockets_per_token"] == 0.0


def test_a_registered_metric_is_in_the_gate(widgets):
    assert gate.gate_bounds()["widgets_per_s"] == 0.05
    assert gate.allowed_error("nowhere/w1", "widgets_per_s", {}) == 0.05
    inside = {"error": {"runtime_ms": 0.01, "widgets_per_s": 0.05}, "source": "x.json", "case_id": "w1"}
    outside = dict(inside, error={"runtime_ms": 0.01, "widgets_per_s": -0.08})
    assert gate.gate_failures(inside) == [] and gate.row_failures(inside) == []
    assert gate.gate_failures(outside) == ["widgets_per_s: -8.0% > 5.0%"]
    assert gate.row_failures(outside) == ["widgets_per_s: -8.0% > 5.0%"]


def test_unregistered_afterwards():
    assert "widgets_per_s" not in compare.METRICS and "widgets_per_s" not in gate.gate_bounds()
