"""Host cost of each kind of eager PyTorch operation, family-agnostic (issue 25).

An eager forward pass spends host time on every operation it dispatches: a module's
``__call__``, a linear's dispatch and cuBLAS launch, an elementwise or reduction kernel, SDPA,
a cat / index / copy, a view (dispatch without a kernel), a read of a result on the host (a
synchronisation). Each is timed here on tiny tensors of the device at hand, back to back with
no synchronisation inside the loop: on a GPU the kernels are shorter than their launches, so the
loop runs at the host's rate. The estimator prices every op it lists with these costs
(estimator/host_model.py); per-family timings of whole tiny models (host.py) check that model.

The garbage collector is frozen and off while a loop runs (a collection in a timed region is
noise, not the operation), and the operations are timed interleaved, `ROUNDS` times each, so a
slow moment of the host hits all of them alike; each cost is the median of its rounds.
"""
from __future__ import annotations

import contextlib
import gc
import time
from typing import Any, Callable, Iterator

import torch

from .timing import Log, median, sync

ROUNDS = 7
CALLS = 200        # calls per timed loop (a few ms per loop at 5-20 us per call)
HIDDEN, TOKENS = 64, 8


class _Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _ops(device: torch.device) -> dict[str, Callable[[], Any]]:
    """One representative call of every host-cost class (HOST_OP_CLASSES in the estimator)."""
    dt = torch.float16 if device.type == "cuda" else torch.float32
    x = torch.randn(1, TOKENS, HIDDEN, device=device, dtype=dt)
    y = torch.randn_like(x)
    w = torch.randn(HIDDEN, HIDDEN, device=device, dtype=dt)
    b = torch.randn(HIDDEN, device=device, dtype=dt)
    q = torch.randn(1, 4, TOKENS, HIDDEN // 4, device=device, dtype=dt)
    ids = torch.randint(0, 100, (1, TOKENS), device=device)
    table = torch.randn(100, HIDDEN, device=device, dtype=dt)
    cache = torch.randn(1, 4, TOKENS, HIDDEN // 4, device=device, dtype=dt)
    module = _Identity().to(device)
    flag = torch.ones(1, device=device, dtype=torch.bool)
    F = torch.nn.functional
    return {
        "module": lambda: module(x),                                   # nn.Module.__call__ alone
        "linear": lambda: F.linear(x, w, b),                           # addmm / cuBLAS
        "elementwise": lambda: x + y,                                  # one kernel, two inputs
        "unary": lambda: F.silu(x),
        "cast": lambda: x.to(torch.float32),
        "reduce": lambda: x.mean(-1, keepdim=True),
        "norm": lambda: F.layer_norm(x, (HIDDEN,), b, b),               # one fused kernel
        "softmax": lambda: torch.softmax(x, -1),
        "sdpa": lambda: F.scaled_dot_product_attention(q, q, q, is_causal=True),
        "cat": lambda: torch.cat([cache, q], dim=-2),
        "index": lambda: F.embedding(ids, table),
        "copy": lambda: y.copy_(x),
        "view": lambda: x.view(1, TOKENS, 4, HIDDEN // 4).transpose(1, 2),   # two views, no kernel
        "sync": lambda: bool((flag == 0).all()),                        # a result read on the host
    }


# calls each lambda above makes of its class (view: view + transpose; sync: eq, all, the read)
PER_CALL = {"view": 2, "sync": 1}


@contextlib.contextmanager
def gc_off(collect: bool = True) -> Iterator[None]:
    """The garbage collector frozen and disabled inside the block, restored after (its enabled
    state as found; the frozen objects back in the oldest generation). Nested or with the
    collector already off: a no-op, so the outer block keeps its freeze. A collection inside a
    timed pass is noise, not the work (p90 of a host-bound pass fell 10 % with it off)."""
    if not gc.isenabled():
        yield
        return
    if collect:
        gc.collect()   # what is garbage now is not collected inside the region
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def _loop_us(fn: Callable[[], Any], device: torch.device, calls: int) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    t1 = time.perf_counter()
    sync(device)
    return (t1 - t0) * 1e6 / calls


def time_host_ops(device: torch.device, log: Log = print, rounds: int = ROUNDS,
                  calls: int = CALLS) -> dict[str, float]:
    """Host microseconds per call of each operation class on `device` (see the module doc)."""
    ops = _ops(device)
    samples: dict[str, list[float]] = {k: [] for k in ops}
    with torch.inference_mode():
        for fn in ops.values():   # first calls pick kernels and plans
            for _ in range(3):
                fn()
        with gc_off():
            for _ in range(rounds):
                for name, fn in ops.items():
                    samples[name].append(_loop_us(fn, device, calls) / PER_CALL.get(name, 1))
    out = {k: round(median(v), 3) for k, v in samples.items()}
    log("host ops (us per call): " + ", ".join(f"{k} {v:.1f}" for k, v in out.items()))
    return out


def cpu_probe_us(n: int = 20_000) -> float:
    """A torch-free CPU probe: microseconds of a fixed pure-Python loop. Timed next to measured
    rounds, it tells how fast the host runs Python at that moment (the host's speed moves 1.5-2x
    within minutes on shared machines)."""
    t0 = time.perf_counter()
    acc = 0
    for i in range(n):
        acc += i & 7
    return (time.perf_counter() - t0) * 1e6
