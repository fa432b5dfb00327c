"""Microbenchmarks that measure the machine they run on and return a JSON-serialisable profile.

``calibrate()`` times GEMMs, attention, copies, launch overheads, tiny real models (host
overhead per layer), GPU-to-GPU copies, NCCL all-reduce and power draw, each with a small grid
of microbenchmarks; it never runs a full-size model. Times are microseconds per call.

GPU timing uses CUDA events around a loop of back-to-back calls. For ops shorter than their
host-side launch cost, the stream is first blocked with a spin kernel (``torch.cuda._sleep``)
long enough for the whole loop to be queued, so the events measure GPU time per call, not the
Python launch rate (that is measured separately as ``launch_us`` and ``host``).
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import itertools
import json
import math
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F

from . import nvml
from .errors import EstimatorError

SCHEMA_VERSION = 1
Log = Callable[[str], None]
MB = 1 << 20
GB = 1 << 30
MAX_POINT_BYTES = 8 * 10**9  # skip benchmark points whose tensors would exceed ~8 GB
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
          "tf32": torch.float32}
HOST_FAMILIES = ("llama", "opt", "gpt2", "qwen2", "mistral")
HOST_LAYERS = (2, 12)  # a 10-layer difference: the per-layer time stands well above noise
COLLECTIVE_SIZES = (1 * MB, 16 * MB, 64 * MB, 256 * MB)
ALLREDUCE_REPS = {1 * MB: 100, 16 * MB: 40, 64 * MB: 15, 256 * MB: 5}
ALLREDUCE_TIMEOUT_S = 120.0  # from release to result
ALLREDUCE_GO_TIMEOUT_S = 900.0  # idle workers give up after this
NCCL_SAFE_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                 "NVSHMEM_DISABLE_NVLS": "1"}


# --------------------------------------------------------------------------- grids


def gemm_points(kind: str, dtype: str, quick: bool = False) -> list[tuple[int, int, int]]:
    """(m, n, k) points of the GEMM grid for a device kind ('gpu'/'cpu') and dtype name."""
    if kind == "cpu":
        ms, nks = ((64, 1024), (128, 2048)) if quick else ((64, 256, 1024), (128, 512, 2048))
        return [(m, n, k) for m in ms for n in nks for k in nks]
    if dtype in ("float32", "tf32"):
        ms, nks = ((1024,), (512, 8192)) if quick else ((1024, 16384), (512, 2048, 8192))
        wide = [(65536, 1024)] if quick else [(65536, 1024), (65536, 4096)]
    elif quick:
        ms, nks, wide = (128, 4096), (256, 2048, 8192), [(65536, 1024)]
    else:
        ms = (128, 1024, 4096, 16384)
        nks = (256, 512, 1024, 2048, 4096, 8192, 16384)
        wide = [(n, k) for n in (32768, 65536, 131072) for k in (512, 1024, 2048, 4096)]
    square = [(m, n, k) for m in ms for n in nks for k in nks]
    return square + [(m, n, k) for m in ms for (n, k) in wide]


# Leading dimensions that are not multiples of 8 elements (e.g. GPT-2's vocabulary of 50257)
# keep cuBLAS off its 16-byte-aligned tensor-core kernels: a separate, smaller grid.
UNALIGNED_POINTS = [(m, n, k) for m in (1024, 16384) for n in (1001, 4097, 50257) for k in (768, 2048)]
# Seconds of idle before each GEMM point: the grid is measured at the clocks a forward pass sees
# (GEMMs interleaved with memory-bound kernels), not at the power-capped clocks of a GEMM loop.
GEMM_COOLDOWN_S = 0.010


def sdpa_points(kind: str, dtype: str, quick: bool = False) -> list[tuple[int, int, int]]:
    """(batch_heads, seq, head_dim) points of the attention grid."""
    if kind == "cpu":
        return [(bh, s, 64) for bh in (4, 16) for s in (64, 256)]
    if dtype == "float32":
        return [(64, 512, 64)] if quick else [(bh, s, 64) for bh in (64, 256) for s in (512, 2048)]
    bhs, seqs = ((16, 256), (128, 1024)) if quick else ((16, 64, 256, 1024),
                                                          (128, 256, 512, 1024, 2048, 4096))
    return [(bh, s, d) for bh in bhs for s in seqs for d in (64, 128)]


def copy_sizes(kind: str, quick: bool = False) -> list[int]:
    """Byte sizes of the copy benchmark."""
    if kind == "cpu":
        return [1 * MB, 8 * MB, 64 * MB] if quick else [1 * MB, 8 * MB, 64 * MB, 256 * MB]
    return [1 * MB, 64 * MB, 512 * MB] if quick else [1 * MB, 8 * MB, 64 * MB, 512 * MB, 2 * GB]


def allreduce_group_sizes(gpu_count: int) -> list[int]:
    """GPU counts to all-reduce over: powers of two from 2, plus gpu_count itself."""
    sizes = {n for n in (2 ** i for i in range(1, 8)) if n <= gpu_count}
    if gpu_count >= 2:
        sizes.add(gpu_count)
    return sorted(sizes)


# --------------------------------------------------------------------------- timing


def _median(values: Sequence[float]) -> float:
    """Median as a float."""
    return float(statistics.median(values))


def _sync(device: torch.device) -> None:
    """Wait for the device (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _sleep_cycles_per_us(device: torch.device) -> float:
    """Clock cycles per microsecond of torch.cuda._sleep (never below the max SM clock)."""
    torch.cuda._sleep(1000)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(10_000_000)
    end.record()
    end.synchronize()
    measured = 10_000_000 / max(start.elapsed_time(end) * 1000.0, 1.0)
    max_clock = nvml.max_sm_clock_mhz(nvml.nvml_index(device.index or 0)) or 0.0
    return max(measured, max_clock)  # assume the fastest clock: a longer spin is the safe side


class Timer:
    """Per-call time of a zero-argument callable: CUDA events (GPU) or wall clock (CPU)."""

    def __init__(self, device: torch.device, target_ms: float, loops: int = 3,
                 max_prefilled: int = 128) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.target_us = target_ms * 1000.0
        self.loops = loops
        self.max_prefilled = max_prefilled
        self.can_prefill = self.cuda and hasattr(torch.cuda, "_sleep")
        self.cycles_per_us = _sleep_cycles_per_us(device) if self.can_prefill else 0.0
        self.last_enqueue_us = 0.0  # host time the last elapsed_us() took to queue its loop

    def host_us(self, fn: Callable[[], Any], n: int = 3) -> float:
        """Host wall time per call to enqueue fn (synchronised only after the loop)."""
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t1 = time.perf_counter()
        _sync(self.device)
        return (t1 - t0) * 1e6 / n

    def elapsed_us(self, fn: Callable[[], Any], reps: int, prefill_us: float = 0.0) -> float:
        """Total time of `reps` back-to-back calls; on GPU optionally after a queue-filling spin."""
        t0 = time.perf_counter()
        if not self.cuda:
            for _ in range(reps):
                fn()
            self.last_enqueue_us = (time.perf_counter() - t0) * 1e6
            return self.last_enqueue_us
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if prefill_us > 0 and self.can_prefill:
            torch.cuda._sleep(int(prefill_us * self.cycles_per_us))
        start.record()
        for _ in range(reps):
            fn()
        self.last_enqueue_us = (time.perf_counter() - t0) * 1e6
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1000.0

    def prefill_for(self, reps: int, host_us: float) -> float:
        """Spin time (us) long enough for the host to queue `reps` calls before the GPU starts."""
        return reps * host_us * 1.3 + 100.0

    def per_call_us(self, fn: Callable[[], Any], warmup: int = 1) -> float:
        """Median over `loops` loops of the per-call time, each loop about target_ms long."""
        for _ in range(warmup):  # first calls of a shape pick kernels, build plans (~ms)
            fn()
        host = self.host_us(fn, 1)
        if not self.cuda:
            est, prefill = host, False
        else:
            est = self.elapsed_us(fn, 1, prefill_us=self.prefill_for(1, host))
            prefill = self.can_prefill and est < 2.0 * host
            if prefill:  # short op: its host time sizes the spin, so measure it properly
                host = self.host_us(fn, 3)
        result = self._loops(fn, est, host, prefill)
        if result < 0.5 * est:  # the estimate caught a one-off stall (first call, page faults)
            result = self._loops(fn, result, host, prefill)
        return result

    def _reps(self, est: float, host: float, prefill: bool) -> int:
        """Calls per loop so that one loop (spin included) lasts about target_ms."""
        if prefill:  # the loop costs a spin of ~1.3 host times per call plus the calls
            return max(16, min(self.max_prefilled, round(self.target_us / (1.3 * host + est))))
        return max(1, min(100_000, round(self.target_us / max(est, 0.1))))

    def _loops(self, fn: Callable[[], Any], est: float, host: float, prefill: bool) -> float:
        """Median per-call time of `loops` loops; longer spins if the host fell behind one."""
        loops = 1 if (not self.cuda and est > 150_000) else self.loops  # very slow CPU points
        for _ in range(3):
            reps = self._reps(est, host, prefill)
            spin = self.prefill_for(reps, host) if prefill else 0.0
            times, queued = [], []
            for i in range(2 * loops):
                if i >= loops and max(times) < 1.5 * min(times):
                    break  # the loops agree; otherwise up to `loops` more outvote a transient
                times.append(self.elapsed_us(fn, reps, spin) / reps)
                queued.append(self.last_enqueue_us)
            if not prefill or _median(queued) < spin:
                break
            host = _median(queued) / reps  # the GPU may have waited for the host: spin longer
        return _median(times)


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """Temporarily set torch.backends.cuda.matmul.allow_tf32 (restored afterwards)."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _free(device: torch.device) -> None:
    """Return cached memory after a benchmark section."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- benchmarks


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
                _free(device)
                continue
            rows.append([m, n, k, round(us, 3)])
    del xbuf, wbuf
    _free(device)
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
            _free(device)
            continue
        rows.append([bh, seq, hd, round(us, 3)])
    _free(device)
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
    _free(device)
    log("copy: " + ", ".join(f"{b // MB} MB {us:.1f} us" for b, us in rows))
    return rows


def time_elementwise_floor(device: torch.device, timer: Timer, launches: int = 1000) -> float:
    """Device time per tiny kernel (x.add_(1), one element) launched back to back."""
    x = torch.ones(1, device=device)
    fn = lambda: x.add_(1)  # noqa: E731
    host = timer.host_us(fn, 20)
    spin = timer.prefill_for(launches, host) if timer.can_prefill else 0.0
    return _median([timer.elapsed_us(fn, launches, spin) / launches for _ in range(3)])


def time_launch(device: torch.device, calls: int = 2000) -> float:
    """Host wall-clock time per tiny eager op (x + 1 on one element), no sync inside the loop."""
    x = torch.ones(1, device=device)
    times = []
    for _ in range(3):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(calls):
            x + 1
        times.append((time.perf_counter() - t0) * 1e6 / calls)
        _sync(device)
    return _median(times)


def _tiny_config(family: str, layers: int) -> Any:
    """A tiny random transformers config of one model family."""
    import transformers as tf

    common = dict(hidden_size=64, num_attention_heads=4, vocab_size=256,
                  max_position_embeddings=128, num_hidden_layers=layers)
    if family == "llama":
        return tf.LlamaConfig(intermediate_size=128, num_key_value_heads=2, **common)
    if family == "qwen2":
        return tf.Qwen2Config(intermediate_size=128, num_key_value_heads=2, **common)
    if family == "mistral":
        return tf.MistralConfig(intermediate_size=128, num_key_value_heads=2, **common)
    if family == "opt":
        return tf.OPTConfig(ffn_dim=128, word_embed_proj_dim=64, **common)
    if family == "gpt2":
        return tf.GPT2Config(n_embd=64, n_head=4, n_layer=layers, vocab_size=256, n_positions=128,
                             bos_token_id=0, eos_token_id=0)
    raise EstimatorError(f"unknown model family {family!r}: use one of {', '.join(HOST_FAMILIES)}")


def _tiny_model(family: str, layers: int, device: torch.device) -> torch.nn.Module:
    """A tiny random causal LM of one family on `device` (fp16 on GPU, fp32 on CPU), eval mode."""
    from transformers import AutoModelForCausalLM

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_config(_tiny_config(family, layers))
    return model.to(device=device, dtype=dtype).eval()


def _time_models(models: Sequence[torch.nn.Module], device: torch.device, warmup: int = 5,
                 calls: int = 40) -> list[float]:
    """Median wall time (us) of model(input_ids) per model, each call synchronised.

    Calls alternate between the models so that drifts (clocks, other load) hit all alike.
    """
    ids = torch.randint(0, 256, (1, 8), device=device)
    times: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for i in range(warmup + calls):
            for model, row in zip(models, times):
                _sync(device)
                t0 = time.perf_counter()
                model(ids)
                _sync(device)
                if i >= warmup:
                    row.append((time.perf_counter() - t0) * 1e6)
    return [_median(row) for row in times]


def preload_host_models(families: Sequence[str] = HOST_FAMILIES) -> None:
    """Import transformers and run each tiny model once on the CPU, so that one-off import and
    set-up costs stay out of the GPU host-overhead timings (errors surface there, not here)."""
    for family in families:
        try:
            with torch.inference_mode():
                _tiny_model(family, 1, torch.device("cpu"))(torch.zeros(1, 8, dtype=torch.long))
        except Exception:
            pass


def time_host_overhead(device: torch.device, families: Sequence[str] = HOST_FAMILIES,
                       log: Log = print) -> dict[str, dict[str, Any]]:
    """Per-layer and fixed wall time of tiny models (L=2 vs L=6) per family: eager host overhead."""
    out: dict[str, dict[str, Any]] = {}
    lo, hi = HOST_LAYERS
    for family in families:
        models: list[torch.nn.Module] = []
        try:
            models = [_tiny_model(family, n, device) for n in (lo, hi)]
            t_lo, t_hi = _time_models(models, device)
        except Exception as exc:  # a transformers version without this family: skip, keep going
            log(f"  host {family}: failed ({type(exc).__name__}: {exc}), skipped")
            continue
        finally:
            del models
            _free(device)
        per_layer = (t_hi - t_lo) / (hi - lo)
        out[family] = {"per_layer_us": round(per_layer, 3),
                       "fixed_us": round(t_lo - lo * per_layer, 3),
                       "layers_measured": [lo, hi]}
        log(f"host {family}: {per_layer:.1f} us/layer + {t_lo - lo * per_layer:.1f} us fixed")
    return out


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
            timer = Timer(src_dev, target_ms=_target_ms("gpu", quick))
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


# --------------------------------------------------------------------------- all-reduce


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
    cycles_per_us = _sleep_cycles_per_us(device) if hasattr(torch.cuda, "_sleep") else 0.0
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
        rows.append([int(size), round(_median(times), 3)])
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


# --------------------------------------------------------------------------- power


class _Stepper:
    """Calls a GPU work step back to back, keeping at most `in_flight` steps queued (or idles)."""

    def __init__(self, step: Optional[Callable[[], None]], in_flight: int) -> None:
        self.step, self.in_flight, self.pending = step, in_flight, deque()

    def __call__(self) -> None:
        """One step (or 1 ms of sleep when there is no step)."""
        if self.step is None:
            time.sleep(0.001)
            return
        self.step()
        ev = torch.cuda.Event()
        ev.record()
        self.pending.append(ev)
        if len(self.pending) > self.in_flight:
            self.pending.popleft().synchronize()


def _next_energy_tick(index: int, stepper: _Stepper) -> tuple[Optional[int], float, int]:
    """Keep stepping until GPU `index`'s energy counter moves (<= 0.3 s): (mJ, time, steps)."""
    prev, steps, t_end = nvml.energy_mj(index), 0, time.perf_counter() + 0.3
    while True:
        stepper()
        steps += 1
        now = nvml.energy_mj(index)
        if now != prev or time.perf_counter() > t_end:
            return now, time.perf_counter(), steps


def _energy_window(index: int, seconds: float, step: Optional[Callable[[], None]] = None,
                   others: Sequence[int] = (), in_flight: int = 4,
                   busy: Optional[Callable[[], bool]] = None) -> dict[str, Any]:
    """Run step() back to back (or idle) between two ticks of GPU `index`'s energy counter.

    The window lasts at least `seconds`, and also while busy() is true (at most 60 s).
    Returns watts (of `index` and of each of `others`), the window in s, the steps done between
    the ticks and their GPU time (from events), and the SM clock read near the window's end.
    """
    stepper = _Stepper(step, in_flight)
    e0, t0, _ = _next_energy_tick(index, stepper)
    others0 = [nvml.energy_mj(i) for i in others]
    events = [torch.cuda.Event(enable_timing=True) for _ in range(2)] if step else []
    if events:
        events[0].record()
    steps, clock = 0, None
    while time.perf_counter() - t0 < seconds or (busy and busy() and time.perf_counter() - t0 < 60):
        stepper()
        steps += 1
        if clock is None and time.perf_counter() - t0 > 0.85 * seconds:
            clock = nvml.sm_clock_mhz(index)
    e1, t1, extra = _next_energy_tick(index, stepper)
    others1 = [nvml.energy_mj(i) for i in others]
    if events:
        events[1].record()
        events[1].synchronize()
    window = t1 - t0
    watts = lambda a, b: None if a is None or b is None else (b - a) / 1000.0 / window  # noqa: E731
    return {"w": watts(e0, e1), "others_w": [watts(a, b) for a, b in zip(others0, others1)],
            "window_s": window, "steps": steps + extra, "clock_mhz": clock,
            "gpu_s": events[0].elapsed_time(events[1]) / 1000.0 if events else None}


def _gemm_burst_tflops(a: torch.Tensor, w: torch.Tensor, flops: float, calls: int = 5) -> float:
    """TFLOP/s of the first few back-to-back GEMMs (each timed on its own) of a cool GPU."""
    times = []
    for _ in range(calls):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        F.linear(a, w)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
    return flops / _median(times) / 1e12


def _idle_power(index: int, seconds: float, others: Sequence[int],
                idle_task: Optional[Callable[[], None]]) -> dict[str, Any]:
    """Energy window with nothing running on the GPU (idle_task may use the CPU meanwhile)."""
    worker = threading.Thread(target=idle_task or (lambda: None), daemon=True)
    worker.start()
    idle = _energy_window(index, seconds, None, others=others, busy=worker.is_alive)
    worker.join()
    return idle


def _launch_power(device: torch.device, index: int, seconds: float) -> dict[str, Any]:
    """Energy window of back-to-back tiny eager ops (x.add_(1) on 1024 elements)."""
    small = torch.ones(1024, device=device)

    def launches() -> None:
        """Fifty tiny kernels."""
        for _ in range(50):
            small.add_(1)

    return _energy_window(index, seconds, launches)


def _gemm_power(device: torch.device, index: int, seconds: float, n: int = 8192) -> dict[str, Any]:
    """Energy window of back-to-back fp16 n^3 GEMMs, with sustained and burst TFLOP/s."""
    a = torch.randn(n, n, device=device, dtype=torch.float16)
    w = torch.randn(n, n, device=device, dtype=torch.float16)
    flops = 2.0 * n * n * n
    F.linear(a, w)
    _sync(device)
    burst = _gemm_burst_tflops(a, w, flops)
    gemm = _energy_window(index, seconds, lambda: F.linear(a, w), in_flight=3)
    gemm["sustained_tflops"] = flops * gemm["steps"] / gemm["gpu_s"] / 1e12
    gemm["burst_tflops"] = burst
    return gemm


def _memory_power(device: torch.device, index: int, seconds: float) -> dict[str, Any]:
    """Energy window of back-to-back 1 GiB device-to-device copies."""
    src = torch.empty(GB // 2, device=device, dtype=torch.float16).fill_(1.0)
    dst = torch.empty_like(src)
    return _energy_window(index, seconds, lambda: dst.copy_(src))


def measure_power(device: torch.device, gpu_count: int, quick: bool = False, log: Log = print,
                  idle_task: Optional[Callable[[], None]] = None) -> dict[str, Any]:
    """Board power of GPU 0 idle, launch-bound, GEMM-bound and copy-bound, from NVML energy.

    `idle_task` (CPU-only work, such as imports) runs in a thread during the idle window, which
    is stretched until it ends: the GPU stays idle meanwhile, so the reading is unaffected.
    """
    index = nvml.nvml_index(device.index or 0)
    if nvml.energy_mj(index) is None:
        log("power: NVML energy counters unavailable, skipped")
        return {}
    seconds = 1.0 if quick else 1.5
    _sync(device)
    idle = _idle_power(index, seconds, [nvml.nvml_index(i) for i in range(gpu_count)], idle_task)
    launch = _launch_power(device, index, seconds)
    gemm = _gemm_power(device, index, seconds)
    hot_idle = _energy_window(index, 1.0)  # right after the GEMM loop: idle but hot
    memory = _memory_power(device, index, seconds)
    mixed = _mixed_power(device, index, seconds)
    _free(device)
    out = {"idle_w": idle["w"], "launch_bound_w": launch["w"], "gemm_w": gemm["w"],
           "memory_w": memory["w"], "hot_idle_w": hot_idle["w"], "mixed_w": mixed["w"],
           "mixed_compute_fraction": mixed["compute_fraction"], "gemm_sustained_tflops": gemm["sustained_tflops"],
           "gemm_burst_tflops": gemm["burst_tflops"], "gemm_sm_clock_mhz": gemm["clock_mhz"],
           "max_sm_clock_mhz": nvml.max_sm_clock_mhz(index),
           "power_limit_w": nvml.power_limit_w(index), "idle_w_per_gpu": idle["others_w"]}
    out = {k: _round(v) for k, v in out.items()}
    log("power: idle {idle_w} W, launch-bound {launch_bound_w} W, gemm {gemm_w} W "
        "({gemm_sustained_tflops} TFLOP/s sustained, {gemm_burst_tflops} burst), "
        "memory {memory_w} W, hot idle {hot_idle_w} W, mixed {mixed_w} W".format(**out))
    return out


def _mixed_power(device: torch.device, index: int, seconds: float) -> dict[str, Any]:
    """Power of a forward-pass-like mix: one GEMM, then elementwise kernels of about its time."""
    n = 4096
    a = torch.randn(4 * n, n, device=device, dtype=torch.float16)
    w = torch.randn(n, n, device=device, dtype=torch.float16)
    x = torch.randn(64 * MB, device=device, dtype=torch.float16)
    y = torch.randn(64 * MB, device=device, dtype=torch.float16)
    timer = Timer(device, target_ms=5.0)
    t_gemm = timer.per_call_us(lambda: F.linear(a, w))
    t_add = timer.per_call_us(lambda: x + y)
    adds = max(1, round(t_gemm / t_add))

    def step() -> None:
        F.linear(a, w)
        for _ in range(adds):
            x + y
    out = _energy_window(index, seconds, step)
    del a, w, x, y
    return {"w": out["w"], "compute_fraction": round(t_gemm / (t_gemm + adds * t_add), 3)}


def _round(v: Any, digits: int = 2) -> Any:
    """Round floats (also inside lists) for a readable profile."""
    if isinstance(v, float):
        return round(v, digits)
    if isinstance(v, list):
        return [_round(x, digits) for x in v]
    return v


# --------------------------------------------------------------------------- profile


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda:0 when available else cpu; 'cuda' -> cuda:0; also 'cuda:N' and 'cpu'."""
    name = (device or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EstimatorError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        dev = torch.device(name)
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise EstimatorError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s) visible")
        return torch.device("cuda", index)
    raise EstimatorError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def _cpu_name() -> str:
    """CPU model name from /proc/cpuinfo (or platform), without core count."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _header(device: torch.device) -> dict[str, Any]:
    """The profile's identifying fields, in schema order, with empty result fields."""
    import transformers

    gpu = device.type == "cuda"
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "gpu" if gpu else "cpu",
        "device_name": torch.cuda.get_device_name(device) if gpu else _cpu_name(),
        "gpu_count": torch.cuda.device_count() if gpu else 0,
        "driver": nvml.driver_version() if gpu else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "cpu": f"{_cpu_name()} ({os.cpu_count()} logical cores)",
        "duration_s": 0.0,
        "gemm": {}, "sdpa": {}, "copy": [], "elementwise_floor_us": 0.0, "launch_us": 0.0,
        "host": {}, "p2p": [], "allreduce": {}, "power": {},
    }


def _device_context(device: torch.device) -> contextlib.AbstractContextManager:
    """torch.cuda.device(device) for GPUs, a no-op for CPU."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _target_ms(kind: str, quick: bool) -> float:
    """Length of one timed loop: GPU points cost ~3 loops, so ~15 ms each (CPU ~30 ms)."""
    if kind == "gpu":
        return 3.0 if quick else 5.0
    return 5.0 if quick else 10.0


def _time_kernels(dev: torch.device, profile: dict[str, Any], quick: bool, log: Log) -> None:
    """Fill gemm, sdpa, copy, elementwise_floor_us and launch_us of a profile."""
    kind = profile["kind"]
    timer = Timer(dev, target_ms=_target_ms(kind, quick))
    gpu = kind == "gpu"
    for dt in ("float16", "bfloat16", "float32", "tf32") if gpu else ("float32", "bfloat16"):
        profile["gemm"][dt] = time_gemm_grid(dev, dt, gemm_points(kind, dt, quick), timer, log)
    for dt in ("float16", "bfloat16") if gpu and not quick else ():
        profile["gemm"][f"{dt}_unaligned"] = time_gemm_grid(dev, dt, UNALIGNED_POINTS, timer, log)
    for dt in ("float16", "bfloat16", "float32") if gpu else ("float32",):
        profile["sdpa"][dt] = time_sdpa_grid(dev, dt, sdpa_points(kind, dt, quick), timer, log)
    profile["copy"] = time_copies(dev, copy_sizes(kind, quick), timer, log)
    from .elementwise import SIZES, time_patterns
    t0 = time.perf_counter()
    profile["elementwise"] = time_patterns(dev, timer, sizes=SIZES if gpu else SIZES[:2])
    log(f"elementwise patterns: {len(profile['elementwise'])} in {time.perf_counter() - t0:.1f} s")
    profile["elementwise_floor_us"] = round(time_elementwise_floor(dev, timer), 3)
    profile["launch_us"] = round(time_launch(dev), 3)
    log(f"elementwise floor {profile['elementwise_floor_us']} us, launch {profile['launch_us']} us")


def calibrate(device: str = "auto", quick: bool = False, log: Log = print) -> dict[str, Any]:
    """Measure this machine with microbenchmarks and return the profile dict (see module doc)."""
    t_start = time.perf_counter()
    say: Log = lambda msg: log(f"[{time.perf_counter() - t_start:5.1f} s] {msg}")  # noqa: E731
    dev = resolve_device(device)
    profile = _header(dev)
    gpu = profile["kind"] == "gpu"
    say(f"calibrating {profile['device_name']} ({profile['kind']}{', quick' if quick else ''})")
    # All-reduce workers import torch while the GPU idles for the power baseline (CPU work
    # there cannot disturb a reading); they touch no GPU until job.run() releases them.
    job = AllreduceJob(profile["gpu_count"]) if gpu else None
    try:
        with _device_context(dev):
            if gpu:  # first, while the GPU is still cool and idle
                profile["power"] = measure_power(dev, profile["gpu_count"], quick, say,
                                                 idle_task=preload_host_models)
            _time_kernels(dev, profile, quick, say)
            profile["host"] = time_host_overhead(dev, log=say)
        if gpu and profile["gpu_count"] >= 2:
            from .hook_overhead import dispatch_overhead_us
            profile["dispatch"] = dispatch_overhead_us(
                {f: (lambda layers, f=f: _tiny_config(f, layers)) for f in HOST_FAMILIES}, log=say)
        if gpu:
            profile["p2p"] = measure_p2p(quick=quick, log=say)
            profile["allreduce"] = job.run(log=say)
    finally:
        if job is not None:
            job.abort()
    profile["duration_s"] = round(time.perf_counter() - t_start, 2)
    say(f"calibration done in {profile['duration_s']} s")
    return profile


def save_profile(profile: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a profile as indented JSON (parent folders created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(profile, indent=1) + "\n")
    return out
