"""The suite's profile choice and its per-user cache (bench/calibration.py), with the torch
measurements faked: cache key, hit and miss, the three --bench-calibrate modes, the host overlay,
an unwritable cache, and the cost of a cache hit (pytest-benchmark)."""
from __future__ import annotations

import copy
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from bench import calibration
from bench.calibration import MachineKey, ProfileCache, cache_root, resolve, this_machine
from estimator.device import get_device
from estimator.profile import shipped_profile

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = json.loads((ROOT / "tests" / "data" / "synthetic-profile.json").read_text())
KEY = MachineKey("NVIDIA RTX A5000", 2, "580.1", "2.11.0+cu130", "Some CPU (8 logical cores)")
HOST = {"llama": {"per_layer_us": 111.0, "fixed_us": 222.0, "layers_measured": [2, 12]}}


def fake_calibration(date: str = "2026-11-28T10:00:00+00:00", name: str = "NVIDIA RTX A5000") -> dict:
    return dict(copy.deepcopy(SYNTHETIC), device_name=name, gpu_count=2, date=date)


class Fakes:
    """calibrate / measure_host stand-ins that count their calls."""

    def __init__(self, raw: dict | None = None) -> None:
        self.raw, self.calibrations, self.host_runs, self.lines = raw or fake_calibration(), 0, 0, []

    def calibrate(self, log):
        self.calibrations += 1
        log("stage one")
        return copy.deepcopy(self.raw)

    def measure_host(self, log):
        self.host_runs += 1
        return copy.deepcopy(HOST), {"llama": 42.0}

    def run(self, mode, device, root, explicit=None, key=KEY, needed=()):
        return resolve(mode, explicit, device, ProfileCache(root, key, self.lines.append),
                       self.calibrate, self.measure_host, self.lines.append, needed)


# -- key and directory ----------------------------------------------------------------------------

def test_key_names_gpu_and_count_and_changes_with_every_field() -> None:
    assert KEY.key.startswith("nvidia-rtx-a5000-x2-")
    assert KEY.key == MachineKey(*vars(KEY).values()).key  # stable
    others = [replace(KEY, gpu="NVIDIA RTX A6000"), replace(KEY, gpu_count=1), replace(KEY, driver="580.2"),
              replace(KEY, torch="2.12.0"), replace(KEY, cpu="Other CPU (8 logical cores)")]
    assert len({KEY.key, *(k.key for k in others)}) == 6


def test_this_machine_without_gpu() -> None:
    import torch
    key = this_machine(None, 0)
    assert (key.gpu, key.gpu_count, key.driver, key.torch) == ("cpu", 0, None, torch.__version__)
    assert "logical cores" in key.cpu and key.key.startswith("cpu-x0-")


def test_cache_root_follows_xdg(tmp_path) -> None:
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "llm-perf-estimator"
    home = Path.home() / ".cache" / "llm-perf-estimator"
    assert cache_root({}) == home
    assert cache_root({"XDG_CACHE_HOME": "relative/dir"}) == home  # the XDG spec ignores relative paths


# -- modes ----------------------------------------------------------------------------------------

def test_auto_calibrates_an_unshipped_gpu_once_then_reuses_the_cache(tmp_path) -> None:
    fakes, a5000 = Fakes(), get_device("RTX A5000")
    assert shipped_profile(a5000.key) is None
    first = fakes.run("auto", a5000, tmp_path).profile
    assert fakes.calibrations == 1 and "stage one" in fakes.lines
    path = tmp_path / "profiles" / f"{KEY.key}.json"
    assert json.loads(path.read_text())["machine_key"]["gpu"] == "NVIDIA RTX A5000"
    second = fakes.run("auto", a5000, tmp_path).profile
    assert fakes.calibrations == 1 and fakes.host_runs == 0
    assert first.source == second.source == "cached calibration of 2026-11-28 10:00 (NVIDIA RTX A5000 x 2)"
    assert second.gemm_us(4096, 4096, 4096, "float16") == first.gemm_us(4096, 4096, 4096, "float16")
    other_machine = replace(KEY, driver="999.0")  # another key: a miss
    fakes.run("auto", a5000, tmp_path, key=other_machine)
    assert fakes.calibrations == 2


