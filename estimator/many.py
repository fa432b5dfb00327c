"""estimate_many(): one model on one device, many workloads, one result per workload, in order.

    from estimator import estimate_many, Workload
    results = estimate_many("facebook/opt-1.3b", "H100", [Workload(batch=b) for b in (1, 8, 64)])

The model, the device, the profile and the transfer source are checked and resolved once (a
mistake there is a mistake of the whole call and raises EstimatorError at once, as do a
`workloads` that is not a sequence of Workloads). A workload the estimator refuses (seq beyond the
model's positions, a split the parallel mode cannot make, sizes that overflow float arithmetic)
does not stop the others: its slot holds the EstimatorError that ``estimate`` would raise, as an
exception object (test with ``isinstance(r, EstimatorError)``; ``str(r)`` is the one-line
reason), so a sweep of a thousand shapes keeps its 999 answers. Every other slot holds the same
Estimate ``estimate`` returns for that workload (the same numbers, notes and ranges; a repeated
workload from the profile's cache of results, a copy each time).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from .api import Estimate, check_profile_kind, priced, validate
from .device import DeviceSpec, get_device
from .errors import EstimatorError
from .front_door import check_instance, check_path_or, shown
from .model import load_model
from .profile import Profile, profile_for
from .spec import ModelSpec
from .workload import Workload

OVERFLOW = "the workload is too large to estimate: its sizes overflow float arithmetic"


def check_workloads(workloads: object) -> list[Workload | None]:
    """`workloads` as a list when it is an iterable of Workloads (None: the model's default)."""
    if isinstance(workloads, (str, bytes, Mapping, Workload)) or not isinstance(workloads, Iterable):
        raise EstimatorError(f"workloads must be a list of estimator.Workload, got "
                             f"{type(workloads).__name__} {shown(workloads)}")
    items = list(workloads)
    for i, w in enumerate(items):
        check_instance(w, f"workloads[{i}]", (Workload, type(None)), "an estimator.Workload or None")
    return items


def estimate_many(model: str | ModelSpec, device: str | DeviceSpec, workloads: Iterable[Workload | None],
                  profile: str | Profile | None = None,
                  transfer_from: str | DeviceSpec | None = None) -> list[Estimate | EstimatorError]:
    """`estimate(model, device, w, profile, transfer_from)` of every `w` in `workloads`, in
    order; a refused workload's slot holds its EstimatorError (see the module's docstring)."""
    asked = device if isinstance(device, str) else None
    model = check_path_or(model, "model", (ModelSpec,), "a model name, a config.json path or a ModelSpec", False)
    device = check_path_or(device, "device", (DeviceSpec,), "a device name, a device .json path or a DeviceSpec", False)
    items = check_workloads(workloads)
    profile = check_path_or(profile, "profile", (Profile,), "a profile JSON path or a Profile")
    transfer_from = check_path_or(transfer_from, "transfer_from", (DeviceSpec,), "a device name or a DeviceSpec")
    spec = load_model(model) if isinstance(model, str) else model
    dev = get_device(device) if isinstance(device, str) else device
    prof = profile if isinstance(profile, Profile) else profile_for(dev, profile, transfer_from)
    check_profile_kind(prof, dev)
    default = Workload(dtype=spec.dtype or "float16")
    out: list[Estimate | EstimatorError] = []
    for w in items:
        w = w or default
        try:
            validate(spec, w)
            out.append(priced(spec, dev, prof, w, asked))
        except EstimatorError as exc:
            out.append(exc)
        except OverflowError:
            out.append(EstimatorError(OVERFLOW))
    return out
