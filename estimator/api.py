"""estimate(): runtime, peak memory per GPU, energy per token and throughput of one forward pass."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .device import GB, DeviceSpec, get_device
from .errors import EstimatorError
from .model import ModelSpec, load_model
from .profile import Profile, profile_for
from .schedule import forward_pass
from .workload import Workload


@dataclass
class Estimate:
    model: str
    device: str
    workload: dict
    runtime_ms: float
    memory_gb: float
    memory_gb_per_gpu: list[float]
    energy_j_per_token: float | None   # None: no power model (CPU)
    throughput_tokens_per_s: float
    fits: bool
    host_ms: float
    gpu_busy_ms: float                  # kernel time on the critical path (pipeline: all stages)
    bound: str                          # host | gpu: what the critical path mostly waits on
    params: int
    profile: str
    breakdown: list[dict] = field(default_factory=list)  # per group: time_ms, bound, flops, bytes
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def validate(spec: ModelSpec, w: Workload) -> None:
    """Raise EstimatorError for a workload the model or the parallel mode cannot run."""
    if w.seq > spec.max_positions:
        raise EstimatorError(f"seq {w.seq} exceeds the {spec.max_positions} positions of {spec.name}")
    if w.gpus == 1:
        return
    if w.parallel == "pipeline" and w.gpus > spec.layers:
        raise EstimatorError(f"pipeline over {w.gpus} GPUs needs at least {w.gpus} layers; {spec.name} has {spec.layers}")
    if w.parallel == "data" and w.batch % w.gpus:
        raise EstimatorError(f"data parallel over {w.gpus} GPUs needs a batch divisible by {w.gpus}, got {w.batch}")
    if w.parallel == "tensor" and (spec.heads % w.gpus or spec.kv_heads % w.gpus):
        raise EstimatorError(f"tensor parallel over {w.gpus} GPUs needs heads ({spec.heads}) and KV heads "
                             f"({spec.kv_heads}) divisible by {w.gpus}")


def estimate(model: str | ModelSpec, device: str | DeviceSpec, workload: Workload | None = None,
             profile: str | Profile | None = None) -> Estimate:
    """Predict one forward pass of `model` on `device` for `workload` (defaults: 16 x 1024, 1 GPU)."""
    spec = load_model(model) if isinstance(model, str) else model
    dev = get_device(device) if isinstance(device, str) else device
    w = workload or Workload(dtype=spec.dtype or "float16")
    validate(spec, w)
    prof = profile if isinstance(profile, Profile) else profile_for(dev, profile)
    p, mem = forward_pass(spec, dev, prof, w)
    runtime_us = p.clock.total_us
    runtime_s = runtime_us * 1e-6
    joules = p.energy_j(w.gpus)
    busy = sum(p.clock.busy_us.values()) / max(1, len(p.clock.busy_us))
    host = p.clock.host_work_us
    critical_gpu_us = sum(p.clock.busy_us.values()) if w.parallel == "pipeline" or w.gpus == 1 else busy
    mem_gb = [m / GB for m in mem]
    notes = []
    fits = max(mem_gb) <= dev.memory_gb
    if not fits:
        notes.append(f"does not fit: needs {max(mem_gb):.1f} GB on one GPU, {dev.name} has {dev.memory_gb:g} GB")
    return Estimate(
        model=spec.name, device=dev.name, workload=dict(batch=w.batch, seq=w.seq, dtype=w.dtype, gpus=w.gpus,
                                                        parallel=w.parallel if w.gpus > 1 else "single"),
        runtime_ms=runtime_us / 1e3, memory_gb=max(mem_gb), memory_gb_per_gpu=mem_gb,
        energy_j_per_token=None if joules is None else joules / w.tokens, throughput_tokens_per_s=w.tokens / runtime_s, fits=fits,
        host_ms=host / 1e3, gpu_busy_ms=critical_gpu_us / 1e3, bound="host" if host >= critical_gpu_us else "gpu",
        params=spec.param_count(), profile=prof.source, breakdown=p.breakdown(), notes=notes)
