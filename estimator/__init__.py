"""Analytical performance model of LLM forward passes: runtime, memory, energy, throughput.

    from estimator import estimate, estimate_many, Workload
    est = estimate("facebook/opt-1.3b", "H100", Workload(batch=16, seq=1024, gpus=2))
    est.runtime_ms, est.memory_gb_per_gpu, est.energy_j_per_token, est.throughput_tokens_per_s
    results = estimate_many("facebook/opt-1.3b", "H100", [Workload(batch=b) for b in (1, 8, 64)])
"""
from .device import DeviceSpec, get_device, list_devices
from .errors import EstimatorError
from .api import Estimate, estimate
from .many import estimate_many
from .model import ModelSpec, load_model, zoo_names
from .workload import Workload


def __getattr__(name: str):
    """plan, Plan, PlanCandidate: the planner (and its price table) imported on first use, so
    that `import estimator` for an estimate does not load it (issue 26: one-shot CLI time)."""
    if name in ("plan", "Plan", "PlanCandidate"):
        from . import planner
        return getattr(planner, name)
    raise AttributeError(f"module 'estimator' has no attribute {name!r}")


__all__ = ["estimate", "estimate_many", "Estimate", "Workload", "ModelSpec", "load_model", "zoo_names", "DeviceSpec",
           "get_device", "list_devices", "EstimatorError", "plan", "Plan", "PlanCandidate"]
