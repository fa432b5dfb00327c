"""The calibration run: every stage in order on one machine, and the profile's JSON file.

The sections written, their types and constraints are declared in estimator/profile_schema.py
(ProfileData); a written profile loads with estimator.profile.load_profile_file unchanged."""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ..outpath import write_atomic
from .collectives import AllreduceJob, measure_p2p
from .host import HOST_FAMILIES, QUICK_HOST_TYPES, dispatch_overhead_us, preload_host_models, time_host_families
from .grouped import time_grouped_stage
from .host_ops import time_host_ops
from .kernels import time_kernels
from .machine import header, resolve_device
from .plan import expected_s, generate_types as pick_generate_types, stage_plan
from .power import measure_power
from .timing import Log


def _device_context(device: torch.device) -> contextlib.AbstractContextManager:
    """torch.cuda.device(device) for GPUs, a no-op for CPU."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def what_it_measures(profile: dict[str, Any], asked: str, quick: bool) -> str:
    """The run's first line: the GPU it calibrates, or that it calibrates the CPU (no GPU found, or
    asked for) and that such a profile prices CPU runs only."""
    mode = ", quick" if quick else ""
    if profile["kind"] == "gpu":
        return f"calibrating {profile['device_name']} (GPU x {profile['gpu_count']}{mode})"
    why = "as asked" if (asked or "auto").strip().lower() == "cpu" else "no GPU found: torch sees no CUDA device"
    return (f"calibrating the CPU, {profile['device_name']} ({why}{mode}); the profile prices runs on this CPU "
            "only, a GPU device is refused with it (calibrate on the GPU machine instead)")


def calibrate(device: str = "auto", quick: bool = False, log: Log = print,
              model_types: Sequence[str] | None = None,
              generate_types: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure this machine with microbenchmarks and return the profile dict (see the package doc).

    `model_types`: the model types whose eager host overhead is timed (default: every supported
    one; quick: the three reference codes, QUICK_HOST_TYPES). A model type left out gets the
    op-level host model's time (estimator/host_model.py), as its estimate's notes say.
    `generate_types`: those of them whose generate() host time is timed (default: llama and
    plan.GENERATE_OTHERS; quick: llama); every other host type's generate host time is built from
    its forward's by the estimator (host_model.generate_price: source "forward")."""
    types = tuple(model_types) if model_types else (QUICK_HOST_TYPES if quick else HOST_FAMILIES)
    gen_types = pick_generate_types(types, generate_types, quick)
    t_start = time.perf_counter()
    say: Log = lambda msg: log(f"[{time.perf_counter() - t_start:5.1f} s] {msg}")  # noqa: E731
    dev = resolve_device(device)
    profile = header(dev)
    gpu = profile["kind"] == "gpu"
    say(what_it_measures(profile, device, quick))
    plan = stage_plan(profile["kind"], quick, profile["gpu_count"] or 1, types, gen_types)
    say(f"about {expected_s(plan):.0f} s expected at 1 x H200 costs per point (" + ", ".join(
        f"{s['stage']} {s['expected_s']:.0f}" for s in plan if s["stage"] != "start") + ")")
    record = {"plan": plan, "expected_s": expected_s(plan), "generate_timed": list(gen_types)}
    # All-reduce workers import torch while the GPU idles for the power baseline (CPU work
    # there cannot disturb a reading); they touch no GPU until job.run() releases them.
    job = AllreduceJob(profile["gpu_count"]) if gpu else None
    try:
        with _device_context(dev):
            if gpu:  # first, while the GPU is still cool and idle
                profile["power"] = measure_power(dev, profile["gpu_count"], quick, say,
                                                 idle_task=lambda: preload_host_models(types))
            time_kernels(dev, profile, quick, say)
            if gpu:   # MoE experts as transformers runs them by default (grouped_mm)
                time_grouped_stage(dev, profile, quick, say)
            profile["host_ops"] = time_host_ops(dev, log=say)
            # forward and generate() of every type in one round-robin loop (host.time_host_families);
            # generation is estimated and measured on GPUs only: a CPU keeps its calibration short
            profile["host"], timed = time_host_families(dev, types, gen_types if gpu else (), log=say)
            if gpu:
                profile["generate"] = timed
        if gpu and profile["gpu_count"] >= 2:
            profile["dispatch"] = dispatch_overhead_us(types, log=say)
        if gpu:
            profile["p2p"] = measure_p2p(quick=quick, log=say)
            profile["allreduce"] = job.run(log=say)
    finally:
        if job is not None:
            job.abort()
    profile["calibration"] = {**record, **profile.get("calibration", {})}   # kernels' "thinned" too
    profile["duration_s"] = round(time.perf_counter() - t_start, 2)
    say(f"calibration done in {profile['duration_s']} s")
    return profile


def save_profile(profile: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a profile as indented JSON, atomically (parent folders created); returns the path."""
    out = Path(path)
    write_atomic(out, json.dumps(profile, indent=1) + "\n")
    return out
