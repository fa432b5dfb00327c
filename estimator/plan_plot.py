"""A PNG of a plan: cost per million generated tokens against TPOT (or TTFT), one point per batch
estimated, the Pareto front (no other point both cheaper and faster) of those that meet the
targets marked. matplotlib is optional (the ``reports`` extra): without it, one EstimatorError."""
from __future__ import annotations

from typing import Sequence

from .errors import EstimatorError
from .outpath import check_writable
from .planner import Plan, PlanCandidate

AXES = {"tpot": ("tpot_ms", "time per output token (ms)"), "ttft": ("ttft_ms", "time to first token (ms)")}


def check_axis(axis: str) -> str:
    if axis not in AXES:
        raise EstimatorError(f"unknown plot axis {axis!r}: use one of {', '.join(AXES)}")
    return axis


def pyplot():
    """matplotlib.pyplot on the Agg backend; EstimatorError (one line) when it cannot be imported."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise EstimatorError(f"--png needs matplotlib, which cannot be imported ({exc.name or exc}): "
                             "pip install matplotlib (or the [reports] extra)") from None
    return plt


def pareto(points: Sequence[PlanCandidate], field: str) -> list[PlanCandidate]:
    """The points no other point beats on both cost and `field` (lower is better), by `field`."""
    front: list[PlanCandidate] = []
    for p in sorted(points, key=lambda p: (getattr(p, field), p.usd_per_million_tokens)):
        if not front or p.usd_per_million_tokens < front[-1].usd_per_million_tokens:
            front.append(p)
    return front


def plot(plan: Plan, path: str, axis: str = "tpot") -> int:
    """Write the PNG; returns the number of points on the Pareto front (0: none meets the targets,
    then the front of every point that fits is drawn instead, dashed)."""
    field, label = AXES[check_axis(axis)]
    plt = pyplot()
    out = check_writable(path, "plot")
    drawn = [p for p in plan.points if p.usd_per_million_tokens is not None and getattr(p, field) is not None]
    if not drawn:
        raise EstimatorError("nothing to plot: no layout of the plan was estimated")
    meets = [p for p in drawn if p.meets]
    fits = [p for p in drawn if "does_not_fit" not in p.reasons]
    front = pareto(meets or fits, field)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for group, style in ((drawn, dict(color="lightgrey", label="misses a target")),
                         (meets, dict(color="tab:blue", label="meets the targets"))):
        if group:
            ax.scatter([getattr(p, field) for p in group], [p.usd_per_million_tokens for p in group], s=18, **style)
    if front:
        ax.plot([getattr(p, field) for p in front], [p.usd_per_million_tokens for p in front], color="tab:red",
                marker="o", linestyle="-" if meets else "--",
                label="Pareto front" + ("" if meets else " (of those that fit; none meets the targets)"))
        for p in front:
            ax.annotate(f"{p.device}, {p.layout}, b{p.batch}", (getattr(p, field), p.usd_per_million_tokens),
                        fontsize="x-small", xytext=(4, 4), textcoords="offset points")
    limit = plan.targets.tpot_ms if field == "tpot_ms" else plan.targets.ttft_ms
    if limit:
        ax.axvline(limit, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("$ per million generated tokens")
    ax.set_title(", ".join(dict.fromkeys(p.model for p in drawn)), fontsize="small")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return len(front) if meets else 0
