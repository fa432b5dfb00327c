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

Plain forward passes (new_tokens 0) that differ only in batch and seq are priced together over
numpy arrays (forward_many.py: one kernel list for all of them, the same tables and overlap rule,
the same floats), at least ARRAY_MIN distinct ones at a time; what the arrays do not cover (MoE
experts, generation, a family whose kernels branch on a size for every seq) goes one by one
through api.priced, as ``estimate`` does.
"""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator, Mapping

from .api import Estimate, check_profile_kind, finished_many, forward_estimates_many, priced, priced_spec, validate
from .device import DeviceSpec, get_device
from .errors import EstimatorError
from .front_door import check_instance, check_path_or, shown
from .model import load_model
from .profile import Profile, profile_for
from . import result_cache
from .result_cache import cached_copy, copy_estimate, remember
from .spec import ModelSpec
from .workload import Workload

# Fewer distinct workloads of one kind than this are priced one by one: numpy's fixed cost per
# array operation outweighs what arrays save on a handful of workloads.
ARRAY_MIN = 4
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
    out: list[Estimate | EstimatorError | None] = [None] * len(items)
    groups: dict[tuple, dict[Workload, list[int]]] = {}   # workloads priced together, each with its slots
    for slot, w in enumerate(items):
        w = w or default
        try:
            validate(spec, w)
        except EstimatorError as exc:
            out[slot] = exc
            continue
        hit = None if w.new_tokens else cached_copy(prof.results, spec, dev, w, asked)
        if hit is not None:
            out[slot] = hit
        elif w.new_tokens:
            out[slot] = _one(spec, dev, prof, w, asked)
        else:
            groups.setdefault(together(w), {}).setdefault(w, []).append(slot)
    with _collector_paused():
        for slots_of in groups.values():
            _price_group(spec, dev, prof, slots_of, asked, out)
    return out   # type: ignore[return-value]   every slot filled


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while estimates are built (as found when already
    off): 100,000 estimates are some 1.5 million new lists and dicts, none garbage, and the
    collections they would set off walk them all again and again (a third of the time)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def together(w: Workload) -> tuple:
    """What workloads priced over arrays together share: all but batch and seq (tensor parallel:
    also whether batch > 1, which decides whether torch.cat rebuilds the gathered logits)."""
    return (w.dtype, w.gpus, w.parallel, w.tf32, w.nodes, w.network, w.use_cache, w.experts_implementation,
            w.parallel == "tensor" and w.batch > 1)


def _one(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload, asked: str | None) -> Estimate | EstimatorError:
    """`w` on the scalar path (api.priced), a refusal as its EstimatorError."""
    try:
        return priced(spec, dev, prof, w, asked)
    except EstimatorError as exc:
        return exc
    except OverflowError:
        return EstimatorError(OVERFLOW)


def _price_group(spec: ModelSpec, dev: DeviceSpec, prof: Profile, slots_of: dict[Workload, list[int]],
                 asked: str | None, out: list) -> None:
    """Fill the slots of workloads that differ only in batch and seq: priced over arrays
    (forward_many.py) when there are at least ARRAY_MIN of them and their kernels allow it,
    the rest one by one (api.priced). Each slot gets an estimate of its own; the profile's cache
    of results keeps the last RESULTS_MAX priced over arrays (earlier ones would only be pushed
    out again)."""
    ws = list(slots_of)
    done: list[Estimate | EstimatorError | None] = [None] * len(ws)
    if len(ws) >= ARRAY_MIN:
        from .forward_many import forward_many   # imports numpy: not for a call without arrays
        pspec = priced_spec(spec, ws[0])
        try:
            chunks = forward_many(pspec, dev, prof, ws, least=ARRAY_MIN)
        except (EstimatorError, OverflowError):   # the scalar path says which workload, and why
            chunks = []
        for chunk in chunks:
            try:
                ests, figures = forward_estimates_many(pspec, dev, prof, ws, chunk)
                ests = finished_many(ests, spec, dev, prof, ws[0], asked, figures)
            except (EstimatorError, OverflowError):
                continue
            for i, est in zip(chunk.index, ests):
                done[i] = est
        keep = [i for i, est in enumerate(done) if est is not None][-result_cache.RESULTS_MAX:]
        for i in keep:
            done[i] = remember(prof.results, spec, dev, ws[i], asked, done[i])
    for (w, slots), est in zip(slots_of.items(), done):
        first = est if est is not None else _one(spec, dev, prof, w, asked)
        out[slots[0]] = first
        for slot in slots[1:]:
            out[slot] = first if isinstance(first, EstimatorError) else copy_estimate(first)
