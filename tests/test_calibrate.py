"""CPU calibration (quick mode) and the NVML helpers on a machine without a GPU."""
from __future__ import annotations

import json

import pytest
import torch

from estimator import calibrate as cal
from estimator import nvml

TOP_KEYS = ["schema_version", "kind", "device_name", "gpu_count", "driver", "torch", "transformers",
            "date", "hostname", "cpu", "duration_s", "gemm", "sdpa", "copy",
            "elementwise_floor_us", "launch_us", "host", "p2p", "allreduce", "power", "elementwise"]


@pytest.fixture(scope="module")
def profile() -> dict:
    lines: list[str] = []
    prof = cal.calibrate("cpu", quick=True, log=lines.append)
    assert lines, "calibrate logs its progress"
    return prof


def test_top_level_schema(profile: dict) -> None:
    assert list(profile) == TOP_KEYS
    assert profile["schema_version"] == 1
    assert profile["kind"] == "cpu" and profile["gpu_count"] == 0
    assert profile["driver"] is None
    assert profile["torch"] == torch.__version__
    assert profile["device_name"] and profile["cpu"] and profile["hostname"]
    assert profile["date"].endswith("+00:00")
    assert 0 < profile["duration_s"] < 60
    assert profile["p2p"] == [] and profile["allreduce"] == {} and profile["power"] == {}


def test_gemm(profile: dict) -> None:
    assert set(profile["gemm"]) == {"float32", "bfloat16"}
    for dtype, rows in profile["gemm"].items():
        assert rows, dtype
        for m, n, k, us in rows:
            assert min(m, n, k) > 0 and us > 0
        flops = [(m * n * k, us) for m, n, k, us in rows]
        smallest, largest = min(flops), max(flops)
        assert largest[1] > smallest[1], f"{dtype}: the largest GEMM should take longest"


def test_sdpa(profile: dict) -> None:
    rows = profile["sdpa"]["float32"]
    assert {(bh, s, d) for bh, s, d, _ in rows} == {(4, 64, 64), (4, 256, 64), (16, 64, 64), (16, 256, 64)}
    assert all(us > 0 for *_, us in rows)


def test_copy_grows_with_bytes(profile: dict) -> None:
    rows = sorted(profile["copy"])
    assert len(rows) >= 3 and all(us > 0 for _, us in rows)
    # 256x more bytes than the smallest point: at least 10x the fastest point's time, even when a
    # loaded 2-core machine stalls one small point (a plain first-vs-last comparison flaked)
    assert rows[-1][0] >= 64 * rows[0][0]
    assert rows[-1][1] > 10 * min(us for _, us in rows)


def test_launch_and_floor(profile: dict) -> None:
    assert profile["launch_us"] > 0
    assert profile["elementwise_floor_us"] > 0


def test_host_overhead(profile: dict) -> None:
    host = profile["host"]
    assert set(host) <= set(cal.HOST_FAMILIES)
    for family in ("llama", "opt"):
        assert host[family]["per_layer_us"] > 0
        assert host[family]["layers_measured"] == list(cal.HOST_LAYERS)
        assert isinstance(host[family]["fixed_us"], float)


def test_json_and_save_round_trip(profile: dict, tmp_path) -> None:
    json.dumps(profile)
    path = cal.save_profile(profile, tmp_path / "sub" / "cpu.json")
    assert json.loads(path.read_text()) == profile


def test_grids() -> None:
    full = cal.gemm_points("gpu", "float16")
    assert len(full) == 4 * 7 * 7 + 4 * 3 * 4
    assert (16384, 131072, 4096) in full
    assert len(cal.gemm_points("gpu", "tf32")) == 2 * 3 * 3 + 2 * 2
    assert len(cal.sdpa_points("gpu", "bfloat16")) == 4 * 6 * 2
    assert len(cal.sdpa_points("gpu", "float32")) == 4
    assert cal.copy_sizes("gpu")[-1] == 2 * cal.GB and cal.copy_sizes("cpu")[-1] == 256 * cal.MB
    assert cal.allreduce_group_sizes(1) == []
    assert cal.allreduce_group_sizes(4) == [2, 4]
    assert cal.allreduce_group_sizes(6) == [2, 4, 6]


def test_resolve_device() -> None:
    assert cal.resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert cal.resolve_device("auto").type == "cpu"
        with pytest.raises(cal.EstimatorError):
            cal.resolve_device("cuda")
    with pytest.raises(cal.EstimatorError):
        cal.resolve_device("tpu")


def test_no_gpu_paths_are_empty() -> None:
    if torch.cuda.is_available():
        pytest.skip("machine has a GPU")
    assert cal.measure_p2p() == []
    assert cal.measure_allreduce(1) == {}


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
    job = cal.AllreduceJob(2)  # the spawned workers cannot use CUDA here, so they fail
    assert job.run(timeout_s=60, log=lines.append) == {}
    assert any("allreduce: failed" in line for line in lines)
    assert all(not p.is_alive() for p in job.ctx.processes)


def test_allreduce_job_abort_kills_waiting_workers() -> None:
    job = cal.AllreduceJob(2)
    job.abort()
    assert all(not p.is_alive() for p in job.ctx.processes)
