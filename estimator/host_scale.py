"""Eager host time of a model type the profile has not measured, scaled from a measured one.

Host calibration (calibrate/host.py) times tiny random models of every family it knows; a
profile made before a family was added has no entry for it, and zero host time would make a
host-bound model (small models, the MoE expert loop) look several times faster than it runs.
Host time in eager PyTorch is close to proportional to the kernels launched (each one a Python
call, a dispatch and a launch), so the reference family's measured per-layer time is scaled by
the ratio of kernels per layer, and its fixed time by the ratio of kernels outside the layers.
Uncalibrated: the estimate says so in its notes.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from .families import BY_NAME
from .model import ModelSpec
from .ops import forward_ops
from .profile import HostTimes

if TYPE_CHECKING:
    from .profile import Profile

REFERENCE_FAMILY = "llama"   # measured on every shipped profile; the most common decoder code


@lru_cache(maxsize=8)
def _reference_kernels(e: int) -> tuple[float, int]:
    """(kernels per layer, kernels outside the layers) of the reference family's tiny model."""
    fam = BY_NAME[REFERENCE_FAMILY]
    spec = ModelSpec.from_hf_config(fam.tiny_config_kwargs(fam.model_types[0], 2), name="reference")
    ops = forward_ops(spec, 1, 8, e)
    return ops.kernels_per_layer(), len(ops.pre) + len(ops.post)


def host_times(prof: Profile, spec: ModelSpec, batch: int, seq: int, e: int) -> tuple[HostTimes, bool]:
    """The profile's host times of `spec`, or (when it has none) the reference family's scaled
    by kernel counts; the flag says whether they were scaled."""
    measured = prof.host_times(*spec.arch.host_keys(spec))
    if measured.per_layer_us or measured.fixed_us:
        return measured, False
    ref = prof.host_times(REFERENCE_FAMILY, REFERENCE_FAMILY)
    if not (ref.per_layer_us or ref.fixed_us):
        return measured, False
    ref_layer, ref_fixed = _reference_kernels(e)
    ops = forward_ops(spec, batch, seq, e)
    return HostTimes(ref.per_layer_us * ops.kernels_per_layer() / ref_layer,
                     ref.fixed_us * (len(ops.pre) + len(ops.post)) / ref_fixed), True


def scaled_note(spec: ModelSpec) -> str:
    return (f"host time of {spec.model_type} not calibrated on this profile: the {REFERENCE_FAMILY} "
            f"family's, scaled by kernels launched")
