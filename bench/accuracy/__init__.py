"""Accuracy of the CURRENT estimator against the recorded GPU measurements.

Data for the CI gate (tests/test_accuracy_gate.py) and the generated reports; no pytest import,
matplotlib only for the PNG.

    gate       GATE_BOUNDS, known misses (reports/known_misses.json), allowed_error, record_misses
    recorded   the measured rows (reports/measured/), row ids, design / held-out split, re-estimates
    stats      mean / max error per group, gate counts, calibration repeatability
    reference  the user's reference table (reports/reference_table.txt) and its comparisons
    rst        percentages, grid tables and sections of the RST reports
    reports    accuracy.rst, seed_reference.rst, benchmark_h100.rst
    plot       accuracy.png
    ranges     the 10-90 % ranges of estimator/ranges.json, their coverage (``python -m bench.accuracy ranges``)
    __main__   ``python -m bench.accuracy [--record-misses | --reset-misses]`` rewrites them all
"""
from .gate import GATE_BOUNDS  # noqa: F401  (named in reports/known_misses.json)
