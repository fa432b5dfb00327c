"""CPU calibration (quick mode), its stages, profile merging and NVML on a machine without a GPU."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from estimator.calibrate import calibrate, collectives, grids, host, machine, merge, nvml, save_profile
from estimator.calibrate.timing import Timer, median
from estimator.errors import EstimatorError

TOP_KEYS = ["schema_version", "kind", "device_name", "gpu_count", "driver", "torch", "transformers",
            "date", "hostname", "cpu", "duration_s", "gemm", "sdpa", "copy",
            "elementwise_floor_us", "launch_us", "host", "p2p", "allreduce", "power", "elementwise",
            "host_ops", "calibration"]


@pytest.fixture(scope="module")
def profile() -> dict:
    lines: list[str] = []
    prof = calibrate("cpu", quick=True, log=lines.append)
    assert lines, "calibrate logs its progress"
    return prof


def test_the_first_line_says_what_is_measured() -> None:
    # issue 28: on a machine without a GPU, calibrate measured the CPU for 23.5 s without a word
    from estimator.calibrate.run import what_it_measures
    cpu = {"kind": "cpu", "device_name": "Some CPU", "gpu_count": 0}
    line = what_it_measures(cpu, "auto", False)
    assert line.startswith("calibrating the CPU, Some CPU (no GPU found") and "a GPU device is refused" in line
    assert "(as asked" in what_it_measures(cpu, "cpu", True)
    gpu = what_it_measures({"kind": "gpu", "device_name": "NVIDIA H100 80GB HBM3", "gpu_count": 8}, "auto", False)
    assert gpu == "calibrating NVIDIA H100 80GB HBM3 (GPU x 8)"


def test_top_level_schema(profile: dict) -> None:
    assert list(profile) == TOP_KEYS
    assert profile["schema_version"] == 1
    assert profile["kind"] == "cpu" and profile["gpu_count"] == 0
    assert profile["driver"] is None
    assert profile["torch"] == torch.__version__
    assert profile["device_name"] and profile["cpu"] and profile["hostname"]
    assert profile["date"].endswith("+00:00")
    assert profile["duration_s"] > 0   # how long is the machine's business, never asserted
    assert profile["p2p"] == [] and profile["allreduce"] == {} and profile["power"] == {}


def test_written_sections_are_declared_in_the_schema(profile: dict) -> None:
    from estimator.profile_check import check_profile
    from estimator.profile_schema import HEADER, SECTIONS, parse_profile
    assert set(profile) <= {f.name for f in SECTIONS} and tuple(profile)[:len(HEADER)] == HEADER
    data = parse_profile(check_profile(profile, "fresh"), "fresh")
    assert data.kind == "cpu" and data.power is None and data.copy == profile["copy"]


def test_gemm(profile: dict) -> None:
    assert set(profile["gemm"]) == {"float32", "bfloat16"}
    for dtype, rows in profile["gemm"].items():
        assert rows, dtype
        for m, n, k, us in rows:
            assert min(m, n, k) > 0 and us > 0


def test_sdpa(profile: dict) -> None:
    rows = profile["sdpa"]["float32"]
    assert {(bh, s, d) for bh, s, d, _ in rows} == {(4, 64, 64), (4, 256, 64), (16, 64, 64), (16, 256, 64)}
    assert all(us > 0 for *_, us in rows)


def test_copy_rows_span_the_sizes(profile: dict) -> None:
    """The calibration's copy table: positive times over sizes spanning at least 64x (how fast
    the CPU copies is a measurement, timed in test_speed.py's benchmarks, never asserted)."""
    rows = sorted(profile["copy"])
    assert len(rows) >= 3 and all(us > 0 for _, us in rows)
    assert rows[-1][0] >= 64 * rows[0][0]


def test_launch_and_floor(profile: dict) -> None:
    assert profile["launch_us"] > 0
    assert profile["elementwise_floor_us"] > 0


