"""The typed profile schema (estimator/profile_schema.py): one declaration from which validation,
parsing, merging, host overlays and the transfer carry-over are derived."""
from __future__ import annotations

import copy
import json

import pytest

from estimator.device import get_device, host_device
from estimator.errors import EstimatorError
from estimator.profile import PROFILE_DIR, load_profile_file, shipped_profile, transfer_profile
from estimator.profile_check import check_profile
from estimator.profile_schema import (HEADER, POWER_OPTIONAL, POWER_REQUIRED, SECTIONS, GenerateTimes, HostTimes,
                                      ProfileData, overlay_host, parse_profile, sections)
from estimator.transfer import POWER_IDLE_KEYS, POWER_LOAD_KEYS


def _shipped(key: str = "h100-sxm5-80gb") -> dict:
    return json.loads((PROFILE_DIR / f"{key}.json").read_text())


def test_every_shipped_key_is_declared() -> None:
    declared = {f.name for f in SECTIONS}
    for path in sorted(PROFILE_DIR.glob("*.json")):
        raw = json.loads(path.read_text())
        assert set(raw) <= declared, path.name
        assert set(raw["power"]) <= set(POWER_REQUIRED + POWER_OPTIONAL) | {"idle_w_per_gpu"}


def test_power_levels_and_their_transfer_scaling() -> None:
    assert POWER_REQUIRED == ("idle_w", "launch_bound_w", "gemm_w", "memory_w")
    assert set(POWER_LOAD_KEYS) == {"gemm_w", "memory_w", "launch_bound_w", "mixed_w"}
    assert POWER_IDLE_KEYS == ("idle_w", "hot_idle_w")


def test_parse_is_a_typed_view_of_the_json() -> None:
    raw = _shipped()
    data = parse_profile(raw, "x")
    assert data.raw is raw and data.gemm is raw["gemm"] and data.copy is raw["copy"]
    assert all(isinstance(n, int) for n in data.allreduce)
    assert data.host["llama"] == HostTimes(raw["host"]["llama"]["per_layer_us"], raw["host"]["llama"]["fixed_us"])
    assert data.kind == "gpu" and data.elementwise_floor_us == raw["elementwise_floor_us"]
    empty = parse_profile({"gemm": {}, "sdpa": {}, "copy": [[1, 1.0]], "host": None, "generate": {"a": {}}}, "y")
    assert empty.host == {} and empty.power is None and empty.p2p == [] and empty.elementwise_floor_us == 2.0
    assert empty.generate == {}


def test_generate_entries_incomplete_ones_are_none() -> None:
    data = parse_profile({"copy": [], "generate": {"a": {"setup_us": 1, "step_us": 2, "step_per_layer_us": 3},
                                                   "b": {"setup_us": 1}}}, "z")
    assert data.generate == {"a": GenerateTimes(1.0, 0.0, 2.0, 3.0), "b": None}


def test_validation_walks_the_declared_sections_in_order() -> None:
    raw = _shipped()
    raw["sdpa"] = {**raw["sdpa"], "float16": []}
    raw["kind"] = 3
    with pytest.raises(EstimatorError, match=r"sdpa\.float16 must be a non-empty list"):
        check_profile(raw, "p")   # sdpa is declared before kind
    raw["sdpa"] = _shipped()["sdpa"]
    with pytest.raises(EstimatorError, match="kind must be a string, got 3"):
        check_profile(raw, "p")
    assert check_profile(_shipped(), "p") is not None


def test_overlay_keeps_every_other_section_object() -> None:
    raw = _shipped("h200-sxm-141gb")
    out = overlay_host(raw, {"llama": {"per_layer_us": 1.0, "fixed_us": 2.0}}, {"opt": 9.0})
    assert [f.name for f in sections(overlay=True)] == ["host", "dispatch", "generate", "host_ops"]
    assert out["gemm"] is raw["gemm"] and out["host"]["opt"] == raw["host"]["opt"]
    assert out["dispatch"] == {**raw["dispatch"], "opt": 9.0} and list(out) == list(raw)


def test_transfer_carry_over_empties_links_and_scales_power() -> None:
    prof = transfer_profile(get_device("A100"), "H100")
    assert prof.raw["p2p"] == [] and prof.raw["allreduce"] == {} and prof.data.p2p == []
    assert prof.power.power_limit_w == get_device("A100").power_limit_w
    assert prof.raw["gemm"] is shipped_profile("h100-sxm5-80gb").raw["gemm"]


def test_profile_accessors_for_the_bench(tmp_path) -> None:
    prof = load_profile_file(PROFILE_DIR / "h100-sxm5-80gb.json")
    assert tuple(prof.header) == HEADER and prof.header["gpu_count"] == prof.raw["gpu_count"]
    with pytest.raises(TypeError):
        prof.header["date"] = "x"   # read-only
    cpu = dict(_shipped(), kind="cpu", device_name="Some CPU")
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(cpu))
    assert load_profile_file(path).host_device() == host_device(copy.deepcopy(cpu))
    assert isinstance(prof.data, ProfileData)


def test_a_cpu_profile_is_refused_for_a_gpu_device(tmp_path, capsys) -> None:
    # issue 28: a CPU calibration priced an H100 at 416 s without a word
    from estimator import Workload, estimate
    from estimator.__main__ import main
    path = tmp_path / "my-gpu.json"
    path.write_text(json.dumps(dict(_shipped(), kind="cpu", device_name="Some CPU")))
    with pytest.raises(EstimatorError, match=r"is a CPU calibration \(Some CPU\), H100 SXM5 80GB is a GPU") as exc:
        estimate("facebook/opt-1.3b", "H100", profile=str(path))
    assert "\n" not in str(exc.value) and "calibrate on a machine with that GPU" in str(exc.value)
    assert main(["estimate", "--model", "facebook/opt-1.3b", "--device", "H100", "--profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CPU calibration" in err
    cpu = load_profile_file(path)       # on the CPU it describes, the CPU profile still estimates
    assert estimate("facebook/opt-1.3b", cpu.host_device(), Workload(1, 16), cpu).runtime_ms > 0
