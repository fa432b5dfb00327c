"""How estimator/profiles/h200-sxm-141gb.json's host sections were made on 2026-12-03 (afternoon).

Superseded in part: the generate section this script writes was replaced that night by
../loan6/make_profile.py (generate timed round-robin with its forward) and ../loan6/make_level.py
(the lent machines' decode-step level); run those two after this one to rebuild the shipped profile.

    python reports/probes/h200-2026-12-03/loan3/make_profile.py

Host time moved 1.2-2.2x between lent H200s of one kind; two loans of the day timed it with the
garbage collector frozen and off: loan 1 (../probe.json, ../make_profile.py: host_ops and the
tiny-model host times of 12 model types, each beside a CPU probe) and loan 3
(h200-calibration-all-types.json: a full calibration timing host_ops, the host and the generate()
overhead of all 17 host types). Loan 3's host ran about 10 % faster than loan 1's, and its
per-type host times, timed without a CPU probe beside them, scatter more (qwen3 and phi3 30-40 %
slower than loan 1's, llama 8 % faster; olmo2's forward per layer twice its own decode step's):
with them the op-level model, left out family by family, missed five families by 16-34 %. So:
- host_ops and the 12 types loan 1 timed: loan 1's, as they were (../make_profile.py);
- the five types loan 1 did not know (olmo2, granite, smollm3, olmoe, phimoe): loan 3's, times
  loan 1's host speed over loan 3's (the median type's ratio of 12-layer tiny-model host time),
  except a type whose timings contradict each other (``timings_agree``: olmo2), left to the
  op-level model;
- generate: loan 3's entries (the only loan that timed generate() GC-frozen for every type), each
  coefficient times the same ratio.
Checked on decode steps neither loan's calibration ran (probe.json's 12 real-size models at batch
1 and 16, loan 1; the six models' generate at batch 1, loan 3): TPOT mean |error| about 22 % and
16 %, bias about -9 % and +15 %: the two loans' own host speeds differ by about that much.
The GPU tables (gemm, sdpa, copy, elementwise, grouped_gemm, p2p, allreduce, dispatch) stay
those of the shipped profile (two calibrations on a 4 x H200, 2026-11-27/12-01); the power section
is the median of five machines' (../loan5/make_power.py).
"""
import json
import math
import statistics
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[3]
PROFILE = ROOT / "estimator/profiles/h200-sxm-141gb.json"
GENERATE_KEYS = ("setup_us", "setup_per_layer_us", "step_us", "step_per_layer_us")


def timings_agree(mt: str, host: dict, cal: dict) -> bool:
    """False when a dense type's forward took more per layer than 1.3 x its own decode step's layer
    (a decode step does a forward layer's work and a cache update): timed at a slow moment. olmo2
    on loan 3: 1261 us per forward layer, 667 per decode-step layer. Such a type keeps no entry:
    the op-level model prices it, as its estimates say."""
    from estimator.families import BY_MODEL_TYPE
    gen = cal["generate"].get(mt)
    moe = "moe" in BY_MODEL_TYPE[mt].name or mt in ("mixtral", "olmoe", "phimoe")
    return moe or gen is None or host["per_layer_us"] <= 1.3 * gen["step_per_layer_us"]


def main() -> None:
    base = json.loads(PROFILE.read_text())
    loan3 = json.loads((HERE / "h200-calibration-all-types.json").read_text())
    # loan 1's entries (../make_profile.py): host_ops and host stay as they are; entries an earlier
    # run of this script added are made again (the script gives the same profile every run)
    old = {mt: h for mt, h in base["host"].items() if "loan 3" not in str(h.get("source", ""))}
    ratios = [math.sqrt((12 * old[mt]["per_layer_us"] + old[mt]["fixed_us"]) / (12 * b["per_layer_us"] + b["fixed_us"]))
              for mt, b in loan3["host"].items() if mt in old]
    speed = statistics.median(ratios) ** 2     # loan 1's host time over loan 3's, the median type
    rejected = [mt for mt, b in loan3["host"].items() if mt not in old and not timings_agree(mt, b, loan3)]
    for mt, b in loan3["host"].items():
        if mt not in old and mt not in rejected:
            old[mt] = {"per_layer_us": round(b["per_layer_us"] * speed, 3), "fixed_us": round(b["fixed_us"] * speed, 3),
                       "source": f"H200 loan 3 of 2026-12-03 x {speed:.3f} (loan 1's host speed)"}
    base["generate"] = {mt: {**{k: round(g[k] * speed, 3) for k in GENERATE_KEYS},
                             "source": f"H200 loan 3 of 2026-12-03 x {speed:.3f} (loan 1's host speed)"}
                        for mt, g in loan3["generate"].items() if mt not in rejected}
    host, factor = old, speed
    base["host"] = host
    line = "host of 5 more types, generate: H200 loan 3 of 2026-12-03 (reports/probes/h200-2026-12-03/loan3/make_profile.py)"
    base["merged_from"] = [m for m in base.get("merged_from") or [] if m != line] + [line]
    PROFILE.write_text(json.dumps(base, indent=1) + "\n")
    print(f"wrote {PROFILE}: {len(host)} host entries, {len(base['generate'])} generate entries, factor {factor:.3f}, "
          f"rejected {rejected}")


if __name__ == "__main__":
    main()
