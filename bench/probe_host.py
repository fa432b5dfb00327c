"""The data behind the op-level host model (issue 25), measured in one process on one GPU.

    python -m bench.probe_host OUT.json [--models a,b,...] [--skip-real]

1. ``host_ops``: calibrate/host_ops.py's cost per operation class, three times, each next to a
   torch-free CPU probe (how fast the host runs Python at that moment).
2. ``tiny``: per model type, the tiny model calibration times (2 and 12 layers): wall time per
   layer and fixed, and what it dispatches per layer and outside the layers, counted with a
   TorchDispatchMode (kernel ops, views) and forward pre-hooks (module calls); a decode step's
   counts too (one token, a cache of 8).
3. ``real``: for real-size models (zoo configs, random weights) the host-bound forward at 1 x 128
   and 1 x 4 tokens and the decode step of greedy ``generate`` at batch 1 and 16 (median step of
   a 34-token call minus a 2-token call, the first call never timed), each with CPU probes.
Timed regions run with the garbage collector frozen and off.
"""
from __future__ import annotations

import argparse
import collections
import gc
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from estimator.calibrate.host import tiny_model
from estimator.calibrate.host_ops import cpu_probe_us, time_host_ops
from estimator.families import HOST_MODEL_TYPES

VIEW_OPS = frozenset({"view", "_unsafe_view", "transpose", "reshape", "unsqueeze", "squeeze", "expand",
                      "permute", "slice", "select", "t", "as_strided", "alias", "detach", "split", "unbind",
                      "chunk", "narrow", "split_with_sizes", "_reshape_alias", "unflatten", "flatten",
                      "view_as", "expand_as", "lift_fresh", "diagonal", "movedim"})
REAL = ("AICrossSim/clm-60m", "AICrossSim/clm-1.1b", "facebook/opt-1.3b", "facebook/opt-6.7b",
        "openai-community/gpt2-medium", "EleutherAI/pythia-1b", "Qwen/Qwen3-0.6B", "Qwen/Qwen2.5-0.5B",
        "google/gemma-3-1b-pt", "google/gemma-2-2b", "microsoft/Phi-3-mini-4k-instruct",
        "mistralai/Mistral-7B-v0.1")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class _Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def dispatch_counts(model, ids, **kw) -> dict:
    """ATen ops (kernels vs views) and module calls of one call of model(ids, **kw)."""
    calls = [0]
    hooks = [m.register_forward_pre_hook(lambda *a: calls.__setitem__(0, calls[0] + 1)) for m in model.modules()]
    try:
        with torch.inference_mode(), _Count() as c:
            model(ids, **kw)
    finally:
        for h in hooks:
            h.remove()
    views = sum(v for k, v in c.ops.items() if k in VIEW_OPS)
    return {"kernels": sum(c.ops.values()) - views, "views": views, "modules": calls[0], "ops": dict(c.ops)}


def frozen_gc():
    gc.collect()
    gc.freeze()
    gc.disable()


def thawed_gc():
    gc.enable()
    gc.unfreeze()


def timed_forwards_us(model, ids, n: int) -> list[float]:
    out = []
    for _ in range(n):
        _sync()
        t0 = time.perf_counter()
        model(ids)
        _sync()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


