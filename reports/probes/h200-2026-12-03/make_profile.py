"""How estimator/profiles/h200-sxm-141gb.json's host sections were regenerated on 2026-12-03.

    python reports/probes/h200-2026-12-03/make_profile.py [--generate calibration|none] OUT.json

The GPU tables (gemm, sdpa, copy, elementwise, grouped_gemm, power, p2p, allreduce, dispatch) stay
those of the shipped profile (two calibrations on a 4 x H200, 2026-11-27/12-01). From the single
H200 loan of 2026-12-03 (probe.json, bench/probe_host.py; h200-cal.json, a full calibration):
- host_ops: the median per class of the probe's four host_ops runs (GC frozen);
- host: every model type's tiny-model host time from the probe (GC frozen, a CPU probe beside
  every pass). Four types were timed while the CPU probe ran about 2x slower than the section's
  median (the host's own speed moved); their times are scaled by sqrt(median probe / their probe):
  on that loan host time moved about as the square root of the probe (the four families'
  real-size models, timed at the usual probe speed, took 1.3-1.5x less per layer than their tiny
  models at 2x the probe; fully proportional scaling left them 20-30 % too fast)
  and marked so in the entry;
- generate: the calibration's generate section (every type), or none (--generate none: the
  estimator then builds generate's host time from the forward's and the median per-step work).
"""
import json
import math
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


def main(argv):
    gen_mode = "calibration"
    if argv[:1] == ["--generate"]:
        gen_mode, argv = argv[1], argv[2:]
    out = Path(argv[0])
    base = json.loads((ROOT / "estimator/profiles/h200-sxm-141gb.json").read_text())
    probe = json.loads((HERE / "probe.json").read_text())
    cal = json.loads((HERE / "h200-cal.json").read_text())
    runs = [r["ops"] for r in probe["host_ops"]] + [probe["host_ops_after"]]
    base["host_ops"] = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
    tiny = {mt: r for mt, r in probe["tiny"].items() if "error" not in r}
    mid = statistics.median(r["probe_us"] for r in tiny.values())
    host = {}
    for mt, r in tiny.items():
        f = 1.0 if r["probe_us"] <= 1.25 * mid else math.sqrt(mid / r["probe_us"])
        entry = {"per_layer_us": round(r["per_layer_us"] * f, 3), "fixed_us": round(r["fixed_us"] * f, 3),
                 "samples": 1, "source": "h200 loan 2026-12-03 probe.json"}
        if f != 1.0:
            entry["slow_host_scaled_by"] = round(f, 3)
        host[mt] = entry
    base["host"] = host
    if gen_mode == "calibration":
        base["generate"] = cal["generate"]
    else:
        base.pop("generate", None)
    base["transformers"] = probe.get("transformers", base.get("transformers"))
    line = "host_ops, host, generate: single H200 loan 2026-12-03 (reports/probes/h200-2026-12-03/make_profile.py)"
    base["merged_from"] = [m for m in base.get("merged_from") or [] if m != line] + [line]
    out.write_text(json.dumps(base, indent=1) + "\n")
    print(f"wrote {out}: {len(host)} host entries, generate {gen_mode}, probe median {mid:.0f} us")


def h100(path=ROOT / "estimator/profiles/h100-sxm5-80gb.json"):
    """The H100 profile keeps its GPU tables and its own timed families; it gets the per-class
    host costs of the H200 loan (its own hosts were never timed per class): the op-level model's
    glue is fitted on the H100's own timed families, which absorbs the two hosts' speed ratio."""
    prof = json.loads(path.read_text())
    h200 = json.loads((ROOT / "estimator/profiles/h200-sxm-141gb.json").read_text())
    prof["host_ops"] = h200["host_ops"]
    line = "host_ops: copied from the H200 loan of 2026-12-03 (never timed on an H100 host)"
    prof["merged_from"] = [m for m in prof.get("merged_from") or [] if m != line] + [line]
    path.write_text(json.dumps(prof, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--h100"]:
        h100()
    else:
        main(sys.argv[1:])
