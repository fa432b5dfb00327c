"""Snapshot of many estimates, to prove a restructuring changes no number.

    python tests/snapshot_estimates.py OUT.json        # write the snapshot
    python tests/snapshot_estimates.py OUT.json --diff BEFORE.json
    python tests/snapshot_estimates.py OUT.json --many [--diff BEFORE.json]   # through estimate_many

Every zoo model x several devices x shapes x dtypes x 1/2/4/8 GPUs x all parallel modes, plus
generation and use_cache=False; each case's Estimate.to_dict() (or its EstimatorError text),
floats compared exactly (JSON keeps repr precision).
"""
from __future__ import annotations

import itertools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script from anywhere

from estimator import EstimatorError, Workload, estimate, estimate_many, zoo_names

DEVICES = ("H100", "H200", "A100", "RTX A6000", "L4")
SHAPES = ((1, 128), (4, 512), (16, 1024), (2, 2048))
DTYPES = ("float16", "bfloat16", "float32")
GPUS = (1, 2, 4, 8)
MODES = ("pipeline", "data", "tensor")


def cases():
    for model, dev, (b, s), dt in itertools.product(zoo_names(), DEVICES, SHAPES, DTYPES):
        for g in GPUS:
            for mode in (MODES if g > 1 else ("pipeline",)):
                yield model, dev, dict(batch=b, seq=s, dtype=dt, gpus=g, parallel=mode)
        if dt != "float32":
            yield model, dev, dict(batch=b, seq=s, dtype=dt, new_tokens=8)
            for g in GPUS[1:]:   # generation over several GPUs: a pipeline, or refused
                for mode in MODES:
                    yield model, dev, dict(batch=b, seq=s, dtype=dt, new_tokens=8, gpus=g, parallel=mode)
            yield model, dev, dict(batch=b, seq=s, dtype=dt, use_cache=False)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _portable(value):
    """Paths inside the checkout written relative to it, so two worktrees compare equal."""
    if isinstance(value, str):
        return value.replace(ROOT, "<repo>")
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    return value


def _key(model: str, dev: str, kw: dict) -> str:
    return f"{model}|{dev}|" + ",".join(f"{k}={v}" for k, v in sorted(kw.items()))


def snapshot() -> dict:
    out = {}
    for model, dev, kw in cases():
        key = _key(model, dev, kw)
        try:
            out[key] = _portable(estimate(model, dev, Workload(**kw)).to_dict())
        except EstimatorError as e:
            out[key] = {"error": str(e)}
    return out


def snapshot_many() -> dict:
    """The same cases through estimate_many, one call per model and device, every group of
    workloads that differ only in batch and seq offered to its array path (even one of one)."""
    from estimator import many
    many.ARRAY_MIN = 1
    by_pair: dict[tuple[str, str], list[dict]] = {}
    for model, dev, kw in cases():
        by_pair.setdefault((model, dev), []).append(kw)
    out = {}
    for (model, dev), kws in by_pair.items():
        built = []
        for kw in kws:
            try:
                built.append(Workload(**kw))
            except EstimatorError as e:
                out[_key(model, dev, kw)] = {"error": str(e)}
        results = iter(estimate_many(model, dev, built))
        for kw in kws:
            if _key(model, dev, kw) not in out:
                r = next(results)
                out[_key(model, dev, kw)] = {"error": str(r)} if isinstance(r, EstimatorError) else _portable(r.to_dict())
    return {k: out[k] for k in (_key(m, d, kw) for m, d, kw in cases())}


def main(argv: list[str]) -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the snapshot to write (JSON)")
    ap.add_argument("--many", action="store_true", help="through estimate_many's array path")
    ap.add_argument("--diff", metavar="BEFORE", help="compare with an earlier snapshot: exit 1 if any case differs")
    args = ap.parse_args(argv)   # "--help" prints usage: it is never taken for the output's name
    snap = snapshot_many() if args.many else snapshot()
    with open(args.out, "w") as f:
        json.dump(snap, f, sort_keys=True)
    print(f"{len(snap)} cases ({sum('error' not in v for v in snap.values())} estimated) -> {args.out}")
    if args.diff:
        with open(args.diff) as f:
            before = json.load(f)
        after = json.loads(json.dumps(snap, sort_keys=True))
        diff = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
        for k in diff[:20]:
            print("DIFF", k)
        print(f"{len(diff)} of {len(set(before) | set(after))} cases differ")
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