def test_always_recalibrates_and_replaces_the_cache(tmp_path) -> None:
    fakes, a5000 = Fakes(), get_device("RTX A5000")
    fakes.run("auto", a5000, tmp_path)
    fakes.raw = fake_calibration(date="2026-11-29T08:30:00+00:00")
    again = fakes.run("always", a5000, tmp_path).profile
    assert fakes.calibrations == 2 and "2026-11-29 08:30" in again.source
    assert "2026-11-29 08:30" in fakes.run("never", a5000, tmp_path).profile.source  # the new one cached


def test_cpu_case_calibrates_every_session_and_caches_nothing() -> None:
    runs = []

    def calibrate(log):
        runs.append(1)
        return fake_calibration(name="AMD EPYC")
    first = calibration.cpu_session_profile("auto", calibrate, print).profile
    calibration.cpu_session_profile("always", calibrate, print)
    assert len(runs) == 2 and first.source.startswith("calibration of this CPU at session start")
    never = calibration.cpu_session_profile("never", calibrate, print)
    assert never.profile is None and "--bench-calibrate never" in never.reason and len(runs) == 2


def test_never_measures_nothing(tmp_path) -> None:
    fakes = Fakes()
    cpu = fakes.run("never", None, tmp_path)
    assert cpu.profile is None and "--bench-calibrate never" in cpu.reason
    transfer = fakes.run("never", get_device("RTX A5000"), tmp_path).profile
    assert transfer.source.startswith("transfer")
    shipped = fakes.run("never", get_device("H100"), tmp_path).profile
    assert shipped.source.startswith("shipped h100-sxm5-80gb (calibrated 2026-11-26 on NVIDIA H100")
    assert shipped.source.endswith("its host times")
    assert fakes.calibrations == fakes.host_runs == 0
    assert not tmp_path.joinpath("profiles").exists()


def test_shipped_gpu_gets_this_machines_host_overlaid_and_cached(tmp_path) -> None:
    fakes, h100 = Fakes(), get_device("H100")
    shipped = shipped_profile(h100.key)
    prof = fakes.run("auto", h100, tmp_path).profile
    assert fakes.host_runs == 1 and fakes.calibrations == 0
    assert "shipped h100-sxm5-80gb" in prof.source and "host measured here" in prof.source
    assert prof.host_times("llama", "llama") == (111.0, 222.0)
    assert prof.host_times("opt", "opt") == shipped.host_times("opt", "opt")  # not measured: shipped
    assert prof.dispatch_hook_us("llama", "llama") == 42.0
    assert prof.gemm_us(4096, 4096, 4096, "float16") == shipped.gemm_us(4096, 4096, 4096, "float16")
    assert shipped.host_times("llama", "llama") != (111.0, 222.0)  # the shipped profile is untouched
    assert fakes.run("auto", h100, tmp_path).profile.host_times("llama", "llama") == (111.0, 222.0)
    assert fakes.host_runs == 1  # cached
    assert fakes.run("never", h100, tmp_path).profile.host_times("llama", "llama") == (111.0, 222.0)


def test_cached_host_lacking_a_needed_model_type_is_measured_again(tmp_path) -> None:
    fakes, h100 = Fakes(), get_device("H100")
    fakes.run("auto", h100, tmp_path, needed=("llama",))
    fakes.run("auto", h100, tmp_path, needed=("llama",))
    assert fakes.host_runs == 1                      # the cache covers llama
    fakes.run("auto", h100, tmp_path, needed=("llama", "gpt2"))
    assert fakes.host_runs == 2                      # gpt2 was never measured here
    fakes.run("never", h100, tmp_path, needed=("llama", "gpt2"))
    assert fakes.host_runs == 2                      # never measures nothing


