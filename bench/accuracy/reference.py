"""The user's reference table (reports/reference_table.txt): its parser and the comparisons made
with it. Their error basis is (estimated - measured) / estimated; ours divides by measured."""
from __future__ import annotations

import re
import statistics
from typing import Any, Iterable, Mapping

from estimator import Workload, estimate

from .recorded import REPORTS

REFERENCE_TABLE = REPORTS / "reference_table.txt"
# The runtime mean and maximum absolute error the user quotes for the reference estimator (prose
# that came with the table, not part of it).
QUOTED_RUNTIME_ERROR = (0.079, 0.419)
EXPECTED_ROWS, EXPECTED_SINGLE = 24, 12  # the table's layout: 12 single-GPU and 12 multi-GPU rows
DTYPE = "float16"  # assumed for every row: their speeds imply tensor-core fp16/bf16 matmuls


def _num(text: str) -> float:
    return float(text.strip().rstrip("%"))


def parse_reference(path=REFERENCE_TABLE) -> list[dict[str, Any]]:
    """Rows of reports/reference_table.txt: model, device, gpus, and per metric
    (measured, their estimate, their printed error in %; their basis is (est - meas) / est)."""
    text = path.read_text(encoding="utf-8")
    size = re.search(r"(\d+)\s*\\times\s*(\d+)", text)
    batch, seq = (int(size.group(1)), int(size.group(2))) if size else (16, 1024)
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 8 or "NVIDIA" not in cells[1]:
            continue
        dev = re.match(r"(?:NVIDIA\s+)?(.*?)(?:\s+x\s+(\d+))?$", cells[1])
        rows.append({"model": cells[0].replace("AlCrossSim/", "AICrossSim/"), "label": cells[1],
                     "device": dev.group(1), "gpus": int(dev.group(2) or 1), "batch": batch, "seq": seq,
                     "runtime_ms": tuple(_num(c) for c in cells[2:5]),
                     "memory_gb": tuple(_num(c) for c in cells[5:8])})
    return rows


def single(ref: Iterable[Mapping[str, Any]]) -> list[Any]:
    return [r for r in ref if r["gpus"] == 1]


def multi(ref: Iterable[Mapping[str, Any]]) -> list[Any]:
    return [r for r in ref if r["gpus"] > 1]


def rows_as_expected(ref: list[dict[str, Any]]) -> bool:
    return len(ref) == EXPECTED_ROWS and len(single(ref)) == EXPECTED_SINGLE


def basis_stats(ref: list[dict[str, Any]], metric: str) -> dict[str, tuple[float, float]]:
    """'theirs'/'ours' basis -> (mean, max) |error| of THEIR estimates."""
    theirs = [abs((e - m) / e) for m, e, _ in (r[metric] for r in ref)]
    ours = [abs((e - m) / m) for m, e, _ in (r[metric] for r in ref)]
    return {k: (statistics.fmean(v), max(v)) for k, v in (("theirs", theirs), ("ours", ours)) if v}


def our_estimates(ref: list[dict[str, Any]]) -> list[dict[str, Any] | str]:
    """Our estimator on each row (through the transfer model from the closest calibrated device):
    runtime_ms, memory_gb and the profile used, or the estimator's error message."""
    ours: list[dict[str, Any] | str] = []
    for r in ref:
        try:
            e = estimate(r["model"], r["device"], Workload(r["batch"], r["seq"], DTYPE, r["gpus"], "pipeline"))
            ours.append({"runtime_ms": e.runtime_ms, "memory_gb": e.memory_gb, "profile": e.profile})
        except Exception as exc:  # shown in the row, never fatal
            ours.append(f"{type(exc).__name__}: {exc}")
    return ours


def first_single(ref: list[dict[str, Any]], model_suffix: str) -> dict[str, Any] | None:
    """The first single-GPU row of the model whose name ends with model_suffix."""
    return next((r for r in single(ref) if r["model"].endswith("/" + model_suffix)), None)


def multi_over_single(ref: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    """(multi-GPU row, its measured runtime / the same model's on one GPU of the same kind)."""
    one = {(r["model"], r["device"]): r["runtime_ms"][0] for r in single(ref)}
    return [(r, r["runtime_ms"][0] / one[r["model"], r["device"]])
            for r in multi(ref) if (r["model"], r["device"]) in one]


def printed_error_mismatches(ref: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str, float, float]]:
    """(row, metric, printed error %, recomputed (est - meas) / est %) where they disagree
    by more than the printed rounding."""
    out = []
    for r in ref:
        for metric in ("runtime_ms", "memory_gb"):
            meas, est, printed = r[metric]
            recomputed = (est - meas) / est * 100
            rounding = 100 * 0.01 / est + 0.01  # values printed to 0.01, errors to 0.01 pp
            if abs(recomputed - printed) > rounding:
                out.append((r, metric, printed, recomputed))
    return out


def describe(ref: list[dict[str, Any]]) -> str:
    """'RTX A5000 / A6000, 1 and 8 GPUs, 16 x 1024': the devices, GPU counts and workload."""
    devices = list(dict.fromkeys(r["device"] for r in ref))
    first = devices[0].split()
    shown = [devices[0]] + [" ".join(d.split()[len(_common_prefix(first, d.split())):]) for d in devices[1:]]
    gpus = [str(g) for g in sorted({r["gpus"] for r in ref})]
    sizes = list(dict.fromkeys(f"{r['batch']} x {r['seq']}" for r in ref))
    return f"{' / '.join(shown)}, {' and '.join(gpus)} GPUs, {' / '.join(sizes)}"


def _common_prefix(a: list[str], b: list[str]) -> list[str]:
    out = []
    for x, y in zip(a, b):
        if x != y:
            break
        out.append(x)
    return out
