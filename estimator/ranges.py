"""10th-90th percentile ranges of an estimate's figures.

Each range is the estimate times the 10th and 90th percentiles of measured / estimated over the
recorded GPU measurements of the estimate's REGIME, widened to the estimate itself where both
percentiles lie on one side of 1 (low <= estimate <= high always). The regime: what bounds it
(``gpu`` | ``host``, ``Estimate.bound``), where its kernel times come from (``calibrated``: the device's own profile;
``transferred``: another device's calibration through ``transfer.py``) and where its host times
come from (``run``: measured on the machine during the run, a profile given its host by
``Profile.with_host``; ``shipped``: the profile's own). The percentiles live in ``ranges.json``
next to this module, written with its source by ``python -m bench.accuracy.ranges`` and never
adjusted per row. A regime with fewer than ``min_rows`` rows for a metric falls back to a coarser
one (host source dropped, then the calibration), and TTFT / TPOT, recorded on few rows, fall back
to the runtime of the same regime (``metric_fallback``); the estimate's notes say so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from .errors import EstimatorError

RANGES_FILE = Path(__file__).with_name("ranges.json")
RANGE_METRICS = ("runtime_ms", "ttft_ms", "tpot_ms", "energy_j_per_token", "memory_gb")
BOUNDS = ("gpu", "host")
CALIBRATIONS = ("calibrated", "transferred")
HOSTS = ("run", "shipped")
ANY = "any"
PERCENTILES = (10, 90)


def range_field(metric: str) -> str:
    """'runtime_ms' -> 'runtime_ms_range', the Estimate field holding [low, high]."""
    return f"{metric}_range"


def regime(bound: str, profile: Any) -> str:
    """'gpu/calibrated/shipped': the regime key of an estimate made with `profile`."""
    calibration = "transferred" if getattr(profile, "transfer", None) is not None else "calibrated"
    return f"{bound}/{calibration}/{getattr(profile, 'host_source', 'shipped')}"


def coarser(key: str) -> list[str]:
    """The key, then with the host source dropped, then with the calibration dropped."""
    bound, calibration, _ = key.split("/")
    return [key, f"{bound}/{calibration}/{ANY}", f"{bound}/{ANY}/{ANY}"]


@dataclass(frozen=True)
class Quantiles:
    low: float     # 10th percentile of measured / estimated
    high: float    # 90th percentile
    rows: int      # how many distinct recorded rows they were computed from

    @property
    def around_one(self) -> tuple[float, float]:
        """(low, high) widened to include 1 (measured == estimated): the factors a range applies,
        so that an estimate always lies inside its own range."""
        return min(self.low, 1.0), max(self.high, 1.0)


@dataclass(frozen=True)
class RangeTable:
    """The contents of ranges.json (see ``bench/accuracy/ranges.py`` for how it is written)."""
    regimes: Mapping[str, Mapping[str, Quantiles]]
    min_rows: int
    metric_fallback: Mapping[str, str]
    date: str
    source: Mapping[str, Any]

    def lookup(self, key: str, metric: str) -> tuple[Quantiles, str, str] | None:
        """(quantiles, regime used, metric used): the finest regime with at least min_rows rows
        of the metric, else of its fallback metric; None when there is none."""
        for m in (metric, self.metric_fallback.get(metric)):
            for k in coarser(key) if m else ():
                q = self.regimes.get(k, {}).get(m)
                if q is not None and q.rows >= self.min_rows:
                    return q, k, m
        return None


def _bad(path: Path, what: str) -> EstimatorError:
    return EstimatorError(f"bad ranges file {path}: {what}")


def parse_ranges(doc: Mapping[str, Any], path: Path = RANGES_FILE) -> RangeTable:
    """A RangeTable from the JSON document; EstimatorError naming the first problem."""
    for key in ("regimes", "min_rows", "date", "source"):
        if key not in doc:
            raise _bad(path, f"no {key!r}")
    regimes: dict[str, dict[str, Quantiles]] = {}
    for key, per_metric in doc["regimes"].items():
        parts = key.split("/")
        if len(parts) != 3 or parts[0] not in BOUNDS or parts[1] not in CALIBRATIONS + (ANY,) \
                or parts[2] not in HOSTS + (ANY,):
            raise _bad(path, f"regime {key!r} is not bound/calibration/host")
        regimes[key] = {}
        for metric, q in per_metric.items():
            if metric not in RANGE_METRICS:
                raise _bad(path, f"{key}: unknown metric {metric!r}")
            low, high, rows = q.get("low"), q.get("high"), q.get("rows")
            if not all(isinstance(v, (int, float)) for v in (low, high, rows)) or not 0 < low <= high \
                    or rows < 1:
                raise _bad(path, f"{key} {metric}: needs 0 < low <= high and rows >= 1, got {q}")
            regimes[key][metric] = Quantiles(float(low), float(high), int(rows))
    fallback = dict(doc.get("metric_fallback") or {})
    return RangeTable(regimes, int(doc["min_rows"]), fallback, str(doc["date"]), doc["source"])


@lru_cache(maxsize=4)
def load_ranges(path: Path = RANGES_FILE) -> RangeTable | None:
    """The shipped ranges (None when the file is absent: estimates then carry no ranges)."""
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, str(exc).splitlines()[0]) from None
    return parse_ranges(doc, path)


def containing(value: float, q: Quantiles) -> list[float]:
    """[low, high] = value x the percentiles, widened to the value itself where the recorded
    percentiles both lie above (or below) 1: an estimate always lies inside its own range."""
    low, high = q.around_one
    return [value * low, value * high]


def ranges_for(values: Mapping[str, float | None], key: str,
               table: RangeTable | None = None) -> tuple[dict[str, list[float] | None], list[str]]:
    """({metric_range: [low, high] or None}, notes) for an estimate's values in regime `key`."""
    table = load_ranges() if table is None else table
    out: dict[str, list[float] | None] = {}
    moved: list[str] = []
    for metric, value in values.items():
        found = table.lookup(key, metric) if table is not None and value is not None else None
        if found is None:
            out[range_field(metric)] = None
            continue
        q, used_key, used_metric = found
        out[range_field(metric)] = containing(value, q)
        if (used_key, used_metric) != (key, metric):
            via = f"{used_key} {used_metric}" if used_metric != metric else used_key
            moved.append(f"{metric} from {via} ({q.rows} rows)")
    notes = [f"10-90 % ranges: regime {key} has too few recorded rows for some figures; "
             + "; ".join(moved)] if moved else []
    return out, notes


