"""bench.machine: where the numbers came from, never raising and never importing torch."""
import json
import subprocess
import sys
from pathlib import Path

from bench import machine


def test_machine_info_never_raises(monkeypatch):
    info = machine.machine_info()
    for key in ("gpu", "gpu_count", "driver", "cpu", "hostname", "python", "torch",
                "transformers", "accelerate", "git_commit", "dirty", "date"):
        assert key in info
    assert isinstance(info["gpu_count"], int)
    json.dumps(info)
    monkeypatch.setattr(machine, "_gpus_from_nvml", lambda: 1 / 0)
    monkeypatch.setattr(machine.subprocess, "run", lambda *a, **k: 1 / 0)
    broken = machine.machine_info()
    assert broken["gpu"] is None and broken["gpu_count"] == 0
    assert broken["git_commit"] is None and broken["dirty"] is None


def test_machine_info_does_not_import_torch():
    # torch cannot be imported twice in a process (pytester restores sys.modules between
    # in-process runs), so the machine probe must only use a torch the benchmark already loaded
    code = ("import sys, bench.report, bench.machine as m; info = m.machine_info(); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(info['gpu_count'])")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
