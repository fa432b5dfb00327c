"""GPU-to-GPU communication: p2p copies between two GPUs and NCCL all-reduce over groups of GPUs.

The all-reduce runs in spawned worker processes (one per GPU, ``AllreduceJob``), started early so
that their start-up overlaps the parent's other benchmarks; they touch no GPU until released.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .grids import ALLREDUCE_REPS, COLLECTIVE_SIZES, MB, allreduce_group_sizes
from .timing import Log, Timer, median, sleep_cycles_per_us, target_ms

ALLREDUCE_TIMEOUT_S = 120.0  # from release to result
ALLREDUCE_GO_TIMEOUT_S = 900.0  # idle workers give up after this
NCCL_SAFE_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                 "NVSHMEM_DISABLE_NVLS": "1"}


def measure_p2p(sizes: Sequence[int] = COLLECTIVE_SIZES, quick: bool = False,
                log: Log = print) -> list[list[float]]:
    """[[bytes, us], ...] for cuda:0 -> cuda:1 copies into a preallocated buffer ([] if < 2 GPUs)."""
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return []
    try:
        src_dev, dst_dev = torch.device("cuda", 0), torch.device("cuda", 1)
        src = torch.empty(max(sizes) // 2, device=src_dev, dtype=torch.float16).fill_(1.0)
        dst = torch.empty(max(sizes) // 2, device=dst_dev, dtype=torch.float16)
        with torch.cuda.device(src_dev):
            timer = Timer(src_dev, target_ms=target_ms("gpu", quick))
            rows = []
            for size in sizes:
                x, y = src[: size // 2], dst[: size // 2]
                us = timer.per_call_us(lambda: y.copy_(x, non_blocking=True))
                torch.cuda.synchronize(dst_dev)
                rows.append([int(size), round(us, 3)])
        del src, dst
    except Exception as exc:
        log(f"p2p: failed ({type(exc).__name__}: {exc})")
        return []
    finally:
        for i in (0, 1):
            with torch.cuda.device(i):
                torch.cuda.empty_cache()
    log("p2p: " + ", ".join(f"{b // MB} MB {us:.1f} us" for b, us in rows))
    return rows


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _allreduce_rank(rank: int, group: Any, sizes: Sequence[int]) -> list[list[float]]:
    """[[bytes, us], ...] of back-to-back fp16 sum all-reduces over `group`, seen by one rank.

    As in Timer, every rank's stream is held by a spin kernel of the same length while the loop
    is queued, so the events measure the collectives, not the host's launch rate.
    """
    import torch.distributed as dist

    device = torch.device("cuda", rank)
    cycles_per_us = sleep_cycles_per_us(device) if hasattr(torch.cuda, "_sleep") else 0.0
    rows = []
    for size in sizes:
        t = torch.randn(size // 2, device=device, dtype=torch.float16)
        reps = ALLREDUCE_REPS.get(size, 10)
        for _ in range(3):
            dist.all_reduce(t, group=group)
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(3):
            dist.all_reduce(t, group=group)
        host = torch.tensor([(time.perf_counter() - t0) * 1e6 / 3], device=device)
        dist.all_reduce(host, op=dist.ReduceOp.MAX, group=group)  # one spin length for all ranks
        spin_cycles = int((reps * float(host.item()) * 1.3 + 200.0) * cycles_per_us)
        times = []
        for _ in range(3):
            dist.barrier(group=group)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            if spin_cycles:
                torch.cuda._sleep(spin_cycles)
            start.record()
            for _ in range(reps):
                dist.all_reduce(t, group=group)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1000.0 / reps)
        rows.append([int(size), round(median(times), 3)])
        del t
    return rows


def _allreduce_worker(rank: int, world: int, port: int, sizes: list[int], result_path: str,
                      go: Any) -> None:
    """One spawned process per GPU: waits for `go`, then times every group size; rank 0 writes JSON."""
    import torch.distributed as dist

    if not go.wait(timeout=ALLREDUCE_GO_TIMEOUT_S):
        return  # the parent gave up (or died) before releasing the workers
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, device_id=torch.device("cuda", rank))
    results: dict[str, list[list[float]]] = {}
    for n in allreduce_group_sizes(world):
        group = dist.new_group(list(range(n))) if n < world else dist.group.WORLD
        if rank < n:
            results[str(n)] = _allreduce_rank(rank, group, sizes)
        dist.barrier()
    if rank == 0:
        Path(result_path).write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()


class AllreduceJob:
    """NCCL all-reduce workers, one per GPU, spawned early so that their start-up (importing
    torch) overlaps the parent's benchmarks; they touch no GPU until run() releases them."""

    def __init__(self, gpu_count: int, sizes: Sequence[int] = COLLECTIVE_SIZES) -> None:
        self.gpu_count, self.ctx, self.go, self.error = gpu_count, None, None, None
        self.path: Optional[str] = None
        if gpu_count < 2:
            return
        try:
            self._spawn(list(sizes))
        except Exception as exc:  # reported by run()
            self.error = exc

    def _spawn(self, sizes: list[int]) -> None:
        """Start the worker processes (NCCL_NVLS_ENABLE=0 etc. set first, inherited by them)."""
        import torch.multiprocessing as mp

        for key, value in NCCL_SAFE_ENV.items():
            os.environ.setdefault(key, value)
        fd, self.path = tempfile.mkstemp(prefix="allreduce_", suffix=".json")
        os.close(fd)
        self.go = mp.get_context("spawn").Event()
        self.ctx = mp.spawn(_allreduce_worker, nprocs=self.gpu_count, join=False,
                            args=(self.gpu_count, _free_port(), sizes, self.path, self.go))

    def run(self, timeout_s: float = ALLREDUCE_TIMEOUT_S, log: Log = print) -> dict[str, Any]:
        """Release the workers and wait: {str(n_gpus): [[bytes, us], ...]}, or {} on any failure."""
        if self.gpu_count < 2:
            return {}
        t0 = time.perf_counter()
        try:
            if self.error is not None:
                raise self.error
            self.go.set()
            while not self.ctx.join(timeout=1.0):
                if time.perf_counter() - t0 > timeout_s:
                    raise TimeoutError(f"no result after {timeout_s:.0f} s")
            out = json.loads(Path(self.path).read_text())
        except Exception as exc:
            last = (str(exc).strip().splitlines() or [""])[-1]
            log(f"allreduce: failed ({type(exc).__name__}: {last}), recorded {{}}")
            out = {}
        finally:
            self.abort()
        if out:
            log(f"allreduce: groups {', '.join(out)} in {time.perf_counter() - t0:.1f} s")
        return out

    def abort(self) -> None:
        """Kill workers still alive (those this job started) and remove the result file."""
        for proc in getattr(self.ctx, "processes", []):
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        if self.path:
            Path(self.path).unlink(missing_ok=True)


def measure_allreduce(gpu_count: int, sizes: Sequence[int] = COLLECTIVE_SIZES,
                      timeout_s: float = ALLREDUCE_TIMEOUT_S,
                      log: Log = print) -> dict[str, list[list[float]]]:
    """{str(n_gpus): [[bytes, us], ...]} of NCCL all-reduce; {} on any failure or < 2 GPUs."""
    return AllreduceJob(gpu_count, sizes).run(timeout_s, log)
