"""GPU probe (a design aid, not a suite measurement): does the power stage's GEMM loop, timed on
randn (std 1) operands, draw the power a model's GEMMs draw? A model's weights are initialised
(and trained) at about std 0.02 (transformers' initializer_range), its activations normalised.
Runs the calibration's own GEMM and mixed windows (estimator/calibrate/power.py) with the second
operand (the weight) at std 1 and at std 0.02, and the Llama 4 experts' bmm the same two ways.

    python -m bench.probe_power_data OUT_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from estimator.calibrate import nvml, power
from estimator.calibrate.timing import Timer

WINDOW_S = 2.0


def _with_weight_std(std: float, fn, *args):
    """fn(*args) with every second torch.randn the calibration makes (the weight) scaled by std."""
    real = torch.randn
    count = [0]

    def randn(*a, **kw):
        count[0] += 1
        t = real(*a, **kw)
        return t.mul_(std) if count[0] == 2 else t

    torch.randn = randn
    try:
        return fn(*args)
    finally:
        torch.randn = real


def _bmm(device, std: float) -> dict:
    """Llama-4-Scout's experts bmm at 8 x 2048 tokens: (16, 16384, 5120) x (16, 5120, 16384)."""
    x = torch.randn(16, 16384, 5120, device=device, dtype=torch.bfloat16)
    w = torch.randn(16, 5120, 16384, device=device, dtype=torch.bfloat16).mul_(std)
    timer = Timer(device, target_ms=100.0)
    cold = timer.per_call_us(lambda: torch.bmm(x, w))
    index = nvml.nvml_index(0)
    win = power._energy_window(index, WINDOW_S, lambda: torch.bmm(x, w), in_flight=2)
    flops = 2.0 * 16 * 16384 * 5120 * 16384
    del x, w
    torch.cuda.empty_cache()
    return {"std": std, "timer_us": cold, "sustained_tflops": flops * win["steps"] / win["gpu_s"] / 1e12,
            "w": win["w"], "clock_mhz": win["clock_mhz"]}


def main(out: str) -> None:
    device = torch.device("cuda:0")
    index = nvml.nvml_index(0)
    rows = []
    for std in (1.0, 0.02, 1.0, 0.02):
        g = _with_weight_std(std, power._gemm_power, device, index, WINDOW_S)
        hot = power._energy_window(index, 1.0)
        m = _with_weight_std(std, power._mixed_power, device, index, WINDOW_S)
        rows.append({"std": std, "gemm_w": g["w"], "sustained_tflops": g["sustained_tflops"],
                     "burst_tflops": g["burst_tflops"], "gemm_clock_mhz": g["clock_mhz"], "hot_idle_w": hot["w"],
                     "mixed_w": m["w"], "mixed_compute_fraction": m["compute_fraction"]})
        print(json.dumps(rows[-1]), flush=True)
    for std in (1.0, 0.02):
        rows.append({"bmm": _bmm(device, std)})
        print(json.dumps(rows[-1]), flush=True)
    Path(out).mkdir(parents=True, exist_ok=True)
    Path(out, "power_data.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
