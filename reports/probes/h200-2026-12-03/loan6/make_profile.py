"""How estimator/profiles/h200-sxm-141gb.json's generate section was made on 2026-12-03 (night),
from loan 6's calibration (h200-calibration-all-types.json, cal-all.log).

    python reports/probes/h200-2026-12-03/loan6/make_profile.py

Loan 6 timed every type's forward and generate() in ONE round-robin loop (calibrate/host.py
``time_host_families``): every family, both depths and both step counts, once per round, six
rounds after a warm-up one, so that the host's slow moments (1.5-2x, seconds long) hit every
family and both kinds of call alike. The generate section it replaces came from loan 3, timed one
family after another and minutes after that family's forward, and was set against loan 1's
forward: a decode-step layer came out 0.9-1.7x its forward layer (the 1.30 ``decode_glue`` then
fitted), where loan 6 measures 0.88-1.11x for the dense types in one loop.

So each type's generate entry is loan 6's, times (the shipped forward host time of that type /
loan 6's), both of the 12-layer tiny model: the decode/forward ratio is the one measured at the
same moments, set on the forward entries the profile already ships (loan 1's and loan 3's, which
the forward leave-one-family-out check holds to 15 %). A type the profile has no forward entry
for (olmo2) keeps no generate entry: the estimator builds it from parts, as its notes say.
The host_ops, host, GPU and power sections are left as they are. Idempotent.

Leave-one-family-out on the result (tests/test_host_model.py): forward mean 7.1 %, max 14.9 %;
decode step mean 6.5 %, max 14.4 % (the decode glue per MLP kind, host_model.decode_glue).
"""
import json
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[3]
PROFILE = ROOT / "estimator/profiles/h200-sxm-141gb.json"
GENERATE_KEYS = ("setup_us", "setup_per_layer_us", "step_us", "step_per_layer_us")
LAYERS = 12


def total_us(host: dict) -> float:
    return LAYERS * host["per_layer_us"] + host["fixed_us"]


def main() -> None:
    base = json.loads(PROFILE.read_text())
    cal = json.loads((HERE / "h200-calibration-all-types.json").read_text())
    gen, anchors = {}, {}
    for mt, g in cal["generate"].items():
        if mt not in base["host"]:
            continue
        anchors[mt] = total_us(base["host"][mt]) / total_us(cal["host"][mt])
        gen[mt] = {**{k: round(g[k] * anchors[mt], 3) for k in GENERATE_KEYS},
                   "source": f"H200 loan 6 of 2026-12-03 (round-robin with its forward) x {anchors[mt]:.3f} "
                             "(the shipped forward host / loan 6's)"}
    base["generate"] = gen
    line = "generate: H200 loan 6 of 2026-12-03 (reports/probes/h200-2026-12-03/loan6/make_profile.py)"
    base["merged_from"] = [m for m in base.get("merged_from") or [] if m != line] + [line]
    PROFILE.write_text(json.dumps(base, indent=1) + "\n")
    print(f"wrote {PROFILE}: {len(gen)} generate entries; anchors "
          + ", ".join(f"{mt} {a:.3f}" for mt, a in anchors.items()))


if __name__ == "__main__":
    main()
