"""Data- and tensor-parallel cases: why one cannot run, the random checkpoint tensor parallel
loads, and the ranks' results aggregated into one measurement (like optimum-benchmark's
aggregate_across_processes: slowest rank's time, every GPU's memory, summed energy)."""
from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from estimator.model import ModelSpec, config_path

from .launch import RankResult
from .row import Measured

WORKER = "bench.dist_worker"
DISTRIBUTED_MODES = ("data", "tensor")   # one process per GPU (bench/test_distributed.py)


def skip_reason(spec: ModelSpec, mode: str, gpus: int, batch: int, has_tp_plan: bool) -> str | None:
    """Why `mode` over `gpus` ranks cannot run this model, or None."""
    if mode == "data" and batch % gpus:
        return f"data parallel over {gpus} GPUs needs a batch divisible by {gpus}, got {batch}"
    if mode == "tensor":
        if not has_tp_plan:
            return f"transformers has no tensor-parallel plan for {spec.model_type} ({spec.name})"
        if spec.heads % gpus or spec.kv_heads % gpus:
            return (f"tensor parallel over {gpus} GPUs needs heads ({spec.heads}) and KV heads "
                    f"({spec.kv_heads}) divisible by {gpus}")
    return None


def has_tp_plan(name: str) -> bool:
    """Whether transformers ships a base-model tensor-parallel plan for this model's config class."""
    from transformers import AutoConfig
    return bool(getattr(AutoConfig.from_pretrained(str(config_path(name).parent)), "base_model_tp_plan", None))


class Checkpoints:
    """Random-weight checkpoints written once per session (save_pretrained of a CPU model)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="bench-ckpt-")
        self._paths: dict[tuple[str, str], str] = {}

    def get(self, name: str, dtype: str) -> str:
        key = (name, dtype)
        if key not in self._paths:
            import torch
            from transformers import AutoConfig, AutoModelForCausalLM
            from .build import TORCH_DTYPES
            path = Path(self._dir.name) / f"{len(self._paths)}"
            cfg = AutoConfig.from_pretrained(str(config_path(name).parent))
            torch.manual_seed(0)
            with torch.device("cpu"):
                AutoModelForCausalLM.from_config(cfg, dtype=TORCH_DTYPES[dtype]).save_pretrained(path)
            self._paths[key] = str(path)
        return self._paths[key]

    def close(self) -> None:
        self._dir.cleanup()


@dataclass
class Aggregate:
    runtime_ms: float               # median over rounds of the slowest rank's step
    memory_gb_per_gpu: list[float]
    energy_j_per_token: float | None  # every GPU's energy, summed, per distinct token of the step
    rounds: int

    def measured(self, tokens_per_step: int) -> Measured:
        """The row's ``measured`` block (no per-round times, spread or energy window: the ranks
        keep those); written with the legacy key ``rounds`` for runtime_rounds (bench/row.py)."""
        return Measured(self.runtime_ms, memory_gb=max(self.memory_gb_per_gpu),
                        memory_gb_per_gpu=self.memory_gb_per_gpu, energy_j_per_token=self.energy_j_per_token,
                        throughput_tokens_per_s=tokens_per_step / (self.runtime_ms / 1e3), runtime_rounds=self.rounds)


def aggregate(ranks: list[RankResult], shared_tokens: bool = False) -> Aggregate:
    """One measurement from every rank's result (the one place ranks are combined). `shared_tokens`: every rank works on the same
    tokens (tensor parallel), so they count once; else each rank's share adds up (data parallel)."""
    ranks = sorted(ranks, key=lambda r: r.rank)
    rounds = min(len(r.times_ms) for r in ranks)
    slowest = [max(r.times_ms[i] for r in ranks) for i in range(rounds)]
    energy = None
    if all(r.energy_j is not None for r in ranks):
        tokens = (min(r.tokens * r.steps for r in ranks) if shared_tokens
                  else sum(r.tokens * r.steps for r in ranks))
        energy = sum(r.energy_j for r in ranks) / tokens
    return Aggregate(statistics.median(slowest), [r.peak_memory_gb for r in ranks], energy, rounds)


def worker_case(name: str, mode: str, batch: int, seq: int, dtype: str, device: str, energy_window_s: float,
                checkpoint: str | None = None, rounds: int = 7) -> dict:
    """The JSON case every rank reads."""
    return dict(mode=mode, config_dir=str(config_path(name).parent), checkpoint=checkpoint, batch=batch, seq=seq,
                dtype=dtype, device=device, energy_window_s=energy_window_s, rounds=rounds)
