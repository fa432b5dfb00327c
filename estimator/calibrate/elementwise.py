"""Memory-bound kernel patterns of eager transformer code, timed as microbenchmarks.

A contiguous copy is the best case; the kernels a forward pass launches are often slower per byte:
broadcasts (RMSNorm's x * rsqrt(var)), dtype casts, row reductions, and strided reads of
transposed head layouts (rotary on q/k, the KV-cache cat, SDPA's output transposition). Each
pattern is timed at a few sizes; ops.py tags every elementwise op with its pattern.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

HEAD_DIM, HEADS = 64, 16
# elements per size point: about 2, 16, 64 and 256 MB of fp16 data
SIZES = (1 << 20, 1 << 23, 1 << 25, 1 << 27)


def _patterns(n: int, device: torch.device, dtype: torch.dtype) -> dict[str, tuple[Callable[[], object], float]]:
    """pattern -> (kernel, bytes moved) on n elements."""
    e = torch.tensor([], dtype=dtype).element_size()
    rows = n // 1024
    x = torch.randn(n, device=device, dtype=dtype)
    y = torch.randn(n, device=device, dtype=dtype)
    x32 = torch.randn(rows, 1024, device=device, dtype=torch.float32)
    r32 = torch.randn(rows, 1, device=device, dtype=torch.float32)
    s = n // (HEADS * HEAD_DIM)
    heads_view = x.view(1, s, HEADS, HEAD_DIM).transpose(1, 2)        # q/k after view + transpose
    cos = torch.randn(1, 1, s, HEAD_DIM, device=device, dtype=dtype)
    empty = torch.tensor([], device=device, dtype=dtype)
    sdpa_out = x.view(1, HEADS, s, HEAD_DIM)
    half = x.view(1, HEADS, s, HEAD_DIM)[..., HEAD_DIM // 2:]
    return {
        "binary": (lambda: x + y, 3.0 * n * e),
        "unary": (lambda: F.silu(x), 2.0 * n * e),
        "broadcast": (lambda: x32 * r32, 2.0 * n * 4),
        "cast": (lambda: x.to(torch.float32), n * (e + 4.0)),
        "reduce": (lambda: x32.mean(-1, keepdim=True), n * 4.0),
        "strided": (lambda: heads_view * cos, 2.0 * n * e),
        "strided_cat": (lambda: torch.cat([empty, heads_view], dim=-2), 2.0 * n * e),
        "transpose": (lambda: sdpa_out.transpose(1, 2).contiguous(), 2.0 * n * e),
        "half_neg": (lambda: -half, 1.0 * n * e),
    }


def time_patterns(device: torch.device, timer, dtype: torch.dtype = torch.float16,
                  sizes=SIZES) -> dict[str, list[list[float]]]:
    """{pattern: [[bytes_moved, us], ...]}; `timer.per_call_us(fn)` times one call."""
    out: dict[str, list[list[float]]] = {}
    for n in sizes:
        for name, (fn, nbytes) in _patterns(n, device, dtype).items():
            out.setdefault(name, []).append([nbytes, round(timer.per_call_us(fn), 3)])
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out
