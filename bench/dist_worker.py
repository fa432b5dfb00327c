"""One rank of a data- or tensor-parallel forward pass, started by bench/launch.py.

``python -m bench.dist_worker CASE.json OUT_DIR`` under torchrun. Data parallel: a
``from_config`` replica per rank (same seed) on batch / world rows. Tensor parallel:
``from_pretrained(checkpoint, tp_plan="auto")`` of the random checkpoint the session wrote
(bench/distributed.py). The trackers are bench/measure.py's: every step is timed between two
barriers on all ranks; the energy window ends on the same step everywhere (an all-reduce of
"window long enough"), so the summed NVML counters cover the same passes; bench/distributed.py
aggregates the ranks. On the CPU (tests) the backend is gloo and there is no energy.
"""
from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from bench import measure
from bench.launch import RankResult, write_rank_result

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def _model(case: dict, device: torch.device, world: int):
    from transformers import AutoConfig, AutoModelForCausalLM
    dtype = DTYPES[case["dtype"]]
    if case["mode"] == "tensor":
        return AutoModelForCausalLM.from_pretrained(case["checkpoint"], tp_plan="auto", dtype=dtype), case["batch"]
    cfg = AutoConfig.from_pretrained(case["config_dir"])
    torch.manual_seed(0)
    with device:
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model, case["batch"] // world


def _energy_mj(local: int, on_gpu: bool) -> int | None:
    """This rank's GPU's energy counter in mJ (None on the CPU or without a counter)."""
    if not on_gpu:
        return None
    from estimator.calibrate import nvml
    counters = measure.energy_counters_mj([nvml.nvml_index(local)])
    return counters[0] if counters else None


def _all_ranks(device: torch.device):
    def agree(long_enough: bool) -> bool:
        flag = torch.tensor([long_enough], dtype=torch.int32, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())
    return agree


def main(case_path: str, out_dir: str) -> None:
    case = json.loads(open(case_path).read())
    rank, local, world = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    on_gpu = case.get("device", "cuda") == "cuda"
    if on_gpu:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    model, batch = _model(case, device, world)
    model.eval()
    g = torch.Generator().manual_seed(rank)
    ids = torch.randint(0, model.config.vocab_size, (batch, case["seq"]), generator=g).to(device)

    def step() -> None:
        with torch.inference_mode():
            model(ids)
        if on_gpu:
            torch.cuda.synchronize()

    for _ in range(case.get("warmup", 2)):
        step()
    times = measure.timed_rounds(step, case.get("rounds", 7), fence=dist.barrier)
    peak_gb = measure.peak_memory(step, [local]).memory_gb if on_gpu else 0.0
    dist.barrier()
    e0 = _energy_mj(local, on_gpu)
    window, steps = measure.energy_window(step, case.get("energy_window_s", 1.5), min_iterations=1,
                                          agree=_all_ranks(device), settle=dist.barrier)
    e1 = _energy_mj(local, on_gpu)
    write_rank_result(out_dir, RankResult(
        rank=rank, times_ms=times, peak_memory_gb=peak_gb,
        energy_j=None if e0 is None or e1 is None else measure.joules([e0], [e1]), window_s=window, steps=steps,
        tokens=batch * case["seq"], device=torch.cuda.get_device_name(local) if on_gpu else "cpu"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
