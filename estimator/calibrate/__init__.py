"""Microbenchmarks that measure the machine they run on and return a JSON-serialisable profile.

``calibrate()`` times GEMMs, attention, copies, launch overheads, tiny real models (host
overhead per layer), GPU-to-GPU copies, NCCL all-reduce and power draw, each with a small grid
of microbenchmarks; it never runs a full-size model. Times are microseconds per call.

Modules, one stage each: ``timing`` (Timer, median), ``grids`` (point lists), ``kernels`` (GEMM,
attention, copies, launch), ``elementwise`` (memory access patterns), ``host`` (tiny models:
eager and dispatch-hook overhead), ``collectives`` (p2p, all-reduce), ``power`` (NVML energy
windows), ``machine`` (device and header), ``run`` (the whole run), ``merge`` (several runs into
one shipped profile), ``nvml`` (NVML queries).

Only ``run`` and the stages import torch; this package's ``__init__`` loads it on first use of
``calibrate``/``save_profile``, so ``merge`` and ``nvml`` stay torch-free.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .run import calibrate, save_profile

__all__ = ["calibrate", "save_profile"]


def __getattr__(name: str) -> Any:
    """calibrate and save_profile, imported from .run on first use."""
    if name in __all__:
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