# How far each host-time fallback (host_model.SOURCES / GENERATE_SOURCES) has been measured to
# miss on average (mean |error|): its range widens by this fraction on both sides, on the figures
# host time decides (runtime and energy of a host-bound pass, TTFT, TPOT), on top of the regime's
# own spread. Measured on the shipped H200 profile (2026-12-03; tests/test_host_model.py computes
# them again): "op-model": each timed family left out in turn, its 12-layer tiny model's host time
# predicted to 6 % on average (max 15 %); "scaled": the Llama family's time scaled by kernel counts
# missed the other families by 13 % on average (max 28 %); "forward" and "fallback" (generate's
# per-step work not timed for the family, or not at all): decode steps of 12 real-size models
# missed by 18 % on average (max 35 %, reports/probes/h200-2026-12-03); "none" (no host time:
# zero): host-bound passes run 2-10x longer than such an estimate.
FALLBACK_MISS = {"op-model": 0.06, "scaled": 0.13, "forward": 0.18, "fallback": 0.18, "none": 9.0}
HOST_METRICS = ("ttft_ms", "tpot_ms")                    # always widened by a host fallback
HOST_BOUND_METRICS = ("runtime_ms", "energy_j_per_token")  # widened when the host bounds the pass


def widen_for_host(est: Any) -> None:
    """Widen `est`'s host-decided ranges by what its host-time fallback misses by (in place)."""
    miss = FALLBACK_MISS.get(getattr(est, "host_source", "measured"))
    if not miss:
        return
    metrics = HOST_METRICS + (HOST_BOUND_METRICS if est.bound == "host" or est.tpot_ms is not None else ())
    for metric in metrics:
        rng = getattr(est, range_field(metric), None)
        if rng:
            setattr(est, range_field(metric), [rng[0] / (1.0 + miss), rng[1] * (1.0 + miss)])


