"""The benchmark matrix: model x workload x GPU count x parallel mode, with readable ids."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from estimator.device import DeviceSpec, get_device
from estimator.errors import EstimatorError, UnmodelledConfig
from estimator.model import ModelSpec, load_model

# The CPU case of a machine without GPUs: the smallest model at a small workload.
CPU_WORKLOAD = (1, 128)


@dataclass(frozen=True)
class Case:
    model: str
    batch: int
    seq: int
    gpus: int          # 0 = the CPU case
    parallel: str
    dtype: str         # "auto" = the model's own
    device: str = "gpu"  # short name of the machine's GPU, for readable ids (opt-1.3b-H100-1gpu)

    @property
    def id(self) -> str:
        short = short_model_name(self.model)
        parts = [short, "cpu"] if self.gpus == 0 else [short, self.device, f"{self.gpus}gpu"]
        if (self.batch, self.seq) != (16, 1024):
            parts.append(f"{self.batch}x{self.seq}")
        if self.gpus > 1 and self.parallel != "pipeline":
            parts.append(self.parallel)
        if self.dtype != "auto":
            parts.append(self.dtype)
        return "-".join(parts)


def short_model_name(model: str) -> str:
    """'opt-1.3b' for a zoo name; for a path, the file's stem, or its folder's name when the
    file is a config.json (my-model/config.json -> my-model), so path cases get distinct ids."""
    path = model.rstrip("/")
    if path.lower().endswith(".json"):
        stem = Path(path).stem
        return Path(path).parent.name or stem if stem == "config" else stem
    return path.split("/")[-1]


@dataclass(frozen=True)
class Machine:
    gpu_count: int
    gpu_name: str | None            # NVML / torch name
    device: DeviceSpec | None       # entry of the GPU database, None if unknown
    problem: str | None             # why GPU cases cannot run here


@lru_cache(maxsize=1)
def detect() -> Machine:
    """The GPUs this process sees and their database entry."""
    import torch
    if not torch.cuda.is_available():
        return Machine(0, None, None, "no CUDA GPU on this machine")
    name = torch.cuda.get_device_name(0)
    try:
        dev = get_device(name)
    except EstimatorError as exc:
        return Machine(torch.cuda.device_count(), name, None, str(exc))
    return Machine(torch.cuda.device_count(), name, dev, None)


def device_tag() -> str:
    """Short name of this machine's GPU for case ids ("H100"), or "gpu" when unknown."""
    m = detect()
    return m.device.aliases[0] if m.device else "gpu"


def enumerate_cases(models, batches, seqs, gpus, parallel, dtype, device: str = "gpu") -> list[Case]:
    cases = [Case(m, b, s, n, p, dtype, device) for m in models for b in batches for s in seqs for n in gpus
             for p in (parallel if n > 1 else ("pipeline",))]
    seen, unique = set(), []
    for c in cases:
        if c.id not in seen:
            seen.add(c.id)
            unique.append(c)
    return unique


def modelled(models) -> list[str]:
    """The models whose configs the estimator models (a quantized one's cases skip)."""
    out = []
    for m in models:
        try:
            load_model(m)
        except UnmodelledConfig:
            continue
        out.append(m)
    return out


def spec_or_skip(model: str) -> ModelSpec:
    """The case's model; a config the estimator does not model (quantized) skips, saying why."""
    try:
        return load_model(model)
    except UnmodelledConfig as exc:
        pytest.skip(str(exc))


def cpu_case(models, dtype: str) -> Case:
    smallest = min(modelled(models) or models, key=lambda m: spec_or_skip(m).param_count())
    return Case(smallest, *CPU_WORKLOAD, 0, "pipeline", "float32" if dtype == "auto" else dtype)
