"""CLI: python -m estimator estimate | sweep | plan | devices | models | calibrate."""
from __future__ import annotations

import argparse
import json
import os
import sys

from .cli_args import DefaultsFormatter, Parser
from .device import GB, list_devices
from .errors import EstimatorError
from .api import estimate
from .model import load_model, zoo_names
from .workload import EXPERTS_IMPLEMENTATIONS, PARALLEL_MODES, Workload, normalize_dtype
from .ranges import annotate_rows
from .tables import tabulate

# Each command and its one line in --help. A command's own arguments are added only when it is
# the one run (or when no command is named): sweep and plan import the planner, the sweep and
# their plotting, which an estimate never needs (issue 26: one-shot CLI time).
COMMANDS = {"estimate": "predict one forward pass",
            "sweep": "estimate a grid of models x devices x workloads; --fit: what fits",
            "plan": "the cheapest GPUs that serve a model at latency / throughput targets",
            "devices": "list known GPUs",
            "models": "list shipped model configs",
            "calibrate": "measure this machine into a profile JSON"}


def command_of(argv: list[str]) -> str | None:
    """The command argparse will run for `argv`: its first positional argument (the top-level
    parser has no option that takes a value), None when that is no command."""
    for i, a in enumerate(argv):
        if a == "--":
            a = argv[i + 1] if i + 1 < len(argv) else ""
        elif a.startswith("-"):
            continue
        return a if a in COMMANDS else None
    return None


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; with `command`, only that command's arguments are added (the others
    are named, with their help line, and take none: enough to parse `command`'s arguments)."""
    ap = Parser(prog="python -m estimator", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True, parser_class=Parser)
    if command is not None:
        for name, text in COMMANDS.items():
            if name != command:
                sub.add_parser(name, help=text)
            else:
                _add_command(sub, name)
        return ap
    for name in COMMANDS:
        _add_command(sub, name)
    return ap


def _add_command(sub: argparse._SubParsersAction, name: str) -> None:
    if name == "sweep":
        from . import sweep_cli
        sweep_cli.add_parser(sub, DefaultsFormatter, COMMANDS["sweep"])
        return
    if name == "plan":
        from . import plan_cli
        plan_cli.add_parser(sub, DefaultsFormatter, COMMANDS["plan"])
        return
    if name in ("devices", "models"):
        sub.add_parser(name, help=COMMANDS[name])
        return
    if name == "calibrate":
        cal = sub.add_parser("calibrate", help=COMMANDS["calibrate"])
        cal.add_argument("--out", default=None, help="where to write the profile (default: print)")
        cal.add_argument("--quick", action="store_true", help="smaller grids and shorter windows")
        cal.add_argument("--generate-types", default=None, metavar="TYPES",
                         help="comma-separated model types whose generate() host time is timed, or 'all' "
                              "(default: llama, mixtral, qwen3_moe, phi3; the others are derived from llama's)")
        return
    est = sub.add_parser("estimate", help=COMMANDS["estimate"], formatter_class=DefaultsFormatter)
    est.add_argument("--model", required=True, help="zoo name (python -m estimator models) or path to a config.json")
    est.add_argument("--device", required=True, help="GPU name, short (H100) or NVML (NVIDIA H100 80GB HBM3)")
    est.add_argument("--gpus", type=int, default=1, help="GPU count")
    est.add_argument("--parallel", default="pipeline", choices=PARALLEL_MODES,
                     help="how gpus > 1 share the work: pipeline (layers split), data (batch split), "
                          "tensor (layers sharded)")
    est.add_argument("--batch", type=int, default=16, help="sequences per forward pass")
    est.add_argument("--seq", type=int, default=1024, help="tokens per sequence")
    est.add_argument("--dtype", default=None, help="float16|bfloat16|float32 (default: the model's own, else float16)")
    est.add_argument("--tf32", action="store_true", help="float32 matmuls on tensor cores (torch's default is off)")
    est.add_argument("--new-tokens", type=int, default=0, metavar="N",
                     help="model.generate of N new tokens (greedy): adds ttft_ms, tpot_ms, generate_ms, "
                          "generate_energy_j_per_token; memory is the peak over the call")
    est.add_argument("--no-cache", action="store_true", help="model(input_ids, use_cache=False): no K/V cache")
    est.add_argument("--experts-implementation", default=None, choices=EXPERTS_IMPLEMENTATIONS, metavar="NAME",
                     help="MoE models: transformers' experts_implementation to price (%(choices)s); default: "
                          "what transformers picks (grouped_mm; generate decodes with batched_mm on a GPU)")
    est.add_argument("--profile", default=None, help="calibration profile JSON (default: the shipped one)")
    est.add_argument("--transfer-from", default=None, metavar="DEVICE",
                     help="estimate from DEVICE's shipped calibration through the transfer model, ignoring "
                          "the device's own (default: own profile, else the closest calibrated device)")
    est.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_estimate(args: argparse.Namespace) -> None:
    spec = load_model(args.model)
    dtype = normalize_dtype(args.dtype) if args.dtype else (spec.dtype or "float16")
    w = Workload(batch=args.batch, seq=args.seq, dtype=dtype, gpus=args.gpus, parallel=args.parallel, tf32=args.tf32,
                 new_tokens=args.new_tokens, use_cache=not args.no_cache,
                 experts_implementation=args.experts_implementation)
    est = estimate(spec, args.device, w, args.profile, args.transfer_from)   # notes say which device "H100" is
    if args.json:
        from .jsonout import dumps_estimate
        print(dumps_estimate(est.to_dict()))
        return
    for note in (n for n in est.notes if n.startswith("does not fit")):
        print(note)
    experts = est.workload.get("experts_implementation")
    print(f"{est.model} on {est.device} x {w.gpus} ({est.workload['parallel']}), {w.batch} x {w.seq} tokens, {w.dtype}"
          + (f", experts {experts}" if experts else ""))
    print(f"profile: {est.profile}")
    rows = [["runtime", f"{est.runtime_ms:.2f} ms"],
            ["memory per GPU", ", ".join(f"{m:.2f}" for m in est.memory_gb_per_gpu) + " GB"],
            ["energy", "n/a (the profile has no power section)" if est.energy_j_per_token is None
             else f"{est.energy_j_per_token:.4g} J/token"],
            ["throughput", f"{est.throughput_tokens_per_s:,.0f} tokens/s"],
            ["host / GPU busy", f"{est.host_ms:.2f} / {est.gpu_busy_ms:.2f} ms ({est.bound}-bound)"]]
    if est.ttft_ms is not None:   # generation: runtime is the whole generate call
        from .generation import generation_rows
        rows += generation_rows(est)
    print(tabulate(annotate_rows(rows, est), tablefmt="simple"))
    print()
    print(memory_table(est))
    print()
    table = [[f"{b['phase']}: {b['group']}" if "phase" in b else b["group"], f"{b['time_ms']:.3f}", b["kernels"], f"{b['flops'] / 1e12:.3f}", f"{b['bytes'] / GB:.3f}", b["bound"]]
             for b in sorted(est.breakdown, key=lambda b: -b["time_ms"])]
    print(tabulate(table, headers=["operator group", "GPU ms", "kernels", "TFLOP", "GB moved", "bound"]))
    for note in est.notes:
        if not note.startswith("does not fit"):
            print(f"note: {note}")