def attach(est: Any, profile: Any, table: RangeTable | None = None) -> Any:
    """`est` (an api.Estimate) with its *_range fields set from its regime (widened where its
    host time rests on a fallback), notes added; a CPU profile's estimate gets none (the ranges
    were measured on GPUs)."""
    if getattr(profile, "kind", "gpu") != "gpu":
        return est
    values = {m: getattr(est, m) for m in RANGE_METRICS}
    found, notes = ranges_for(values, regime(est.bound, profile), table)
    for name, value in found.items():
        setattr(est, name, value)
    widen_for_host(est)
    est.notes.extend(notes)
    return est


def attach_many(ests: list[Any], profile: Any, table: RangeTable | None = None,
                values: Mapping[str, Any] | None = None) -> list[Any]:
    """attach of each of `ests` (of one profile and host source), made once per bound over arrays
    of their figures (`values`: metric -> array over ests, or None for a figure they lack; read
    from ests when not given): the same rule, the same floats."""
    if getattr(profile, "kind", "gpu") != "gpu" or not ests:
        return ests
    import numpy as np
    from types import SimpleNamespace
    if values is None:
        values = {m: None if getattr(ests[0], m) is None else np.array([getattr(e, m) for e in ests])
                  for m in RANGE_METRICS}
    bounds = np.array([est.bound == "host" for est in ests])
    for bound, mask in (("host", bounds), ("gpu", ~bounds)):
        if not mask.any():
            continue
        some = [est for est, m in zip(ests, mask.tolist()) if m]
        together = SimpleNamespace(bound=bound, host_source=some[0].host_source, notes=[],
                                   **{m: None if v is None else v[mask] for m, v in values.items()},
                                   **{range_field(m): None for m in RANGE_METRICS})
        attach(together, profile, table)
        for m in RANGE_METRICS:
            rng = getattr(together, range_field(m))
            if rng is not None:
                field = range_field(m)
                for est, low, high in zip(some, rng[0].tolist(), rng[1].tolist()):
                    setattr(est, field, [low, high])
        if together.notes:
            for est in some:
                est.notes.extend(together.notes)
    return ests


# -- text for the CLI ---------------------------------------------------------------------------

CLI_LABELS = {"runtime": ("runtime_ms", "{:.2f}"), "memory per GPU": ("memory_gb", "{:.2f}"),
              "energy": ("energy_j_per_token", "{:.4g}"), "time to first token": ("ttft_ms", "{:.2f}"),
              "time per output token": ("tpot_ms", "{:.2f}")}


def range_text(value: list[float] | None, fmt: str) -> str:
    """' (10-90 %: 11.80-13.10)', or '' without a range."""
    return f" (10-90 %: {fmt.format(value[0])}-{fmt.format(value[1])})" if value else ""


def annotate_rows(rows: list[list[str]], est: Any) -> list[list[str]]:
    """The CLI's summary rows with each predicted figure's range after its value."""
    out = []
    for row in rows:
        metric, fmt = CLI_LABELS.get(row[0], (None, ""))
        rng = getattr(est, range_field(metric), None) if metric else None
        text = range_text(rng, fmt)
        if metric == "memory_gb" and text and len(est.memory_gb_per_gpu) > 1:
            text = text.replace(" (10-90 %", " (busiest GPU, 10-90 %")
        out.append([row[0], row[1] + text, *row[2:]])
    return out