def tiny_section(dev, types=HOST_MODEL_TYPES) -> dict:
    out = {}
    ids = torch.randint(0, 200, (1, 8), device=dev)
    for mt in types:
        try:
            models = [tiny_model(mt, n, dev) for n in (2, 12)]
        except Exception as exc:   # noqa: BLE001 - a type this transformers cannot build
            out[mt] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            continue
        counts = [dispatch_counts(m, ids) for m in models]
        with torch.inference_mode():
            for m in models:
                timed_forwards_us(m, ids, 5)
            frozen_gc()
            t = {2: [], 12: []}
            probes = []
            for _ in range(40):
                probes.append(cpu_probe_us(5000))
                for m, n in zip(models, (2, 12)):
                    t[n] += timed_forwards_us(m, ids, 1)
            thawed_gc()
            # a decode step: one token with a cache of 8 (DynamicCache from a prefill)
            dec = []
            for m in models:
                o = m(ids, use_cache=True)
                dec.append(dispatch_counts(m, ids[:, :1], past_key_values=o.past_key_values))
        per = (median(t[12]) - median(t[2])) / 10
        out[mt] = {"per_layer_us": per, "fixed_us": median(t[2]) - 2 * per, "probe_us": median(probes),
                   "layer": {k: (counts[1][k] - counts[0][k]) / 10 for k in ("kernels", "views", "modules")},
                   "fixed": {k: counts[0][k] - 2 * (counts[1][k] - counts[0][k]) / 10 for k in ("kernels", "views", "modules")},
                   "decode_layer": {k: (dec[1][k] - dec[0][k]) / 10 for k in ("kernels", "views", "modules")},
                   "decode_fixed": {k: dec[0][k] - 2 * (dec[1][k] - dec[0][k]) / 10 for k in ("kernels", "views", "modules")},
                   "layer_ops": {k: (counts[1]["ops"].get(k, 0) - counts[0]["ops"].get(k, 0)) / 10
                                 for k in counts[1]["ops"]}}
        print(f"tiny {mt}: {per:.1f} us/layer, {out[mt]['layer']}", flush=True)
        del models
        _sync()
    return out


def real_section(dev, names) -> dict:
    from transformers import AutoModelForCausalLM

    from bench.build import _config
    out = {}
    for name in names:
        model = None
        try:
            cfg = _config(name)
            with torch.device(dev):
                model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).eval()
            row = {}
            with torch.inference_mode():
                for b, s in ((1, 4), (1, 128)):
                    ids = torch.randint(0, 1000, (b, s), device=dev)
                    timed_forwards_us(model, ids, 10)
                    frozen_gc()
                    ts, probes = [], []
                    for _ in range(30):
                        probes.append(cpu_probe_us(5000))
                        ts += timed_forwards_us(model, ids, 1)
                    thawed_gc()
                    row[f"forward_{b}x{s}_us"] = median(ts)
                    row[f"forward_{b}x{s}_probe_us"] = median(probes)
                kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
                for b in (1, 16):
                    ids = torch.randint(0, 1000, (b, 512), device=dev)
                    model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)   # never timed
                    frozen_gc()
                    short, long, probes = [], [], []
                    for _ in range(5):
                        for n, acc in ((2, short), (34, long)):
                            probes.append(cpu_probe_us(5000))
                            _sync()
                            t0 = time.perf_counter()
                            model.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)
                            _sync()
                            acc.append((time.perf_counter() - t0) * 1e6)
                    thawed_gc()
                    row[f"tpot_b{b}_ctx512_us"] = (median(long) - median(short)) / 32
                    row[f"generate2_b{b}_ctx512_us"] = median(short)
                    row[f"generate_b{b}_probe_us"] = median(probes)
            out[name] = row
            print(f"real {name}: {row}", flush=True)
        except Exception as exc:  # noqa: BLE001 - record and go on
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            print(f"real {name}: {out[name]}", flush=True)
        finally:
            model = None
            gc.collect()
            _sync()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--models", default=",".join(REAL))
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--types", default=None, help="model types of the tiny section (default: all)")
    args = ap.parse_args(argv)
    dev = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    result = {"device": name, "torch": torch.__version__}
    import transformers
    result["transformers"] = transformers.__version__
    result["host_ops"] = []
    for _ in range(3):
        p0 = cpu_probe_us()
        ops = time_host_ops(dev)
        result["host_ops"].append({"ops": ops, "probe_us": (p0 + cpu_probe_us()) / 2})
    Path(args.out).write_text(json.dumps(result, indent=1))
    result["tiny"] = tiny_section(dev, args.types.split(",") if args.types else HOST_MODEL_TYPES)
    Path(args.out).write_text(json.dumps(result, indent=1))
    if not args.skip_real:
        result["real"] = real_section(dev, [m for m in args.models.split(",") if m])
    result["host_ops_after"] = time_host_ops(dev)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
