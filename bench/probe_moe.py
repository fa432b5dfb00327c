"""GPU probe (a design aid, not a suite measurement): grouped GEMM timings, MoE forward and
generate per experts implementation, and the kernels one MoE forward launches.

    python -m bench.probe_moe OUT_DIR
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from estimator.calibrate.grouped import time_grouped
from estimator.calibrate.timing import Timer
from estimator.model import config_path

MODELS = ("mistralai/Mixtral-8x7B-v0.1", "Qwen/Qwen3-30B-A3B")
SHAPES = ((1, 128), (8, 1024), (2, 2048))


def _build(name: str, impl: str):
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg = AutoConfig.from_pretrained(str(config_path(name)))
    cfg._experts_implementation = impl
    torch.manual_seed(0)
    with torch.device("cuda:0"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, experts_implementation=impl)
    return model.eval()


def _median_ms(fn, rounds: int = 7) -> tuple[float, list[float]]:
    fn(); fn()
    times = []
    for _ in range(rounds):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), times


def main(out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    import transformers
    result: dict = {"torch": torch.__version__, "transformers": transformers.__version__,
                    "gpu": torch.cuda.get_device_name(0)}
    dev = torch.device("cuda:0")
    result["grouped_gemm"] = {"bfloat16": time_grouped(dev, torch.bfloat16, Timer(dev, 20.0))}
    print("grouped points", len(result["grouped_gemm"]["bfloat16"]), flush=True)
    runs = []
    for name in MODELS:
        for impl in ("grouped_mm", "batched_mm", "eager"):
            try:
                model = _build(name, impl)
            except Exception as exc:  # noqa: BLE001
                runs.append(dict(model=name, impl=impl, error=str(exc)[:300]))
                continue
            vocab = model.config.vocab_size
            for b, s in (((1, 1), (4, 1), (1, 16)) if impl == "batched_mm" else SHAPES):
                ids = torch.randint(0, vocab, (b, s), device=dev)
                try:
                    row = _one(model, ids, name, impl, b, s)
                except torch.OutOfMemoryError as exc:
                    row = dict(model=name, impl=impl, batch=b, seq=s, error=str(exc)[:200])
                torch.cuda.empty_cache()
                runs.append(row)
                print(json.dumps({k: v for k, v in row.items() if k not in ("kernels", "rounds")}), flush=True)
            del model
            torch.cuda.empty_cache()
    result["runs"] = runs
    (out_dir / "probe_moe.json").write_text(json.dumps(result, indent=1))


def _one(model, ids, name, impl, b, s):
    """One shape: forward median, peak memory; generate at 1 x 128; kernels at 8 x 1024."""
    with torch.inference_mode():
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        ms, rounds = _median_ms(lambda: model(ids))
        peak = torch.cuda.max_memory_allocated()
        row = dict(model=name, impl=impl, batch=b, seq=s, forward_ms=ms, rounds=rounds,
                   peak_gb=peak / 1e9, weights_gb=base / 1e9)
        if (b, s) == (1, 128) and impl != "batched_mm":
            kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
            gen = lambda n: model.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)  # noqa: E731
            gen(4)
            row["generate_16_ms"], _ = _median_ms(lambda: gen(16), 3)
            row["generate_1_ms"], _ = _median_ms(lambda: gen(1), 3)
        if (b, s) == (8, 1024) and impl != "batched_mm":
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                model(ids)
                torch.cuda.synchronize()
            row["kernels"] = [(e.key[:90], e.count, round(e.device_time_total, 1))
                              for e in sorted(prof.key_averages(), key=lambda e: -e.device_time_total)[:30]]
    return row


if __name__ == "__main__" and len(sys.argv) == 2:
    main(sys.argv[1])


def host_probe(out: str) -> None:
    """Host-bound forwards: the same model at 1 x 4 tokens (host only) interleaved with the real
    shapes, three alternations, to see how well the tiny pass predicts the host-bound ones."""
    from bench.build import build
    dev = torch.device("cuda:0")
    rows = []
    for name in ("AICrossSim/clm-60m", "AICrossSim/clm-200m", "AICrossSim/clm-1.1b", "facebook/opt-1.3b",
                 "Qwen/Qwen3-0.6B", "google/gemma-2-2b"):
        dtype = "bfloat16" if "clm" in name or "Qwen" in name or "gemma" in name else "float16"
        model = build(name, dtype, "cuda:0")
        vocab = model.config.vocab_size
        ids = {s: torch.randint(0, vocab, s, device=dev) for s in ((1, 4), (1, 128), (1, 2048), (16, 128))}
        t_end = time.perf_counter() + 2.0
        with torch.inference_mode():
            while time.perf_counter() < t_end:   # warm-up by time
                model(ids[(1, 4)]); model(ids[(1, 128)])
            torch.cuda.synchronize()
            for rep in range(3):
                for shape, x in ids.items():
                    ms, _ = _median_ms(lambda: model(x), 9)
                    rows.append(dict(model=name, rep=rep, shape=list(shape), ms=ms))
                    print(json.dumps(rows[-1]), flush=True)
        del model
        torch.cuda.empty_cache()
    Path(out, "probe_host.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[2] == "host":
    host_probe(sys.argv[1])