def memory_table(est) -> str:
    """Each GPU's peak memory by part, in GB (the parts add up to the total)."""
    parts = list(est.memory_breakdown_gb[0]) if est.memory_breakdown_gb else []
    table = [[g, *(f"{p[k]:.3f}" for k in parts), f"{total:.3f}"]
             for g, (p, total) in enumerate(zip(est.memory_breakdown_gb, est.memory_gb_per_gpu))]
    return tabulate(table, headers=["GPU", *(k.replace("_", " ") + " GB" for k in parts), "total GB"],
                    disable_numparse=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser(command_of(argv)).parse_args(argv)
    try:
        if args.command == "estimate":
            cmd_estimate(args)
        elif args.command == "sweep":
            from . import sweep_cli
            sweep_cli.cmd_sweep(args)
        elif args.command == "plan":
            from . import plan_cli
            plan_cli.cmd_plan(args)
        elif args.command == "devices":
            print(tabulate([[d.key, d.name, f"{d.tflops['float16']:g}", f"{d.memory_gb:g}", f"{d.memory_usable_gb:g}",
                             f"{d.memory_bandwidth_gb_s:g}",
                             f"{d.power_limit_w:g}", d.interconnect] for d in list_devices()],
                           headers=["key", "name", "fp16 TFLOP/s", "GB", "usable GB", "GB/s", "W", "link"]))
        elif args.command == "models":
            from .sweep_output import format_params
            rows = []
            for n in zoo_names():
                s = load_model(n)
                rows.append([n, s.model_type, format_params(s.param_count()), s.layers, s.hidden, s.heads, s.kv_heads, s.vocab])
            print(tabulate(rows, headers=["model", "type", "params", "layers", "hidden", "heads", "kv heads", "vocab"]))
        elif args.command == "calibrate":
            if args.out:  # fail now, not after the whole calibration
                from .outpath import check_writable
                check_writable(args.out, "profile")
            from .calibrate import calibrate, save_profile
            gen = None if args.generate_types is None else (
                "all" if args.generate_types.strip() == "all"
                else [t.strip() for t in args.generate_types.split(",") if t.strip()])
            profile = calibrate(quick=args.quick, log=lambda m: print(m, file=sys.stderr),
                                generate_types=gen)
            if args.out:
                save_profile(profile, args.out)
                print(f"wrote {args.out}", file=sys.stderr)
            else:
                print(json.dumps(profile, indent=1))
        sys.stdout.flush()   # a full disk or closed pipe shows here, inside the try, not at exit
    except EstimatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OverflowError:  # sizes beyond float range (--batch 10**300): no estimate to give
        print("error: the workload is too large to estimate: its sizes overflow float arithmetic", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: outputs are written atomically, an old file stays whole
        print("error: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:   # stdout on a full disk (> /dev/full), a closed pipe (| head)
        _discard_stdout()
        where = "the output" if exc.filename is None else exc.filename
        print(f"error: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that what is still buffered does not fail again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):   # stdout replaced by an object without a file
        pass


if __name__ == "__main__":
    sys.exit(main())