def test_host_overhead(profile: dict) -> None:
    measured = profile["host"]
    assert set(measured) <= set(host.HOST_FAMILIES)
    for family in ("llama", "opt"):
        assert measured[family]["per_layer_us"] > 0
        assert measured[family]["layers_measured"] == list(host.HOST_LAYERS)
        assert isinstance(measured[family]["fixed_us"], float)


def test_json_and_save_round_trip(profile: dict, tmp_path) -> None:
    json.dumps(profile)
    path = save_profile(profile, tmp_path / "sub" / "cpu.json")
    assert json.loads(path.read_text()) == profile


def test_grids() -> None:
    full = grids.gemm_points("gpu", "float16")
    assert len(full) == 4 * 7 * 7 + 4 * 3 * 4 + 4 * 3 * 3 + 4 * 2 * 2
    assert (1, 8192, 2048) in full and (64, 131072, 4096) in full   # decode GEMMs: M = batch rows
    assert (16384, 131072, 4096) in full
    assert len(grids.gemm_points("gpu", "tf32")) == 2 * 3 * 3 + 2 * 2
    assert len(grids.sdpa_points("gpu", "bfloat16")) == 4 * 6 * 2
    assert len(grids.sdpa_points("gpu", "float32")) == 4
    assert grids.copy_sizes("gpu")[-1] == 2 * grids.GIB and grids.copy_sizes("cpu")[-1] == 256 * grids.MB
    assert grids.allreduce_group_sizes(1) == []
    assert grids.allreduce_group_sizes(4) == [2, 4]
    assert grids.allreduce_group_sizes(6) == [2, 4, 6]


def test_resolve_device() -> None:
    assert machine.resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert machine.resolve_device("auto").type == "cpu"
        with pytest.raises(EstimatorError):
            machine.resolve_device("cuda")
    with pytest.raises(EstimatorError):
        machine.resolve_device("tpu")


def test_no_gpu_paths_are_empty() -> None:
    if torch.cuda.is_available():
        pytest.skip("machine has a GPU")
    assert collectives.measure_p2p() == []
    assert collectives.measure_allreduce(1) == {}


@pytest.mark.skipif(nvml.nvml_available(), reason="NVML works on this machine")
def test_nvml_helpers_without_gpu() -> None:
    assert nvml.nvml_available() is False
    assert nvml.device_count() is None
    assert nvml.driver_version() is None
    for fn in (nvml.energy_mj, nvml.power_w, nvml.power_limit_w, nvml.sm_clock_mhz,
               nvml.max_sm_clock_mhz, nvml.device_name):
        assert fn(0) is None
        assert fn(3) is None
    assert nvml.nvml_index(0) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_allreduce_failure_is_recorded_as_empty() -> None:
    lines: list[str] = []
    job = collectives.AllreduceJob(2)  # the spawned workers cannot use CUDA here, so they fail
    assert job.run(timeout_s=60, log=lines.append) == {}
    assert any("allreduce: failed" in line for line in lines)
    assert all(not p.is_alive() for p in job.ctx.processes)


def test_allreduce_job_abort_kills_waiting_workers() -> None:
    job = collectives.AllreduceJob(2)
    job.abort()
    assert all(not p.is_alive() for p in job.ctx.processes)


def test_units_are_binary() -> None:
    assert grids.MB == 1 << 20 and grids.GIB == 1 << 30
    assert grids.COLLECTIVE_SIZES == tuple(n * grids.MB for n in (1, 16, 64, 256))
    assert set(collectives.ALLREDUCE_REPS) == set(grids.COLLECTIVE_SIZES)


def test_median_is_the_statistical_median() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5  # the mean of the two middle values, not the upper
    assert isinstance(median([1, 2]), float)


def test_timer_on_cpu() -> None:
    timer = Timer(torch.device("cpu"), target_ms=1.0)
    assert not timer.cuda and not timer.can_prefill and timer.cycles_per_us == 0.0
    x = torch.ones(1024)
    assert timer.per_call_us(lambda: x + 1) > 0
    assert timer.elapsed_us(lambda: x + 1, 10) == timer.last_enqueue_us > 0
    assert timer.prefill_for(10, 2.0) == pytest.approx(10 * 2.0 * 1.3 + 100.0)


