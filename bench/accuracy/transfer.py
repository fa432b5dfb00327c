"""Cross-device transfer accuracy: every recorded row of a calibrated device re-estimated from
ANOTHER device's calibration (leave one device out), and the user's reference rows (RTX A5000 /
A6000, never calibrated here) from the closest calibrated device."""
from __future__ import annotations

from typing import Any, Mapping

from estimator import get_device
from estimator.profile import calibrated_devices
from estimator.transfer import closest

from ..compare import METRICS
from . import reference as refmod
from .recorded import evaluate
from .rst import LABELS, grid, pct
from .stats import group_stats


def other_calibrated(row: Mapping[str, Any]) -> str | None:
    """The calibrated device closest to the row's device, the row's own device excluded."""
    own = get_device(str(row["device"]))
    src = closest(own, [d for d in calibrated_devices() if d.key != own.key])
    return src.key if src else None


def leave_one_device_out(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of calibrated devices, each estimated through the transfer from another device."""
    calibrated = {d.key for d in calibrated_devices()}
    mine = [r for r in rows if get_device(str(r["device"])).key in calibrated]
    return evaluate(mine, transfer_from=other_calibrated)


def reference_single_gpu_errors(ref: list[dict[str, Any]]) -> list[float]:
    """|error| of our runtime on the reference table's single-GPU rows (transfer from the
    closest calibrated device), our basis."""
    errs = []
    for r, ours in zip(ref, refmod.our_estimates(ref)):
        if r["gpus"] == 1 and isinstance(ours, dict):
            measured = r["runtime_ms"][0]
            errs.append(abs(ours["runtime_ms"] - measured) / measured)
    return errs


def transfer_lines(rows: list[dict[str, Any]], ref: list[dict[str, Any]]) -> list[str]:
    """The accuracy.rst section: leave-one-device-out table and the reference rows."""
    moved = leave_one_device_out(rows)
    body = []
    for dev in sorted({str(r["device"]) for r in moved}):
        part = [r for r in moved if r["device"] == dev]
        line = group_stats(part, dev)
        body.append([f"{dev} from {other_calibrated(part[0])}", line["rows"],
                     *[f"{pct(line['mean'][m])} / {pct(line['max'][m])}" for m in METRICS]])
    errs = reference_single_gpu_errors(ref)
    ref_line = (f"The user's single-GPU reference rows ({refmod.describe(refmod.single(ref))}; {len(errs)} rows), "
                f"estimated from the closest calibrated device: runtime mean {pct(sum(errs) / len(errs))}, "
                f"max {pct(max(errs))}." if errs else "The reference table has no single-GPU rows.")
    return [
        "Each recorded row of a calibrated device, estimated from the OTHER device's calibration "
        "through the transfer model (``estimator/transfer.py``; ``--transfer-from`` on the command "
        "line): what a user of an uncalibrated GPU can expect. Assumptions: the fraction of a "
        "kernel's source time that its bytes (at the measured copy bandwidth) or FLOPs (at the best "
        "measured GEMM rate) explain scales with the datasheet ratio, the rest with the SM count "
        "ratio within an architecture and with the datasheet ratio across architectures; power "
        "levels scale with the device files' idle power and power limit; links and the host are not "
        "transferred (the host is the source machine's). Mean / max absolute error:", ""] + grid(
        ["Rows", "N", *[LABELS[m] for m in METRICS]], body) + [ref_line, ""]
