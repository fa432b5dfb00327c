"""A PNG of one sweep metric against one axis, one line per combination of the other axes that
vary. matplotlib is optional (the ``reports`` extra): without it, one clear EstimatorError."""
from __future__ import annotations

import io
from typing import Sequence

from .errors import EstimatorError
from .outpath import check_writable, write_output
from .sweep import SweepRow

AXES = ("model", "device", "dtype", "batch", "seq", "gpus", "parallel", "new_tokens")
NUMERIC_AXES = ("batch", "seq", "gpus", "new_tokens")
METRICS = {"runtime": "runtime_ms", "memory": "memory_gb", "energy": "energy_j_per_token",
           "throughput": "throughput_tokens_per_s", "ttft": "ttft_ms", "tpot": "tpot_ms"}
LABELS = {"runtime_ms": "runtime (ms)", "memory_gb": "peak memory per GPU (GB)",
          "energy_j_per_token": "energy (J/token)", "throughput_tokens_per_s": "throughput (tokens/s)",
          "ttft_ms": "time to first token (ms)", "tpot_ms": "time per output token (ms)"}


def _known(what: str, value: str, names: tuple[str, ...] | dict, allowed) -> str:
    if value not in allowed:
        raise EstimatorError(f"unknown plot {what} {value!r}: use one of {', '.join(names)}")
    return value


def metric_field(metric: str) -> str:
    """'runtime' or 'runtime_ms' -> the SweepRow field; EstimatorError for anything else."""
    return _known("metric", METRICS.get(metric, metric), METRICS, LABELS)


def check_axis(axis: str) -> str:
    """`axis` when it is a SweepRow workload field; EstimatorError for anything else."""
    return _known("axis", axis, AXES, AXES)


def require_matplotlib() -> None:
    """EstimatorError (one line) now, before any sweep runs, when matplotlib is missing."""
    _pyplot()


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise EstimatorError("--plot needs matplotlib, which is not installed: pip install matplotlib "
                             "(or the [reports] extra)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "x", "P", "*")


def series_style(index: int) -> dict:
    """The line style and marker of the index-th series: no two of the first 32 alike, so a
    series lying exactly on another one (an L4 and an A100 at the same memory) stays visible."""
    return {"linestyle": LINESTYLES[index % len(LINESTYLES)],
            "marker": MARKERS[(index + index // len(MARKERS)) % len(MARKERS)],
            "markersize": max(3.0, 8.0 - index % 4), "fillstyle": "none" if index % 2 else "full"}


def capacity_labels(rows: Sequence[SweepRow]) -> dict[float, str]:
    """{usable GB: 'L4: usable 23.7 GB'}: each capacity line names the device(s) held to it."""
    names: dict[float, list[str]] = {}
    for r in rows:
        names.setdefault(r.memory_usable_gb, [])
        if r.device not in names[r.memory_usable_gb]:
            names[r.memory_usable_gb].append(r.device)
    return {gb: f"{', '.join(devs)}: usable {gb:g} GB" for gb, devs in sorted(names.items())}


def figure(rows: Sequence[SweepRow], metric: str, axis: str):
    """(the matplotlib figure of `metric` against `axis`, its number of series: one per
    combination of the other axes that vary); EstimatorError when no row has the metric."""
    field, axis = metric_field(metric), check_axis(axis)
    plt = _pyplot()
    usable = [r for r in rows if r.ok and getattr(r, field) is not None]
    if not usable:
        raise EstimatorError(f"nothing to plot: no case of the sweep has {field}")
    others = [a for a in AXES if a != axis and len({getattr(r, a) for r in usable}) > 1]
    lines: dict[tuple, list[SweepRow]] = {}
    for r in usable:
        lines.setdefault(tuple(getattr(r, a) for a in others), []).append(r)
    categories = list(dict.fromkeys(getattr(r, axis) for r in usable))
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (key, members) in enumerate(lines.items()):
        members.sort(key=lambda r: getattr(r, axis) if axis in NUMERIC_AXES else categories.index(getattr(r, axis)))
        xs = [getattr(r, axis) if axis in NUMERIC_AXES else categories.index(getattr(r, axis)) for r in members]
        label = ", ".join(f"{a}={v}" for a, v in zip(others, key)) or None
        ax.plot(xs, [getattr(r, field) for r in members], label=label, **series_style(i))
    if field == "memory_gb":   # the capacity each device's rows are held to
        for capacity, text in capacity_labels(usable).items():
            ax.axhline(capacity, color="grey", linestyle="--", linewidth=0.8)
            ax.annotate(text, (0.01, capacity), xycoords=("axes fraction", "data"),
                        fontsize="x-small", color="grey", va="bottom")
    if axis in NUMERIC_AXES:
        values = [getattr(r, axis) for r in usable]
        if min(values) > 0 and max(values) >= 16 * min(values):
            ax.set_xscale("log", base=2)
    else:
        ax.set_xticks(range(len(categories)), [str(c) for c in categories], rotation=20, ha="right")
    ax.set_xlabel(axis)
    ax.set_ylabel(LABELS[field])
    ax.grid(True, alpha=0.3)
    if len(lines) > 1:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig, len(lines)


def plot(rows: Sequence[SweepRow], metric: str, axis: str, path: str) -> int:
    """Write the PNG; returns the number of lines drawn. Refused rows and rows without the metric
    are left out; raises EstimatorError when nothing is left to draw."""
    metric_field(metric), check_axis(axis)
    plt = _pyplot()
    out = check_writable(path, "plot")
    fig, count = figure(rows, metric, axis)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    write_output(out, png.getvalue(), "plot")   # atomic: an old PNG stays whole if this fails
    return count