def test_explicit_profile_file_is_used_as_it_is(tmp_path) -> None:
    fakes = Fakes()
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(fake_calibration()))
    prof = fakes.run("always", get_device("H100"), tmp_path / "cache", explicit=str(path)).profile
    assert prof.source == f"profile file {path} (calibrated 2026-11-28 10:00 on NVIDIA RTX A5000 x 2)"
    assert fakes.calibrations == fakes.host_runs == 0


def test_unwritable_cache_warns_and_goes_on(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    fakes = Fakes()
    with pytest.warns(UserWarning, match="cannot write the calibration cache"):
        prof = fakes.run("auto", None, blocker / "cache").profile
    assert prof is not None and fakes.calibrations == 1
    with pytest.warns(UserWarning):
        fakes.run("auto", None, blocker / "cache")
    assert fakes.calibrations == 2  # nothing was cached


@pytest.mark.parametrize("content", ["{not json", json.dumps([1, 2]), json.dumps({"gemm": {}})])
def test_broken_cache_file_is_a_miss(tmp_path, content) -> None:
    fakes = Fakes()
    path = tmp_path / "profiles" / f"{KEY.key}.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.warns(UserWarning, match="ignoring cached"):
        prof = fakes.run("auto", None, tmp_path).profile
    assert fakes.calibrations == 1 and prof.source.startswith("cached calibration")


def test_cached_profile_that_fails_validation_is_a_miss(tmp_path) -> None:
    fakes = Fakes()
    bad = dict(fake_calibration(), copy=[], machine_key=vars(KEY))
    path = tmp_path / "profiles" / f"{KEY.key}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(bad))
    with pytest.warns(UserWarning, match="ignoring cached calibration"):
        fakes.run("auto", None, tmp_path)
    assert fakes.calibrations == 1


# -- cost of a hit --------------------------------------------------------------------------------

@pytest.mark.parametrize("device", [None, "H100"], ids=["cached-calibration", "shipped-with-cached-host"])
def test_cache_hit_cost(benchmark, tmp_path, device) -> None:
    fakes = Fakes(dict(json.loads((ROOT / "estimator" / "profiles" / "h100-sxm5-80gb.json").read_text())))
    spec = get_device(device) if device else None

    def start():  # what the session fixture does on a hit: key this machine, look it up, load
        return fakes.run("auto", spec, tmp_path, key=this_machine(None, 0))

    start()  # fills the cache
    result = benchmark(start)
    assert result.profile is not None and fakes.calibrations + fakes.host_runs == 1
    benchmark.extra_info["target_s"] = 0.1   # reported, not asserted: a shared CPU moves it


# -- Profile.with_host ----------------------------------------------------------------------------

def test_with_host_keeps_the_rest_of_the_profile() -> None:
    shipped = shipped_profile("h200-sxm-141gb")
    mixed = shipped.with_host(HOST, {}, "label")
    assert mixed.source == "label" and mixed.raw["dispatch"] == shipped.raw["dispatch"]
    assert mixed.raw["gemm"] is shipped.raw["gemm"] and mixed.power == shipped.power
    assert mixed.raw["host"]["llama"] == HOST["llama"] and mixed.raw["host"]["opt"] == shipped.raw["host"]["opt"]


def test_calibration_module_imports_no_torch() -> None:
    import subprocess
    import sys
    code = "import sys, bench.calibration; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr


def test_full_and_host_calibration_entry_points_are_the_estimators() -> None:
    assert calibration.full_calibration("cpu").__name__ == "run"
    with pytest.raises(Exception):
        calibration.host_calibration(("llama",))(print)  # no CUDA here: fails instead of timing the CPU
    assert calibration.session_model_types(["AICrossSim/clm-60m", "facebook/opt-1.3b", "Qwen/Qwen2.5-0.5B"]) == (
        "llama", "opt", "qwen2")
