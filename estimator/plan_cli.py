"""python -m estimator plan: what should I rent? The cheapest device x GPU layout x dtype x batch
that serves a model at TTFT / TPOT / throughput targets, and why the others fail (estimator/planner.py
says what is searched and how)."""
from __future__ import annotations

import argparse
import math
import sys

from .errors import EstimatorError
from .outpath import check_writable
from . import planner, plan_output, plan_plot
from .sweep import parse_ints, parse_names

EPILOG = """layouts: every GPU count (--gpus) split into replicas x stages: one replica is model.generate on
  1 GPU or a pipeline over `stages` GPUs; data parallel = independent replicas (throughput x replicas).
batch: requests in flight per replica (static batching: TTFT is the prefill of the whole batch),
  from ceil(concurrency / replicas) doubling while it fits and meets TTFT / TPOT.
cost: $/GPU-hour x GPUs / (3600 x generated tokens/s) x 1e6, per million generated tokens.

examples:
  python -m estimator plan --model meta-llama/Llama-3.1-70B --input-tokens 2000 --output-tokens 500 \\
      --ttft-ms 1000 --tpot-ms 50
  python -m estimator plan --model meta-llama/Llama-3.1-8B,mistralai/Mistral-7B-v0.1 --input-tokens 1000 \\
      --output-tokens 200 --tpot-ms 40 --min-throughput 5000 --devices L4,L40S,H100 --prices my-prices.csv"""


def add_parser(sub: argparse._SubParsersAction, formatter: type, help: str) -> None:
    """The plan command's parser, its line in the CLI's --help `help` (__main__.COMMANDS)."""
    pl = sub.add_parser("plan", help=help,
                        formatter_class=formatter, epilog=EPILOG, description=__doc__)
    pl.add_argument("--model", required=True, help="comma list of zoo names or config.json paths")
    pl.add_argument("--input-tokens", required=True, type=int, metavar="N", help="prompt tokens per request")
    pl.add_argument("--output-tokens", required=True, type=int, metavar="N", help="generated tokens per request")
    pl.add_argument("--ttft-ms", type=float, default=None, help="time to first token at most this (default: none)")
    pl.add_argument("--tpot-ms", type=float, default=None, help="time per output token at most this (default: none)")
    pl.add_argument("--min-throughput", type=float, default=None, metavar="TOKENS_PER_S",
                    help="generated tokens per second over all replicas at least this (default: none)")
    pl.add_argument("--concurrency", type=int, default=1, metavar="N",
                    help="requests the deployment holds at once, at least (replicas x batch >= N)")
    pl.add_argument("--devices", default=None, help="comma list of GPU names (default: every device in the database)")
    pl.add_argument("--gpus", default=",".join(map(str, planner.PLAN_GPUS)), help="GPU counts per deployment")
    pl.add_argument("--dtype", default=None,
                    help="comma list of float16|bfloat16|float32 (default: the model's own, bfloat16, float16)")
    pl.add_argument("--prices", default=None, metavar="FILE",
                    help="prices per GPU-hour, .json ({device: dollars}) or .csv (device,usd_per_gpu_hour), used "
                         "instead of the shipped estimator/prices.json; every device searched needs one")
    pl.add_argument("--max-batch", type=int, default=planner.MAX_BATCH, help="largest batch per replica searched")
    pl.add_argument("--top", type=int, default=10, help="rows of the cheapest and of the closest misses shown")
    pl.add_argument("--profile", default=None, help="calibration profile JSON (default: each device's shipped one)")
    formats = pl.add_mutually_exclusive_group()
    for flag, what in (("--csv", "CSV, one row per layout searched,"), ("--json", "one JSON object")):
        formats.add_argument(flag, action="store_true", help=f"print {what} instead of the text")
    pl.add_argument("--out", default=None, metavar="FILE", help="write to FILE instead, format from its suffix "
                                                                "(.csv, .json; .txt/.md: the text)")
    pl.add_argument("--png", default=None, metavar="FILE",
                    help="also write a PNG of cost per million tokens against --plot-x, Pareto front marked "
                         "(needs matplotlib)")
    pl.add_argument("--plot-x", default="tpot", choices=sorted(plan_plot.AXES), help="the PNG's x axis")


def _check_number(value: float | None, option: str) -> None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise EstimatorError(f"{option} must be a positive finite number, got {value:g}")


def cmd_plan(args: argparse.Namespace) -> None:
    for value, option in ((args.ttft_ms, "--ttft-ms"), (args.tpot_ms, "--tpot-ms"),
                          (args.min_throughput, "--min-throughput")):
        _check_number(value, option)
    for value, option in ((args.input_tokens, "--input-tokens"), (args.output_tokens, "--output-tokens"),
                          (args.concurrency, "--concurrency"), (args.max_batch, "--max-batch"), (args.top, "--top")):
        if value < 1:
            raise EstimatorError(f"{option} must be a positive integer, got {value}")
    models = parse_names(args.model)
    devices = parse_names(args.devices) if args.devices is not None else None
    if devices == ():
        raise EstimatorError("--devices names no device")
    if args.out:   # fail before the search, not after it
        plan_output.format_for(args.out)
        check_writable(args.out, "plan output")
    if args.png:
        plan_plot.pyplot()
        check_writable(args.png, "plot")
    result = planner.plan(models, args.input_tokens, args.output_tokens, ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms,
                          min_throughput_tokens_per_s=args.min_throughput, concurrency=args.concurrency,
                          devices=devices, gpu_counts=parse_ints(args.gpus, "gpus"),
                          dtypes=parse_names(args.dtype) if args.dtype else None, prices=args.prices,
                          max_batch=args.max_batch, profile=args.profile)
    if args.out:
        plan_output.write(result, args.out, args.top)
        print(f"wrote {args.out} ({len(result.candidates)} layouts, {len(result.meeting())} meet the targets)",
              file=sys.stderr)
    else:
        fmt = "csv" if args.csv else "json" if args.json else "table"
        sys.stdout.write(plan_output.render(result, fmt, args.top))
    if args.png:
        front = plan_plot.plot(result, args.png, args.plot_x)
        print(f"wrote {args.png} (cost against {args.plot_x}, {front} on the Pareto front)", file=sys.stderr)
