"""reports/accuracy.png: estimated vs measured runtime of every recorded row (matplotlib)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .recorded import REPORTS, held_out

BAND = 0.05  # the shaded +-5% band around y = x


def write_accuracy_png(rows: list[dict[str, Any]], path: Path = REPORTS / "accuracy.png") -> Path:
    """Log-log scatter of estimated vs measured runtime, one colour per machine and GPU count
    (held-out rows hollow), the y = x line and a +-5% band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    pts = [r for r in rows if r["error"].get("runtime_ms") is not None]
    groups = sorted({(r["machine"], int(r.get("gpus") or 1)) for r in pts})
    for k, (machine, gpus) in enumerate(groups):
        colour = f"C{k}"
        for design in (True, False):
            sel = [r for r in pts if (r["machine"], int(r.get("gpus") or 1)) == (machine, gpus)
                   and held_out(r) != design]
            if sel:
                ax.scatter([r["measured"]["runtime_ms"] for r in sel], [r["estimated"]["runtime_ms"] for r in sel],
                           s=30, edgecolors=colour, facecolors=colour if design else "none",
                           label=f"{machine}, {gpus} GPU{'s' if gpus > 1 else ''}"
                                 f" ({'design' if design else 'held out'})")
    lo = min(min(r["measured"]["runtime_ms"], r["estimated"]["runtime_ms"]) for r in pts) * 0.8
    hi = max(max(r["measured"]["runtime_ms"], r["estimated"]["runtime_ms"]) for r in pts) * 1.25
    xs = [lo, hi]
    gpus_shown = " / ".join(sorted({str(r.get("device_short") or r.get("device")) for r in pts}))
    ax.plot(xs, xs, "k-", lw=1, label="y = x")
    ax.fill_between(xs, [x * (1 - BAND) for x in xs], [x * (1 + BAND) for x in xs], color="grey", alpha=0.25,
                    label=f"±{BAND * 100:g}%")
    ax.set(xscale="log", yscale="log", xlim=xs, ylim=xs, xlabel="measured runtime (ms)",
           ylabel="estimated runtime (ms)", title=f"Current estimator vs recorded {gpus_shown} runs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
    return path
