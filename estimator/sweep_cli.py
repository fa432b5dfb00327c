"""python -m estimator sweep: the planning questions in one call (see README, "Planning sweeps")."""
from __future__ import annotations

import argparse
import sys

from . import budget
from .api import GENERATION_EXECUTION
from .device import ambiguity_note
from .errors import EstimatorError
from .fit import FIT_GPUS, MAX_BATCH, FitAnswer, fit_answers
from .outpath import check_writable, same_file
from .sweep import (RANGE_HELP, SORT_KEYS, SweepRow, SweepSpec, iter_sweep, parse_ints, parse_names, run_sweep,
                    sort_rows)
from . import sweep_output, sweep_plot
from .workload import PARALLEL_MODES

EPILOG = f"""ranges (--batch, --seq, --gpus, --new-tokens), {RANGE_HELP.split(": ", 1)[0]}:
  {RANGE_HELP.split(": ", 1)[1]}

examples:
  python -m estimator sweep --model Qwen/Qwen3-30B-A3B --device all --fit
  python -m estimator sweep --model facebook/opt-6.7b --device H100 --gpus 2,4,8 --parallel pipeline,tensor --sort runtime
  python -m estimator sweep --model mistralai/Mistral-7B-v0.1 --device L4,A100 --batch 1:256:x2 --plot memory --x batch --png mem.png"""


def add_parser(sub: argparse._SubParsersAction, formatter: type, help: str) -> None:
    """The sweep command's parser, its line in the CLI's --help `help` (__main__.COMMANDS)."""
    sw = sub.add_parser("sweep", help=help,
                        formatter_class=formatter, epilog=EPILOG, description=__doc__)
    sw.add_argument("--model", required=True, help="comma list of zoo names or config.json paths")
    sw.add_argument("--device", required=True, help="comma list of GPU names, or 'all' (every device in the database)")
    sw.add_argument("--dtype", default=None, help="comma list of float16|bfloat16|float32 (default: each model's own, "
                                                  "else float16)")
    sw.add_argument("--batch", default="16", help="batch sizes (range syntax below)")
    sw.add_argument("--seq", default="1024", help="sequence lengths (range syntax below)")
    sw.add_argument("--gpus", default=None, help="GPU counts (range syntax below; default: 1, with --fit "
                                                 f"{','.join(map(str, FIT_GPUS))})")
    sw.add_argument("--parallel", default=None, help=f"comma list of {'|'.join(PARALLEL_MODES)} or 'all', used for "
                                                     "gpus > 1 (default: pipeline, with --fit all)")
    sw.add_argument("--new-tokens", default="0", metavar="N", help="model.generate of N new tokens (one GPU); "
                                                                   "0 = a plain forward (range syntax below)")
    sw.add_argument("--profile", default=None, help="calibration profile JSON (default: each device's shipped one)")
    sw.add_argument("--transfer-from", default=None, metavar="DEVICE",
                    help="estimate through the transfer model from DEVICE's calibration")
    sw.add_argument("--sort", choices=sorted(SORT_KEYS), default=None,
                    help="best first: runtime (lowest), throughput (highest), energy (lowest) (default: grid order)")
    sw.add_argument("--fit", action="store_true",
                    help="answer instead: the fewest GPUs (and the fastest mode there) that fit each model x device "
                         "x dtype x workload, and the largest batch that still fits there")
    fmt = sw.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV instead of the table")
    fmt.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    sw.add_argument("--out", default=None, metavar="FILE", help="write to FILE instead, format from its suffix "
                                                                "(.csv, .json; .txt/.md/.rst: the table)")
    sw.add_argument("--plot", default=None, metavar="METRIC",
                    help=f"also write a PNG of METRIC ({'|'.join(sweep_plot.METRICS)}) against --x, one line per "
                         "combination of the other axes that vary")
    sw.add_argument("--x", default=None, metavar="AXIS", help=f"the plot's x axis ({'|'.join(sweep_plot.AXES)}; "
                                                               "default: the first of batch, seq, gpus, new_tokens "
                                                               "with several values)")
    sw.add_argument("--png", default=None, metavar="FILE", help="where --plot writes its PNG")
    sw.add_argument("--max-cases", type=int, default=budget.MAX_CASES, metavar="N",
                    help="refuse a sweep of more cases (--fit: more estimates) than N before estimating any "
                         "(about 0.4 ms each)")


def spec_from(args: argparse.Namespace) -> SweepSpec:
    gpus = args.gpus or ("1" if not args.fit else ",".join(map(str, FIT_GPUS)))
    return SweepSpec(models=_names(args.model, "--model"), devices=_names(args.device, "--device"),
                     dtypes=_names(args.dtype, "--dtype") if args.dtype else (None,),
                     batches=parse_ints(args.batch, "batch"), seqs=parse_ints(args.seq, "seq"),
                     gpus=parse_ints(gpus, "gpus"),
                     parallels=_names(args.parallel or ("all" if args.fit else "pipeline"), "--parallel"),
                     new_tokens=parse_ints(args.new_tokens, "new tokens", minimum=0),
                     profile=args.profile, transfer_from=args.transfer_from)


