"""Where the numbers came from: GPUs (NVML, else an already imported torch), CPU, software
versions and the git commit. All probing of the machine lives here; report.py only renders.

Never imports torch itself (pytester restores sys.modules between in-process runs, and torch
cannot be imported twice in one process).
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def _visible(count: int) -> list[int]:
    """Indices CUDA_VISIBLE_DEVICES leaves visible (numeric form only; otherwise all)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return list(range(count))
    try:
        picked = [int(x) for x in env.split(",") if x.strip()]
    except ValueError:
        return list(range(count))
    return [i for i in picked if 0 <= i < count]


def _gpus_from_nvml() -> dict[str, Any] | None:
    try:
        import pynvml
    except Exception:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        def text(value: Any) -> str:
            return value.decode() if isinstance(value, bytes) else str(value)
        indices = _visible(pynvml.nvmlDeviceGetCount())
        names = [text(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)))
                 for i in indices]
        return {"gpu": names[0] if names else None, "gpu_count": len(names),
                "gpu_names": names, "driver": text(pynvml.nvmlSystemGetDriverVersion())}
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _gpus_from_torch() -> dict[str, Any] | None:
    """Only a torch the caller already imported: the report never pays for (or re-runs,
    under pytester's sys.modules restore, which crashes) torch's import."""
    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_available():
            return None
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return {"gpu": names[0] if names else None, "gpu_count": len(names),
                "gpu_names": names, "driver": None}
    except Exception:
        return None


def _cpu() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def available_ram_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """Host memory a new allocation can get without swapping (MemAvailable), None if unknown."""
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except Exception:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10, check=False)
    except Exception:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def machine_info() -> dict[str, Any]:
    """Where the numbers came from. Never raises; unknown values are None.

    GPUs via pynvml, else via torch.cuda when the caller has already imported torch (this
    function never imports torch itself), else {"gpu": None, "gpu_count": 0}.
    """
    info: dict[str, Any] = {"gpu": None, "gpu_count": 0, "gpu_names": [], "driver": None}
    try:
        info.update(_gpus_from_nvml() or _gpus_from_torch() or {})
    except Exception:
        pass
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    for key, get in (("cpu", _cpu), ("hostname", socket.gethostname),
                     ("python", platform.python_version),
                     ("platform", platform.platform)):
        try:
            info[key] = get()
        except Exception:
            info[key] = None
    info.update({
        "torch": _version("torch"), "transformers": _version("transformers"),
        "accelerate": _version("accelerate"),
        "git_commit": commit, "dirty": None if status is None else bool(status),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    info["python"] = info["python"] or sys.version.split()[0]
    return info
