"""GPU probe (a design aid, not a suite measurement): the MoE expert GEMMs inside a model's forward
against the calibration's grouped_mm loop (issue 24: DeepSeek-V2-Lite ran 10 % faster than
estimated, its grouped_mm kernels 64.8 ms where the calibrated points price 73.5 ms).

For each model: every ``torch.nn.functional.grouped_mm`` call of a forward pass is timed in
place with CUDA events (median of 3 passes per call), its shapes, strides and per-expert row
counts recorded; then the first MoE layer's two calls are replayed alone with the calibration's
Timer (estimator/calibrate/timing.py), once with the model's own inputs and routing, and once
as the calibration times them (randn, equal rows per expert, the same weights' view). SM clock
(NVML) is read after each phase. One JSON line per model into OUT/grouped.jsonl.

    python -m bench.probe_grouped OUT_DIR MODEL [MODEL ...]   (batch 8 x seq 2048, bfloat16)
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.build import build
from estimator import load_model
from estimator.calibrate import nvml
from estimator.calibrate.timing import Timer


def _sm_clock() -> float | None:
    try:
        import pynvml
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(nvml.nvml_index(0))
        return float(pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM))
    except Exception:   # noqa: BLE001 - a probe: no NVML, no clock
        return None


def _replay(real, keep, timer, replay):
    for x, w, offs in keep:
        own = timer.per_call_us(lambda: real(x, w, offs=offs))
        clock_own = _sm_clock()
        e = w.shape[0]
        m = x.shape[0] // e
        xs = torch.randn(e * m, x.shape[1], device=x.device, dtype=x.dtype)
        even = torch.arange(1, e + 1, device=x.device, dtype=torch.int32) * m
        uniform = timer.per_call_us(lambda: real(xs, w, offs=even))
        wc = torch.randn(w.shape[0], w.shape[2], w.shape[1], device=x.device, dtype=x.dtype).transpose(-2, -1)
        calib = timer.per_call_us(lambda: real(xs, wc, offs=even))
        replay.append({"own_inputs_us": own, "randn_even_rows_us": uniform, "calibration_style_us": calib,
                       "rows_per_expert_even": m, "sm_clock_after_own": clock_own, "sm_clock_after": _sm_clock()})
        del xs, wc


def probe(name: str, batch: int, seq: int) -> dict:
    spec = load_model(name)
    model = build(name, "bfloat16", "cuda:0")
    ids = torch.randint(0, spec.vocab, (batch, seq), device="cuda:0")
    owner, attr = (F, "grouped_mm") if hasattr(F, "grouped_mm") else (torch, "_grouped_mm")   # what transformers calls
    real = getattr(owner, attr)
    calls: list[dict] = []
    events: list[list[tuple]] = []
    keep: list[tuple] = []
    mode = {"record": False, "time": False}

    def wrapped(x, w, *args, offs=None, **kw):
        if mode["time"]:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            out = real(x, w, *args, offs=offs, **kw)
            b.record()
            events[-1].append((a, b))
            return out
        if mode["record"]:
            counts = torch.diff(offs, prepend=offs.new_zeros(1)).tolist() if offs is not None else []
            calls.append({"x": list(x.shape), "w": list(w.shape), "w_stride": list(w.stride()),
                          "x_stride": list(x.stride()), "dtype": str(x.dtype), "rows_per_expert": counts})
            if len(keep) < 2:
                keep.append((x.clone(), w, offs.clone()))
        return real(x, w, *args, offs=offs, **kw)

    setattr(owner, attr, wrapped)
    try:
        with torch.inference_mode():
            for _ in range(3):
                model(ids)
            torch.cuda.synchronize()
            mode["record"] = True
            model(ids)
            torch.cuda.synchronize()
            mode["record"] = False
            mode["time"] = True
            walls = []
            for _ in range(3):
                events.append([])
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                model(ids)
                torch.cuda.synchronize()
                walls.append((time.perf_counter() - t0) * 1e3)
            mode["time"] = False
            clock_model = _sm_clock()
    finally:
        setattr(owner, attr, real)
    per_call = [statistics.median(ev[i][0].elapsed_time(ev[i][1]) * 1e3 for ev in events)
                for i in range(len(events[0]))]
    timer = Timer(torch.device("cuda:0"), target_ms=8.0)
    replay = []
    with torch.inference_mode():   # the weights are parameters: no autograd around the replay
        _replay(real, keep, timer, replay)
    result = {"model": name, "batch": batch, "seq": seq, "forward_ms": walls, "sm_clock_after_forward": clock_model,
              "calls": [dict(c, in_place_us=t) for c, t in zip(calls, per_call)], "replay_first_layer": replay,
              "grouped_total_ms": sum(per_call) / 1e3}
    del model, keep
    torch.cuda.empty_cache()
    return result


def main(argv: list[str]) -> None:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name in argv[1:]:
        try:
            r = probe(name, 8, 2048)
        except Exception as exc:   # noqa: BLE001 - a probe: say what failed, go on
            print(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", flush=True)
            continue
        with open(out / "grouped.jsonl", "a") as f:
            f.write(json.dumps(r) + "\n")
        c = r["calls"]
        print(f"{name}: forward {statistics.median(r['forward_ms']):.1f} ms, {len(c)} grouped_mm "
              f"{r['grouped_total_ms']:.2f} ms; first two in place {[round(x['in_place_us']) for x in c[:2]]} us, "
              f"replayed {[{k: round(v) for k, v in p.items() if k.endswith('_us')} for p in r['replay_first_layer']]}",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
