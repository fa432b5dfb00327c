"""Whole estimates of repeated workloads, kept per profile (issue 26).

A sweep, a planner or a bench report asks for the same (model, device, workload) again and again;
pricing it anew costs a fraction of a millisecond, a lookup here a few microseconds. The cache
lives on the Profile that priced the estimates (``Profile.results``), so it goes when the profile
goes and a profile with other host times (``Profile.with_host``) starts empty: the key is the
model spec and the device object (by identity: a ModelSpec's hash walks every layer), the
workload (a frozen dataclass, by value) and the device name the caller gave (it decides the
"which device did you mean" note). An entry holds its spec and device, so their ids cannot be
reused while it lives. Bounded (``RESULTS_MAX``, oldest dropped); every hit and every store
hands out a copy (``fresh``), so a caller editing its Estimate cannot change a cached one.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

# Whole estimates kept per profile: an Estimate with its breakdown is ~10-20 kB, so at most
# ~20 MB per profile (tests/test_memory_growth.py bounds a 100,000-estimate sweep).
RESULTS_MAX = 1024


def fresh(value: Any) -> Any:
    """A copy of an estimate's value: lists and dicts copied all the way down, numbers and
    strings shared."""
    kind = type(value)
    if kind is list:
        return [fresh(v) for v in value]
    if kind is dict:
        return {k: fresh(v) for k, v in value.items()}
    return value


_NESTED = (list, dict)


def _copy_plan(est: Any) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None:
    """For an `est` whose every field is a scalar, a dict of scalars or a list of scalars and of
    dicts of scalars (what an Estimate holds today), its fields to copy: lists of scalars, lists
    holding dicts, dicts; None for any other estimate (copied with copy_estimate). One pass over
    the values, plain loops: it runs at every estimate stored."""
    lists, dict_lists, dicts = [], [], []
    for k, v in est.__dict__.items():
        kind = type(v)
        if kind is dict:
            for x in v.values():
                if type(x) in _NESTED:
                    return None
            dicts.append(k)
        elif kind is list:
            holds_dicts = False
            for x in v:
                inner = type(x)
                if inner is dict:
                    holds_dicts = True
                    for y in x.values():
                        if type(y) in _NESTED:
                            return None
                elif inner is list:
                    return None
            (dict_lists if holds_dicts else lists).append(k)
    return tuple(lists), tuple(dict_lists), tuple(dicts)


def _copy_planned(est: Any, plan: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]) -> Any:
    out = object.__new__(type(est))
    d = est.__dict__.copy()
    lists, dict_lists, dicts = plan
    for k in lists:
        d[k] = d[k].copy()
    for k in dict_lists:
        d[k] = [x.copy() if type(x) is dict else x for x in d[k]]
    for k in dicts:
        d[k] = d[k].copy()
    out.__dict__.update(d)
    return out


def copy_estimate(est: Any) -> Any:
    """A copy of `est` (a dataclass with a __dict__) no mutation of which reaches the original."""
    out = object.__new__(type(est))
    out.__dict__.update({k: fresh(v) for k, v in est.__dict__.items()})
    return out


def cached_estimate(results: OrderedDict, spec: Any, dev: Any, workload: Any, asked: str | None,
                    compute: Callable[[], Any]) -> Any:
    """A copy of the cached estimate of this key, else compute() stored (and a copy returned)."""
    hit = cached_copy(results, spec, dev, workload, asked)
    return hit if hit is not None else remember(results, spec, dev, workload, asked, compute())


def cached_copy(results: OrderedDict, spec: Any, dev: Any, workload: Any, asked: str | None) -> Any:
    """A copy of the cached estimate of this key, None when there is none."""
    key = (id(spec), id(dev), workload, asked)
    hit = results.get(key)
    if hit is not None and hit[0] is spec and hit[1] is dev:
        results.move_to_end(key)
        return copy_estimate(hit[2]) if hit[3] is None else _copy_planned(hit[2], hit[3])
    return None


def remember(results: OrderedDict, spec: Any, dev: Any, workload: Any, asked: str | None, est: Any) -> Any:
    """Store `est` as the estimate of this key (the oldest dropped past RESULTS_MAX); a copy of it."""
    while len(results) >= RESULTS_MAX:
        results.popitem(last=False)
    plan = _copy_plan(est)
    results[(id(spec), id(dev), workload, asked)] = (spec, dev, est, plan)
    return copy_estimate(est) if plan is None else _copy_planned(est, plan)