def test_header_fields() -> None:
    head = machine.header(torch.device("cpu"))
    assert list(head) == TOP_KEYS[:-3]  # elementwise, host_ops, calibration: added by the run
    assert head["schema_version"] == machine.SCHEMA_VERSION
    assert head["cpu"].startswith(machine.cpu_name())


def test_tiny_configs() -> None:
    for family in host.HOST_FAMILIES:
        cfg = host.tiny_config(family, 3)
        assert cfg.num_hidden_layers == 3 and cfg.vocab_size == 256
    with pytest.raises(EstimatorError):
        host.tiny_config("bloom", 2)


@pytest.mark.parametrize("family", ["llama", "opt", "gpt2"])
def test_split_device_map(family: str) -> None:
    model = host.tiny_model(family, host.DISPATCH_LAYERS, torch.device("cpu"))
    dmap = host.split_device_map(model, host.DISPATCH_LAYERS)
    layers = [k for k in dmap if k.rsplit(".", 1)[-1].isdigit()]
    assert len(layers) == host.DISPATCH_LAYERS
    assert [dmap[k] for k in layers] == [0] * 3 + [1] * 3
    embeddings = [k for k in dmap if "emb" in k or k.endswith((".wte", ".wpe"))]
    assert embeddings and all(dmap[k] == 0 for k in embeddings)
    assert dmap["lm_head"] == (0 if model.config.tie_word_embeddings else 1)


def test_dispatch_overhead_without_two_gpus() -> None:
    pytest.importorskip("accelerate")
    if torch.cuda.device_count() >= 2:
        pytest.skip("machine has two GPUs")
    assert host.dispatch_overhead_us() == {}


def _run(hostname: str, gpus: int, host_us: dict[str, float], **extra) -> dict:
    return {"hostname": hostname, "date": "d", "gpu_count": gpus, "gemm": {"float16": [[1, 1, 1, hostname]]},
            "host": {f: {"per_layer_us": v, "fixed_us": 10 * v} for f, v in host_us.items()}, **extra}


def test_merge_pools_host_overhead_and_takes_multi_gpu_parts() -> None:
    base = _run("a", 1, {"llama": 1.0, "opt": 5.0})
    runs = [_run("b", 4, {"mistral": 3.0, "opt": 7.0}, p2p=[[1, 2.0]], allreduce={"2": []},
                 dispatch={"llama": 1.0}),
            _run("c", 4, {"qwen2": 2.0}, p2p=[[1, 9.0]], dispatch={"llama": 3.0, "opt": 4.0})]
    out = merge.merge(base, runs)
    assert out["gemm"] == base["gemm"]  # kernel tables from the base run
    assert set(out["host"]) == {"llama", "opt"}  # the base run's families
    assert out["host"]["llama"] == {"per_layer_us": 2.0, "fixed_us": 20.0, "samples": 3}  # llama-like pooled
    assert out["host"]["opt"] == {"per_layer_us": 6.0, "fixed_us": 60.0, "samples": 2}
    assert out["p2p"] == [[1, 2.0]] and out["allreduce"] == {"2": []}  # the first multi-GPU run
    assert out["dispatch"] == {"llama": 2.0}  # median over multi-GPU runs, families of the first
    assert out["merged_from"] == ["a d x1", "b d x4", "c d x4"]
    assert "p2p" not in merge.merge(base, [])


def test_merge_cli_and_light_imports(tmp_path) -> None:
    paths = []
    for name, run in (("base", _run("a", 1, {"gpt2": 1.0})), ("more", _run("b", 1, {"gpt2": 3.0}))):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(run))
    out = tmp_path / "merged.json"
    code = ("import sys, runpy; sys.argv = ['merge', *sys.argv[1:]]; "
            "runpy.run_module('estimator.calibrate.merge', run_name='__main__'); "
            "import estimator.calibrate.nvml; assert 'torch' not in sys.modules, 'merge/nvml import torch'")
    subprocess.run([sys.executable, "-c", code, str(out), *map(str, paths)], check=True)
    assert json.loads(out.read_text())["host"]["gpt2"]["per_layer_us"] == 2.0


