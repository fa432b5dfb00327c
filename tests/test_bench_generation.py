"""Generation rows through the bench plugin: gated on TTFT/TPOT/memory/energy, rendered as the
RST's generation table (pytester run of a benchmark-like test file); the suite's module skips on CPU."""
import json
from pathlib import Path

import pytest

from bench.options import BenchConfig
from bench.report import render_rst

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]

GEN_MODULE = '''
import pytest

def row(case_id, tpot_est):
    m = {"runtime_ms": 1137.7, "memory_gb": 2.79, "energy_j_per_token": 1.54, "throughput_tokens_per_s": 112.5,
         "ttft_ms": 10.94, "tpot_ms": 8.87, "generate_ms": 1137.7, "generate_energy_j_per_token": 1.54}
    e = dict(m, tpot_ms=tpot_est, profile="h200-sxm-141gb.json")
    return {"case_id": case_id, "kind": "generate", "model": "facebook/opt-1.3b", "device": "H200 SXM 141GB",
            "gpus": 1, "parallel": "single", "batch": 1, "seq": 512, "new_tokens": 128, "dtype": "float16",
            "measured": m, "estimated": e}

@pytest.mark.parametrize("tpot_est", [8.84, 11.0], ids=["in", "out"])
def test_gen(tpot_est, request, bench_recorder, check_bounds, bench_config):
    bench_recorder.default_name = "bench-gen"
    check_bounds(row(request.node.callspec.id, tpot_est), bench_config.generation_bounds)
'''


def test_generation_rows_gate_and_table(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.syspathinsert(ROOT)
    pytester.makepyfile(test_gen=GEN_MODULE)
    result = pytester.runpytest("-p", "bench.plugin", "--bench-report-dir", str(pytester.path / "out"))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*tpot_ms: +24.0% > 10.0%*"])
    rst = (pytester.path / "out" / "bench-gen.rst").read_text()
    assert "Generation\n----------" in rst and "TTFT (ms)" in rst and "TPOT (ms)" in rst
    assert "Energy (J/generated token)" in rst and "+ 128 new tokens" in rst
    assert "Single GPU" not in rst   # generation rows stay out of the forward tables
    assert "+24.01%" in rst and "- out: tpot_ms: +24.0% > 10.0%" in rst
    cases = json.loads((pytester.path / "out" / "bench-gen.json").read_text())["cases"]
    assert {r["kind"] for r in cases} == {"generate"}
    assert {r["case_id"]: round(r["error"]["tpot_ms"], 3) for r in cases} == {"in": -0.003, "out": 0.240}


def test_generation_table_next_to_forward_rows():
    fwd = {"case_id": "f", "model": "m", "device": "H200 SXM 141GB", "gpus": 1, "batch": 16, "seq": 1024,
           "measured": {"runtime_ms": 10.0}, "estimated": {"runtime_ms": 11.0}, "status": "passed"}
    gen = dict(fwd, case_id="g", kind="generate", batch=8, new_tokens=64,
               measured={"ttft_ms": 54.26, "tpot_ms": 20.14}, estimated={"ttft_ms": 55.34, "tpot_ms": 22.17})
    rst = render_rst([fwd, gen])
    single, generation = rst.index("Single GPU"), rst.index("Generation")
    assert single < generation and "+10.00%" in rst[single:generation] and "+1.99%" in rst[generation:]
    assert "+10.08%" in rst[generation:]


def test_generation_bounds_defaults():
    assert BenchConfig().generation_bounds == {"ttft_ms": 0.05, "tpot_ms": 0.10, "memory_gb": 0.05,
                                               "generate_energy_j_per_token": 0.15}


def test_suite_generation_module_skips_on_cpu(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess(str(ROOT / "bench" / "test_generate.py"), "-p", "bench.plugin",
                                           "--bench-new-tokens", "4", "--bench-models", "AICrossSim/clm-60m",
                                           "--bench-gpus", "1,2,8",
                                           "--bench-report-dir", str(pytester.path / "out"), "-rs",
                                           "-p", "no:cacheprovider", "--rootdir", str(ROOT))
    result.assert_outcomes(skipped=3)   # one case per GPU count: 1 GPU, then pipelines
    result.stdout.fnmatch_lines(["*generation is measured on a GPU only*", "*needs 2 GPUs, this machine has 0*",
                                 "*needs 8 GPUs, this machine has 0*"], consecutive=False)


def test_generation_case_ids_keep_one_gpu_rows_and_name_the_pipeline():
    from bench.row import Row, parallel_label
    from bench.test_generate import GenCase
    assert GenCase("m", 1, 128, 64).id == "m-1x128+64"          # recorded 1-GPU rows keep their case ids
    assert GenCase("m", 1, 128, 64, 4).id == "m-1x128+64-4gpu"
    row = Row(case_id="g", kind="generate", model="AICrossSim/clm-60m", device="H200 SXM 141GB", device_short="H200",
              gpus=4, parallel=parallel_label("pipeline", 4), batch=1, seq=128, new_tokens=64, dtype="bfloat16")
    w = row.workload()
    assert (w.gpus, w.parallel, w.new_tokens) == (4, "pipeline", 64)
