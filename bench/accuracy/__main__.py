"""``python -m bench.accuracy [--record-misses | --reset-misses]``: re-estimate every recorded
row and rewrite reports/accuracy.rst, accuracy.png, seed_reference.rst and benchmark_h100.rst
(with --record-misses / --reset-misses, reports/known_misses.json first).
``python -m bench.accuracy ranges``: rewrite estimator/ranges.json (bench/accuracy/ranges.py)."""
from __future__ import annotations

import sys

from ..compare import METRICS
from .gate import GATE_BOUNDS, KNOWN_MISSES_FILE, record_misses
from .plot import write_accuracy_png
from .recorded import ROOT, evaluate, load_recorded
from .reference import parse_reference
from .reports import write_accuracy_rst, write_benchmark_rst, write_seed_reference
from .rst import pct
from .stats import gate_counts, summarize


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ranges"]:
        from .ranges import main as ranges_main
        return ranges_main(argv[1:])
    rows = evaluate(load_recorded())
    if "--record-misses" in argv or "--reset-misses" in argv:
        misses = record_misses(rows, reset="--reset-misses" in argv)
        print(f"wrote {KNOWN_MISSES_FILE.relative_to(ROOT)}: {sum(len(v) for v in misses.values())} known misses")
    ref = parse_reference()
    for path in (write_accuracy_rst(rows, ref), write_accuracy_png(rows), write_seed_reference(ref),
                 write_benchmark_rst(rows)):
        print(f"wrote {path.relative_to(ROOT)}")
    for m, (inside, outside) in gate_counts(rows).items():
        print(f"{m}: {inside} pass, {outside} fail (bound {pct(GATE_BOUNDS[m])})")
    for line in summarize(rows)[-3:]:
        print(line["group"], {m: (pct(line["mean"][m]), pct(line["max"][m])) for m in METRICS})


if __name__ == "__main__":
    main()