def _names(text: str, option: str) -> tuple[str, ...]:
    """The comma list of `option`; EstimatorError when it names nothing (',,,')."""
    names = parse_names(text)
    if not names:
        raise EstimatorError(f"{option} {text!r:.60} names nothing: give a comma list of names")
    return names


def check_outputs(args: argparse.Namespace) -> None:
    """--out and --png checked before any estimate: a known suffix, a writable place, not one file."""
    if args.out:
        sweep_output.format_for(args.out)
        check_writable(args.out, "sweep output")
    if args.png:
        if not args.png.lower().endswith(".png"):
            raise EstimatorError(f"--png {args.png}: the plot is a PNG, name the file *.png")
        check_writable(args.png, "plot")
        if args.out and same_file(args.out, args.png):
            raise EstimatorError(f"--out and --png both name {args.out}: the plot would overwrite the "
                                 f"{'answers' if args.fit else 'sweep'}; give them two files")


def _plot_axis(args: argparse.Namespace, spec: SweepSpec) -> str:
    if args.x:
        return sweep_plot.check_axis(args.x)
    for axis, values in (("batch", spec.batches), ("seq", spec.seqs), ("gpus", spec.gpus),
                         ("new_tokens", spec.new_tokens)):
        if len(values) > 1:
            return axis
    raise EstimatorError("--plot needs --x AXIS: no numeric axis of the sweep has several values")


def cmd_sweep(args: argparse.Namespace) -> None:
    spec = spec_from(args)
    if args.plot is not None:
        if args.fit:
            raise EstimatorError("--plot draws a sweep, not --fit answers: leave one of them out")
        if not args.png:
            raise EstimatorError("--plot needs --png FILE")
        sweep_plot.metric_field(args.plot)
        axis = _plot_axis(args, spec)
        sweep_plot.require_matplotlib()
    check_outputs(args)
    if args.max_cases < 1:
        raise EstimatorError(f"--max-cases must be at least 1, got {args.max_cases}")
    if args.fit:
        budget.check_cases(budget.fit_cases(spec, spec.gpus, MAX_BATCH), args.max_cases, "fit", "estimates at most")
        print(f"fit: {budget.fit_answers_count(spec):,} answers", file=sys.stderr)
        items: list = fit_answers(spec, spec.gpus)
        kind: type = FitAnswer
    else:
        cases = budget.check_cases(budget.sweep_cases(spec), args.max_cases)
        print(f"sweep: {cases:,} case{'s' * (cases != 1)}", file=sys.stderr)
        fmt = sweep_output.format_for(args.out) if args.out else "csv" if args.csv else "json" if args.json else "table"
        if fmt in sweep_output.STREAMED_FORMATS and not args.sort and args.plot is None:
            # row by row, chunk by chunk: a million-case sweep in bounded memory
            rows = iter_sweep(spec)
            if args.out:
                n = sweep_output.write_stream(rows, args.out, fmt)
                print(f"wrote {args.out} ({n} case{'s' * (n != 1)})", file=sys.stderr)
            else:
                sweep_output.stream(rows, sys.stdout, fmt)
            _notes(spec, generation=cases > 0 and any(spec.new_tokens))
            return
        items, kind = run_sweep(spec), SweepRow
        if args.sort:
            items = sort_rows(items, args.sort)
    if args.out:
        sweep_output.write(items, args.out, kind)
        unit = "answer" if args.fit else "case"
        print(f"wrote {args.out} ({len(items)} {unit}{'s' * (len(items) != 1)})", file=sys.stderr)
    else:
        fmt = "csv" if args.csv else "json" if args.json else "table"
        sys.stdout.write(sweep_output.render(items, fmt, kind))
        if fmt == "table" and not args.fit:
            refused = sum(not r.ok for r in items)
            too_big = sum(r.fits is False for r in items)
            print(f"{len(items)} cases: {refused} refused, {too_big} do not fit")
    if args.plot is not None:
        lines = sweep_plot.plot(items, args.plot, axis, args.png)
        print(f"wrote {args.png} ({args.plot} against {axis}, {lines} line{'s' * (lines != 1)})", file=sys.stderr)
    _notes(spec, generation=any(i.new_tokens for i in items))


def _notes(spec: SweepSpec, generation: bool) -> None:
    """The closing notes, last, so that an error above stays the only line on stderr."""
    for name in spec.devices:   # "H100": the rows name the SXM5 part; say that a PCIe one exists
        picked = None if name.lower() == "all" else ambiguity_note(name)
        if picked:
            print(f"note: {picked}", file=sys.stderr)
    if generation:
        print(f"note: {GENERATION_EXECUTION}", file=sys.stderr)
