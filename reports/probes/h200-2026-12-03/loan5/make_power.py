"""How estimator/profiles/h200-sxm-141gb.json's power section was made on 2026-12-03 (evening).

    python reports/probes/h200-2026-12-03/loan5/make_power.py

The power section had come from one calibration of a 4 x H200 (reports/calibration/h200x4-run2.json,
2026-11-27), whose GEMM throughput before the power limit binds (``gemm_burst_tflops``, 764.6) was
the highest any H200 gave: the five machines calibrated so far read 687-765 TFLOP/s. The power-cap
rule (estimator/energy.py) slows compute kernels by the draw it infers from that reading, so a high
one priced OPT's forward at 16 x 1024 about 8 % slow where the machine's own calibration priced it
within 1.6 % (loan 5: 91.8 ms shipped, 86.9 ms calibrated, 85.3 ms measured; the GEMM, copy and
elementwise tables of the loans agree within 1-2 %). Each scalar of the section is now the median
over one calibration per machine (below); the recorded rows of the 1-GPU loans: runtime within 5 %
on 128 of 210 (113 before), energy within 10 % on 133 (128); the 4 x H200's own rows: runtime 73 of
98 (72), energy 62 of 98 (73: the values were that machine's)."""
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
PROFILE = ROOT / "estimator/profiles/h200-sxm-141gb.json"
MACHINES = {   # one calibration per machine
    "H200 loan 1 of 2026-12-03": "reports/probes/h200-2026-12-03/h200-cal.json",
    "H200 loan 2 of 2026-12-03": "reports/probes/h200-2026-12-03/loan2/calibrated-profile.json",
    "H200 loan 3 of 2026-12-03": "reports/probes/h200-2026-12-03/loan3/h200-calibration-all-types.json",
    "H200 loan 5 of 2026-12-03": "reports/probes/h200-2026-12-03/loan5/bench-calibrated-profile.json",
    "4 x H200 of 2026-11-27": "reports/calibration/h200x4-run2.json",
}
SCALARS = ("idle_w", "launch_bound_w", "gemm_w", "memory_w", "hot_idle_w", "mixed_w", "mixed_compute_fraction",
           "gemm_sustained_tflops", "gemm_burst_tflops", "gemm_sm_clock_mhz", "max_sm_clock_mhz")


def main() -> None:
    base = json.loads(PROFILE.read_text())
    powers = [json.loads((ROOT / path).read_text())["power"] for path in MACHINES.values()]
    for key in SCALARS:
        values = [p[key] for p in powers if p.get(key) is not None]
        if values:
            base["power"][key] = round(statistics.median(values), 2)
    line = f"power: per-field median of {len(MACHINES)} machines' calibrations ({', '.join(MACHINES)}; " \
           "reports/probes/h200-2026-12-03/loan5/make_power.py)"
    base["merged_from"] = [m for m in base.get("merged_from") or [] if not m.startswith("power: per-field median")] + [line]
    PROFILE.write_text(json.dumps(base, indent=1) + "\n")
    print(f"wrote {PROFILE}: power {base['power']}")


if __name__ == "__main__":
    main()