def test_stage_plan_stays_within_budget():
    """The full 1-GPU stage plan (point counts x per-point costs of the H200 log, not wall time)
    stays within plan.FULL_BUDGET_S; the second 16-bit dtype is thinned, quick is shorter."""
    from estimator.calibrate.host import HOST_FAMILIES, QUICK_HOST_TYPES
    from estimator.calibrate.plan import FULL_BUDGET_S, expected_s, generate_types, stage_plan

    gen = generate_types(HOST_FAMILIES, None, False)
    assert gen[0] == "llama" and len(gen) <= 4
    full = stage_plan("gpu", False, 1, HOST_FAMILIES, gen)
    points = {s["stage"]: s["points"] for s in full}
    assert points["gemm bfloat16"] < points["gemm float16"] / 2
    assert points["sdpa bfloat16"] < points["sdpa float16"]
    assert {"power", "grouped_mm", "host ops", "host", "generate"} <= set(points)
    assert expected_s(full) <= FULL_BUDGET_S
    quick = stage_plan("gpu", True, 1, QUICK_HOST_TYPES, generate_types(QUICK_HOST_TYPES, None, True))
    assert expected_s(quick) < expected_s(full) / 2
    assert generate_types(HOST_FAMILIES, "all", False) == tuple(HOST_FAMILIES)


def test_thinned_grid_is_filled_from_its_reference():
    """Points of the thinned dtype not timed get the reference's time x the nearby ratio."""
    from estimator.calibrate.plan import fill_rows, thin_points
    from estimator.calibrate.grids import gemm_points

    pts = gemm_points("gpu", "bfloat16")
    timed_pts = thin_points("gemm", pts)
    ref = [[*p, float(p[0] * p[1] * p[2]) / 1e9 + 5.0] for p in pts]
    timed = [[*p, 0.97 * (float(p[0] * p[1] * p[2]) / 1e9 + 5.0)] for p in timed_pts]
    rows = fill_rows(ref, timed, pts)
    assert [tuple(r[:3]) for r in rows] == [tuple(p) for p in pts]
    for r, f in zip(rows, ref):
        assert abs(r[3] / f[3] - 0.97) < 1e-3




def test_host_stage_times_forward_and_generate_round_robin(monkeypatch) -> None:
    """The host stage (host.time_host_families): every family's forward and generate() timed in
    one loop, round by round, so that a slow moment of the host hits every family alike; both
    sections come out of the one loop (forward for all, generate for those asked)."""
    calls: list[tuple[str, str]] = []
    real = host.tiny_model

    def traced(family, layers, device):
        model = real(family, layers, device)
        forward, generate = model.forward, model.generate
        inside = []   # generate's own forward calls are not the stage's

        def gen(*a, **k):
            calls.append((family, "generate"))
            inside.append(1)
            try:
                return generate(*a, **k)
            finally:
                inside.pop()
        model.forward = lambda *a, **k: (inside or calls.append((family, "forward")), forward(*a, **k))[1]
        model.generate = gen
        return model

    monkeypatch.setattr(host, "tiny_model", traced)
    fwd, gen = host.time_host_families(torch.device("cpu"), ("llama", "opt"), ("opt",), log=lambda _: None, rounds=2)
    assert set(fwd) == {"llama", "opt"} and set(gen) == {"opt"}
    assert all(v["per_layer_us"] >= 0 for v in fwd.values()) and gen["opt"]["step_per_layer_us"] >= 0
    families = [f for f, _ in calls]
    switches = sum(a != b for a, b in zip(families, families[1:]))
    assert switches == 3   # rounds (a warm-up and 2 timed), the start rotated: llama opt | opt llama | llama opt
    per_round = 2 * host.FORWARD_PER_ROUND * 2 + 4   # forward of both depths, then 4 generate calls (opt)
    assert len(calls) == 3 * per_round
