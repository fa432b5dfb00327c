"""Kernel microbenchmarks: GEMM and attention grids, copies, the elementwise floor, launch cost."""
from __future__ import annotations

import contextlib
import itertools
import math
import time
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F

from .elementwise import SIZES, time_patterns
from .grids import MB, UNALIGNED_POINTS, copy_sizes, gemm_points, sdpa_points
from .plan import THINNED_DTYPES, fill_rows, thin_points
from .timing import Log, Timer, free, median, sync, target_ms

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
          "tf32": torch.float32}
MAX_POINT_BYTES = 8 * 10**9  # skip benchmark points whose tensors would exceed ~8 GB
# Seconds of idle before each GEMM point: the grid is measured at the clocks a forward pass sees
# (GEMMs interleaved with memory-bound kernels), not at the power-capped clocks of a GEMM loop.
GEMM_COOLDOWN_S = 0.010


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """Temporarily set torch.backends.cuda.matmul.allow_tf32 (restored afterwards)."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _l2_bytes(device: torch.device) -> int:
    """L2 cache size of a GPU (0 on CPU)."""
    if device.type != "cuda":
        return 0
    return int(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 * MB))


def time_gemm_grid(device: torch.device, dtype: str, points: Sequence[tuple[int, int, int]],
                   timer: Timer, log: Log = print) -> list[list[float]]:
    """[[m, n, k, us], ...] for F.linear(x (m,k), w (n,k)); weights rotate past the L2 cache."""
    tdtype, esize = DTYPES[dtype], DTYPES[dtype].itemsize
    fits = [p for p in points if (p[0] * p[2] + p[1] * p[2] + p[0] * p[1]) * esize <= MAX_POINT_BYTES]
    if not fits:
        return []
    l2_elems = 3 * _l2_bytes(device) // esize
    xbuf = torch.randn(max(m * k for m, _, k in fits), device=device, dtype=tdtype)
    wbuf = torch.randn(max(max(n * k for _, n, k in fits), l2_elems), device=device, dtype=tdtype)
    rows: list[list[float]] = []
    t0 = time.perf_counter()
    with _tf32(dtype == "tf32"):
        for m, n, k in fits:
            x = xbuf[: m * k].view(m, k)
            rot = max(1, min(512, math.ceil(l2_elems / (n * k)), wbuf.numel() // (n * k)))
            if device.type == "cuda":
                time.sleep(GEMM_COOLDOWN_S)
            ws = itertools.cycle([wbuf[i * n * k:(i + 1) * n * k].view(n, k) for i in range(rot)])
            try:
                us = timer.per_call_us(lambda: F.linear(x, next(ws)))
            except torch.OutOfMemoryError:
                log(f"  gemm {dtype} {m}x{n}x{k}: out of memory, skipped")
                free(device)
                continue
            rows.append([m, n, k, round(us, 3)])
    del xbuf, wbuf
    free(device)
    log(f"gemm {dtype}: {len(rows)} points in {time.perf_counter() - t0:.1f} s")
    return rows


def time_sdpa_grid(device: torch.device, dtype: str, points: Sequence[tuple[int, int, int]],
                   timer: Timer, log: Log = print) -> list[list[float]]:
    """[[batch_heads, seq, head_dim, us], ...] for causal scaled_dot_product_attention."""
    tdtype = DTYPES[dtype]
    rows: list[list[float]] = []
    t0 = time.perf_counter()
    for bh, seq, hd in points:
        heads = min(16, bh)
        shape = (bh // heads, heads, seq, hd)
        if 4 * bh * seq * hd * tdtype.itemsize > MAX_POINT_BYTES:
            continue
        try:
            q, k, v = (torch.randn(shape, device=device, dtype=tdtype) for _ in range(3))
            us = timer.per_call_us(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
            del q, k, v
        except torch.OutOfMemoryError:
            log(f"  sdpa {dtype} {bh}x{seq}x{hd}: out of memory, skipped")
            free(device)
            continue
        rows.append([bh, seq, hd, round(us, 3)])
    free(device)
    log(f"sdpa {dtype}: {len(rows)} points in {time.perf_counter() - t0:.1f} s")
    return rows


def time_copies(device: torch.device, sizes: Sequence[int], timer: Timer,
                log: Log = print) -> list[list[float]]:
    """[[bytes, us], ...] for y.copy_(x) within one device."""
    src = torch.empty(max(sizes) // 2, device=device, dtype=torch.float16).fill_(1.0)
    dst = torch.empty_like(src).fill_(2.0)
    rows = []
    for size in sizes:
        x, y = src[: size // 2], dst[: size // 2]
        rows.append([int(size), round(timer.per_call_us(lambda: y.copy_(x)), 3)])
    del src, dst
    free(device)
    log("copy: " + ", ".join(f"{b // MB} MB {us:.1f} us" for b, us in rows))
    return rows


def time_elementwise_floor(device: torch.device, timer: Timer, launches: int = 1000) -> float:
    """Device time per tiny kernel (x.add_(1), one element) launched back to back."""
    x = torch.ones(1, device=device)
    fn = lambda: x.add_(1)  # noqa: E731
    host = timer.host_us(fn, 20)
    spin = timer.prefill_for(launches, host) if timer.can_prefill else 0.0
    return median([timer.elapsed_us(fn, launches, spin) / launches for _ in range(3)])


def time_launch(device: torch.device, calls: int = 2000) -> float:
    """Host wall-clock time per tiny eager op (x + 1 on one element), no sync inside the loop."""
    x = torch.ones(1, device=device)
    times = []
    for _ in range(3):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(calls):
            x + 1
        times.append((time.perf_counter() - t0) * 1e6 / calls)
        sync(device)
    return median(times)


def _filled(profile: dict[str, Any], section: str, dt: str, rows: list[list[float]],
            points: Sequence[tuple[int, int, int]], log: Log) -> list[list[float]]:
    """A thinned grid's rows plus its other points filled from its reference dtype (plan.py),
    recorded in profile["calibration"]["thinned"]."""
    ref = THINNED_DTYPES[dt]
    full = fill_rows(profile[section].get(ref, []), rows, points)
    note = {"timed": len(rows), "filled": len(full) - len(rows), "from": ref,
            "method": "reference time x median timed/reference ratio of the 4 nearest timed points"}
    profile.setdefault("calibration", {}).setdefault("thinned", {})[f"{section} {dt}"] = note
    log(f"  {section} {dt}: {note['filled']} more points filled from {ref}")
    return full


def time_kernels(dev: torch.device, profile: dict[str, Any], quick: bool, log: Log) -> None:
    """Fill gemm, sdpa, copy, elementwise, elementwise_floor_us and launch_us of a profile."""
    kind = profile["kind"]
    timer = Timer(dev, target_ms=target_ms(kind, quick))
    gpu = kind == "gpu"
    thin = gpu and not quick   # quick grids are small already: every dtype timed on its own
    def grids(kind_: str, dtypes, points, time_grid) -> None:
        for dt in dtypes:
            pts = points(kind, dt, quick)
            if thin and dt in THINNED_DTYPES:
                rows = time_grid(dev, dt, thin_points(kind_, pts), timer, log)
                profile[kind_][dt] = _filled(profile, kind_, dt, rows, pts, log)
            else:
                profile[kind_][dt] = time_grid(dev, dt, pts, timer, log)

    grids("gemm", ("float16", "bfloat16", "float32", "tf32") if gpu else ("float32", "bfloat16"),
          gemm_points, time_gemm_grid)
    for dt in ("float16", "bfloat16") if thin else ():
        profile["gemm"][f"{dt}_unaligned"] = time_gemm_grid(dev, dt, UNALIGNED_POINTS, timer, log)
    grids("sdpa", ("float16", "bfloat16", "float32") if gpu else ("float32",), sdpa_points, time_sdpa_grid)
    profile["copy"] = time_copies(dev, copy_sizes(kind, quick), timer, log)
    t0 = time.perf_counter()
    profile["elementwise"] = time_patterns(dev, timer, sizes=SIZES if gpu else SIZES[:2])
    log(f"elementwise patterns: {len(profile['elementwise'])} in {time.perf_counter() - t0:.1f} s")
    profile["elementwise_floor_us"] = round(time_elementwise_floor(dev, timer), 3)
    profile["launch_us"] = round(time_launch(dev), 3)
    log(f"elementwise floor {profile['elementwise_floor_us']} us, launch {profile['launch_us']} us")
