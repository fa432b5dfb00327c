"""Which machine a profile describes: the device to calibrate and the profile's header fields."""
from __future__ import annotations

import datetime
import os
import platform
import socket
from pathlib import Path
from typing import Any

import torch

from ..errors import EstimatorError
from . import nvml

SCHEMA_VERSION = 1


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda:0 when available else cpu; 'cuda' -> cuda:0; also 'cuda:N' and 'cpu'."""
    name = (device or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EstimatorError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        dev = torch.device(name)
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise EstimatorError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s) visible")
        return torch.device("cuda", index)
    raise EstimatorError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def cpu_name() -> str:
    """CPU model name from /proc/cpuinfo (or platform), without core count."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def header(device: torch.device) -> dict[str, Any]:
    """The profile's identifying fields, in schema order, with empty result fields."""
    import transformers

    gpu = device.type == "cuda"
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "gpu" if gpu else "cpu",
        "device_name": torch.cuda.get_device_name(device) if gpu else cpu_name(),
        "gpu_count": torch.cuda.device_count() if gpu else 0,
        "driver": nvml.driver_version() if gpu else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "cpu": f"{cpu_name()} ({os.cpu_count()} logical cores)",
        "duration_s": 0.0,
        "gemm": {}, "sdpa": {}, "copy": [], "elementwise_floor_us": 0.0, "launch_us": 0.0,
        "host": {}, "p2p": [], "allreduce": {}, "power": {},
    }
