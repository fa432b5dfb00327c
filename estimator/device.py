"""GPU specs as data: one JSON file per GPU under devices/, every number with its source."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from estimator.errors import EstimatorError, closest
from estimator.jsonin import read_json

DEVICES_DIR = Path(__file__).parent / "devices"
GB = 1e9  # bytes: memory is sold and reported in 10^9 bytes (torch's GiB is 2^30)

# JSON field -> DeviceSpec.tflops key; all dense (no 2:4 sparsity), tensor cores except float32.
TFLOPS_FIELDS = {"tflops_float16": "float16", "tflops_bfloat16": "bfloat16",
                 "tflops_tf32": "tf32", "tflops_float32": "float32"}
NUMBER_FIELDS = ("sm_count", *TFLOPS_FIELDS, "memory_gb", "memory_usable_gb", "memory_bandwidth_gb_s", "power_limit_w",
                 "idle_power_w", "interconnect_gb_s", "pcie_generation", "l2_cache_mb")
TEXT_FIELDS = ("interconnect",)
INTEGER_FIELDS = ("sm_count", "pcie_generation")   # counts: 0.5 SMs is no GPU (ZeroDivisionError)
MAX_NUMBER = 1e12   # above every real rate, size or count; larger only overflows arithmetic downstream


def _number_problem(field: str, value: Any) -> str | None:
    """Why `value` cannot be the number `field` holds (positive, finite, whole for counts), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a positive number"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite positive number"
    if not 0 < value <= MAX_NUMBER:
        return f"must be a positive number of at most {MAX_NUMBER:g}"
    if field in INTEGER_FIELDS and value != int(value):
        return "must be a whole number"
    return None


@dataclass(frozen=True)
class DeviceSpec:
    """One accelerator (or host): peak rates, memory, power and links, with the source of each."""

    key: str
    name: str
    aliases: tuple[str, ...]
    architecture: str
    sm_count: int
    tflops: dict[str, float]  # dense peak per dtype: "float16", "bfloat16", "tf32", "float32"
    memory_gb: float  # 10^9 bytes, as sold
    memory_usable_gb: float  # 10^9 bytes torch sees (get_device_properties(0).total_memory): what `fits` uses
    memory_bandwidth_gb_s: float
    power_limit_w: float
    idle_power_w: float  # draw while waiting with clocks up (pipeline bubbles)
    interconnect: str  # "NVLink4", "PCIe5", ...
    interconnect_gb_s: float  # per GPU, per direction
    pcie_generation: int
    l2_cache_mb: float
    sources: dict[str, str]  # JSON field name -> where its value comes from
    kind: str = "gpu"  # "cpu" for host descriptions built elsewhere
    # alias -> keys of the other devices it could also mean ("A100": the 40 GB part exists too)
    ambiguous_aliases: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any], key: str) -> DeviceSpec:
        """Build from a devices/*.json dict; a missing field or source, or a value <= 0 or not finite, raises."""
        values, sources = {}, {}
        for field in (*NUMBER_FIELDS, *TEXT_FIELDS):
            entry = data.get(field)
            if not isinstance(entry, dict) or "value" not in entry:
                raise EstimatorError(f"device {key}: field {field!r} missing (expected {{value, source}})")
            value, source = entry["value"], entry.get("source")
            if not isinstance(source, str) or not source.strip():
                raise EstimatorError(f"device {key}: field {field!r} has no source")
            problem = _number_problem(field, value) if field in NUMBER_FIELDS else None
            if problem:
                shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
                raise EstimatorError(f"device {key}: field {field!r} {problem}, got {shown}")
            if field in TEXT_FIELDS and (not isinstance(value, str) or not value):
                raise EstimatorError(f"device {key}: field {field!r} must be a non-empty string")
            values[field], sources[field] = value, source
        for field in ("name", "architecture"):
            if not isinstance(data.get(field), str) or not data[field]:
                raise EstimatorError(f"device {key}: field {field!r} missing")
        aliases = data.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise EstimatorError(f"device {key}: 'aliases' must be a list of strings")
        ambiguous = data.get("ambiguous_aliases", {})
        if not isinstance(ambiguous, dict) or not all(
                a in aliases and isinstance(o, list) and o and all(isinstance(k, str) for k in o)
                for a, o in ambiguous.items()):
            raise EstimatorError(f"device {key}: 'ambiguous_aliases' must map some of its aliases to lists of "
                                 "the other device keys they could mean")
        return cls(
            key=key, name=data["name"], aliases=tuple(aliases), architecture=data["architecture"],
            sm_count=int(values["sm_count"]),
            tflops={dtype: float(values[field]) for field, dtype in TFLOPS_FIELDS.items()},
            memory_gb=float(values["memory_gb"]), memory_usable_gb=float(values["memory_usable_gb"]),
            memory_bandwidth_gb_s=float(values["memory_bandwidth_gb_s"]),
            power_limit_w=float(values["power_limit_w"]), idle_power_w=float(values["idle_power_w"]),
            interconnect=values["interconnect"], interconnect_gb_s=float(values["interconnect_gb_s"]),
            pcie_generation=int(values["pcie_generation"]), l2_cache_mb=float(values["l2_cache_mb"]),
            sources=sources, ambiguous_aliases={a: tuple(o) for a, o in ambiguous.items()},
        )

    def matmul_tflops(self, dtype: str, tf32: bool = False) -> float:
        """Dense peak TFLOP/s of a matmul in dtype; float32 uses tensor-core TF32 only if tf32."""
        dtype = dtype.removeprefix("torch.")
        if dtype == "float32" and tf32:
            return self.tflops["tf32"]
        if dtype not in self.tflops:
            raise EstimatorError(f"unknown dtype {dtype!r}{closest(dtype, self.tflops)}")
        return self.tflops[dtype]


