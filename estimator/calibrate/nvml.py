"""Thin, failure-tolerant NVML helpers: every query returns None (or False) instead of raising.

Indices are NVML indices (what nvidia-smi shows). Under CUDA_VISIBLE_DEVICES they can differ
from torch's ``cuda:N``; ``nvml_index(cuda_index)`` maps one to the other. NVML is initialised
once, lazily, on the first query; a machine without the library or a driver simply answers None.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable, Optional

_lock = threading.Lock()
_state: dict[str, Any] = {"tried": False, "ok": False, "mod": None, "handles": {}}


def _nvml() -> Any:
    """The initialised pynvml module, or None when NVML is unusable here."""
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                import pynvml  # nvidia-ml-py

                pynvml.nvmlInit()
                _state["mod"], _state["ok"] = pynvml, True
            except Exception:  # library missing, no driver, no permission
                _state["ok"] = False
        return _state["mod"] if _state["ok"] else None


def _query(fn: Callable[[Any], Any]) -> Any:
    """fn(pynvml) or None on any NVML (or other) error."""
    mod = _nvml()
    if mod is None:
        return None
    try:
        return fn(mod)
    except Exception:
        return None


def _handle(index: int) -> Any:
    """Cached NVML device handle for an NVML index, or None."""
    handles = _state["handles"]
    if index not in handles:
        h = _query(lambda m: m.nvmlDeviceGetHandleByIndex(int(index)))
        if h is None:
            return None
        handles[index] = h
    return handles[index]


def _device_query(index: int, fn: Callable[[Any, Any], Any]) -> Any:
    """fn(pynvml, handle) for one device, or None."""
    h = _handle(index)
    if h is None:
        return None
    return _query(lambda m: fn(m, h))


def nvml_available() -> bool:
    """True when NVML initialised and sees at least one device."""
    return bool(device_count())


def device_count() -> Optional[int]:
    """Number of GPUs NVML sees (ignores CUDA_VISIBLE_DEVICES), or None."""
    return _query(lambda m: int(m.nvmlDeviceGetCount()))


def driver_version() -> Optional[str]:
    """Driver version string such as '580.159.04', or None."""
    v = _query(lambda m: m.nvmlSystemGetDriverVersion())
    if isinstance(v, bytes):
        v = v.decode()
    return str(v) if v is not None else None


def energy_mj(index: int = 0) -> Optional[int]:
    """Total energy the GPU used since the driver loaded, in millijoules (updates every 20-100 ms)."""
    v = _device_query(index, lambda m, h: m.nvmlDeviceGetTotalEnergyConsumption(h))
    return int(v) if v is not None else None


def power_w(index: int = 0) -> Optional[float]:
    """Instantaneous (averaged by the driver) board power draw in watts, or None."""
    v = _device_query(index, lambda m, h: m.nvmlDeviceGetPowerUsage(h))
    return v / 1000.0 if v is not None else None


def power_limit_w(index: int = 0) -> Optional[float]:
    """Enforced power limit in watts, or None."""
    v = _device_query(index, lambda m, h: m.nvmlDeviceGetEnforcedPowerLimit(h))
    return v / 1000.0 if v is not None else None


def sm_clock_mhz(index: int = 0) -> Optional[float]:
    """Current SM clock in MHz, or None."""
    v = _device_query(index, lambda m, h: m.nvmlDeviceGetClockInfo(h, m.NVML_CLOCK_SM))
    return float(v) if v is not None else None


def max_sm_clock_mhz(index: int = 0) -> Optional[float]:
    """Maximum SM clock in MHz, or None."""
    v = _device_query(index, lambda m, h: m.nvmlDeviceGetMaxClockInfo(h, m.NVML_CLOCK_SM))
    return float(v) if v is not None else None


def device_name(index: int = 0) -> Optional[str]:
    """Device name as NVML reports it, or None."""
    v = _device_query(index, lambda m, h: m.nvmlDeviceGetName(h))
    if isinstance(v, bytes):
        v = v.decode()
    return str(v) if v is not None else None


def _uuid(index: int) -> Optional[str]:
    """NVML UUID ('GPU-xxxxxxxx-...') of a device, or None."""
    v = _device_query(index, lambda m, h: m.nvmlDeviceGetUUID(h))
    if isinstance(v, bytes):
        v = v.decode()
    return str(v) if v is not None else None


def nvml_index(cuda_index: int = 0) -> int:
    """NVML index of torch's cuda:<cuda_index> (UUID match, else CUDA_VISIBLE_DEVICES, else same)."""
    try:
        import torch

        want = str(torch.cuda.get_device_properties(cuda_index).uuid).lower().removeprefix("gpu-")
        for i in range(device_count() or 0):
            got = (_uuid(i) or "").lower().removeprefix("gpu-")
            if got and got == want:
                return i
    except Exception:
        pass
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if cuda_index < len(visible) and visible[cuda_index].isdigit():
        return int(visible[cuda_index])
    return cuda_index
