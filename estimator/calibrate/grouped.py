"""Grouped GEMM microbenchmark: the expert GEMMs of transformers' ``grouped_mm`` MoE path.

transformers 5.x runs Mixtral / Qwen3-MoE experts as two grouped GEMMs per layer
(``torch.nn.functional.grouped_mm`` or ``torch._grouped_mm``, integrations/moe.py): tokens sorted
by expert, one kernel over all experts with per-expert row offsets, the weights of every expert
passed in (3-D, (experts, k, n) after a transpose view). This stage times that kernel for
expert counts, rows per expert and (n, k) shapes of the supported MoE families; the estimator
prices a grouped GEMM by the measured time over its roofline floor (``estimator/cost.py``).

Rows: [experts, rows_per_expert, n, k, us].
"""
from __future__ import annotations

import time
from typing import Any, Callable

import torch

from .timing import Log, Timer, free

# (experts, n, k): Mixtral-8x7B gate_up / down, Qwen3-30B-A3B gate_up / down, a small 64-expert shape
SHAPES = ((8, 28672, 4096), (8, 4096, 14336), (128, 1536, 2048), (128, 2048, 768), (64, 2816, 2048))
ROWS_PER_EXPERT = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
QUICK_ROWS = (1, 8, 64, 512, 4096)
MAX_BYTES = 6 * 10**9


def grouped_mm_fn() -> Callable[..., torch.Tensor] | None:
    """The grouped GEMM transformers calls (F.grouped_mm, else torch._grouped_mm), or None."""
    fn = getattr(torch.nn.functional, "grouped_mm", None)
    return fn if fn is not None else getattr(torch, "_grouped_mm", None)


def grouped_points(quick: bool = False, itemsize: int = 2) -> list[tuple[int, int, int, int]]:
    """(experts, rows_per_expert, n, k) of the grid, without those beyond MAX_BYTES."""
    return [(e, m, n, k) for e, n, k in SHAPES for m in (QUICK_ROWS if quick else ROWS_PER_EXPERT)
            if (e * m * (n + k) + e * n * k) * itemsize <= MAX_BYTES]


def grouped_point_count(quick: bool = False) -> int:
    """Points of one 16-bit dtype's grid (calibrate/plan.py's budget)."""
    return len(grouped_points(quick))


def time_grouped(device: torch.device, dtype: torch.dtype, timer: Timer, quick: bool = False,
                 log: Log = print) -> list[list[float]]:
    """[[experts, rows_per_expert, n, k, us], ...]; [] where the kernel is missing (CPU, old torch)."""
    fn = grouped_mm_fn()
    if fn is None or device.type != "cuda":
        return []
    rows: list[list[float]] = []
    t0 = time.perf_counter()
    points = grouped_points(quick, dtype.itemsize)
    for experts, n, k in SHAPES:
        w = torch.randn(experts, n, k, device=device, dtype=dtype)
        wt = w.transpose(-2, -1)   # (experts, k, n): the view transformers passes
        for m in (m for e, m, n2, k2 in points if (e, n2, k2) == (experts, n, k)):
            x = torch.randn(experts * m, k, device=device, dtype=dtype)
            offs = torch.arange(1, experts + 1, device=device, dtype=torch.int32) * m
            try:
                us = timer.per_call_us(lambda: fn(x, wt, offs=offs))
            except (RuntimeError, torch.OutOfMemoryError) as exc:
                log(f"  grouped_mm {experts}x{m}x{n}x{k}: {str(exc).splitlines()[0][:120]}")
                free(device)
                continue
            rows.append([experts, m, n, k, round(us, 3)])
            del x
        del w, wt
        free(device)
    log(f"grouped_mm: {len(rows)} points in {time.perf_counter() - t0:.1f} s")
    return rows


def time_grouped_stage(device: torch.device, profile: dict[str, Any], quick: bool, log: Log) -> None:
    """Fill profile["grouped_gemm"][dtype] for the 16-bit dtypes (the MoE models' own)."""
    # 8 ms loops: the points run 0.15-11 ms per call (20 ms loops took 5.4 s for 65 points). float16
    # takes torch's per-group fallback, which syncs on its offsets: Timer times it without a spin.
    timer = Timer(device, target_ms=8.0)
    profile["grouped_gemm"] = {dt: time_grouped(device, getattr(torch, dt), timer, quick, log)
                               for dt in ("bfloat16", "float16")}