def _normalize(name: str) -> str:
    """Lookup form of a name: lower case without spaces, '-' or '_'."""
    return re.sub(r"[\s\-_]", "", name).lower()


def load_device_file(path: Path) -> DeviceSpec:
    """Read one device JSON file; its key is the file name without .json."""
    data = read_json(path, f"cannot read device file {str(path)!r}", allow_constants=False)
    if not isinstance(data, dict):
        raise EstimatorError(f"device file {str(path)!r} must hold a JSON object")
    return DeviceSpec.from_json(data, path.stem)


@lru_cache(maxsize=None)
def _shipped() -> tuple[DeviceSpec, ...]:
    """All devices/*.json, loaded once, sorted by key."""
    return tuple(load_device_file(p) for p in sorted(DEVICES_DIR.glob("*.json")))


@lru_cache(maxsize=None)
def _index() -> dict[str, DeviceSpec]:
    """Normalized key, name and aliases -> device; a name claimed by two devices raises."""
    index: dict[str, DeviceSpec] = {}
    for device in _shipped():
        for name in (device.key, device.name, *device.aliases):
            other = index.setdefault(_normalize(name), device)
            if other.key != device.key:
                raise EstimatorError(f"device name {name!r} is claimed by both {other.key} and {device.key}")
    keys = {d.key for d in _shipped()}
    for device in _shipped():
        unknown = [k for others in device.ambiguous_aliases.values() for k in others if k not in keys]
        if unknown:
            raise EstimatorError(f"device {device.key}: ambiguous_aliases names unknown devices {unknown}")
    return index


def list_devices() -> list[DeviceSpec]:
    """Every shipped device, sorted by key."""
    return list(_shipped())


# Devices read from a user's .json path, by their key: profiles are built and cached per device
# key (estimator.profile looks the device up again by it), so a file device must resolve too.
_FILE_DEVICES: dict[str, DeviceSpec] = {}


def _device_from_path(path: Path) -> DeviceSpec:
    """A device file given by path: the shipped device when it is one unchanged, else the file's
    device under the key '<file stem>@<absolute path>' (unique, so nothing cached for a shipped
    device or another file of the same name is reused for it), registered for get_device."""
    device = load_device_file(path)
    shipped = _index().get(_normalize(device.key))
    if shipped == device:
        return shipped
    device = dataclasses.replace(device, key=f"{device.key}@{path.resolve()}")
    _FILE_DEVICES[device.key] = device
    return device


_BY_NAME: dict[str, DeviceSpec] = {}   # names as callers spell them -> shipped device (bounded)


def get_device(name: str) -> DeviceSpec:
    """Device by key, name, alias or NVML name (case, spaces, '-', '_' ignored), or a .json path."""
    if name in _FILE_DEVICES:
        return _FILE_DEVICES[name]
    if name.lower().endswith(".json"):
        return _device_from_path(Path(name).expanduser())
    device = _BY_NAME.get(name)   # the exact string seen before: no normalizing again
    if device is not None:
        return device
    device = _index().get(_normalize(name))
    if device is not None and len(_BY_NAME) < 4096:
        _BY_NAME[name] = device
    if device is None:
        names = [n for d in _shipped() for n in (d.key, d.name, *d.aliases)]
        raise EstimatorError(f"unknown device {name!r}{closest(name, names)}")
    return device


def ambiguity_note(name: str) -> str | None:
    """For a name that picks one of several devices ("A100": the 80 GB part, a 40 GB one exists),
    one line saying which it took and how to name the others; else None."""
    if name in _FILE_DEVICES or name.lower().endswith(".json"):
        return None
    device = get_device(name)
    for alias, others in device.ambiguous_aliases.items():
        if _normalize(alias) == _normalize(name):
            named = ", ".join(f"{get_device(k).name} ({k})" for k in others)
            return f"device {name!r} taken as {device.name} ({device.key}); it could also mean {named}: name it to pick it"
    return None


def host_device(profile: dict) -> DeviceSpec:
    """A CPU described by its own calibration profile (no datasheet): peaks are what it measured."""
    gemm = profile.get("gemm", {})
    best = {d: max(2.0 * m * n * k / t for m, n, k, t in pts) / 1e6 for d, pts in gemm.items() if pts}
    fp32 = best.get("float32", 1.0)
    tflops = {d: best.get(d, fp32) for d in ("float16", "bfloat16", "float32")} | {"tf32": fp32}
    bw = max(2.0 * b / t for b, t in profile["copy"]) / 1e3  # bytes/us -> GB/s
    name = profile.get("device_name") or "CPU"
    return DeviceSpec(key="cpu", name=name, aliases=("cpu",), architecture="cpu", sm_count=1, tflops=tflops,
                      memory_gb=1e3, memory_usable_gb=1e3, memory_bandwidth_gb_s=bw, power_limit_w=1.0, idle_power_w=0.0,
                      interconnect="none", interconnect_gb_s=1.0, pcie_generation=0, l2_cache_mb=0.0,
                      sources={"all": "measured by estimator.calibrate on this CPU"}, kind="cpu")
