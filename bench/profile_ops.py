"""Kernel-level profile of one forward pass (torch.profiler): which kernels run and how long.

A design aid, not a measurement of the suite: it shows which CUDA kernels the eager model
launches, so estimator/ops.py can list the same ones.
Usage: python -m bench.profile_ops MODEL [BATCH SEQ [DTYPE]]
"""
from __future__ import annotations

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from bench.build import build
from estimator import load_model


def main(name: str, batch: int = 16, seq: int = 1024, dtype: str | None = None) -> None:
    spec = load_model(name)
    dtype = dtype or spec.dtype or "float16"
    model = build(name, dtype, "cuda:0")
    ids = torch.randint(0, spec.vocab, (batch, seq), device="cuda:0")
    with torch.inference_mode():
        for _ in range(3):
            model(ids)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model(ids)
            torch.cuda.synchronize()
    print(f"== {name} {batch}x{seq} {dtype}")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=int(__import__("os").environ.get("ROWS", "28")), max_name_column_width=70))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], *map(int, args[1:3]), *args[3:4])
