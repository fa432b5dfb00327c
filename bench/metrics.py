"""The bench metrics, in one ordered registry: what a row measures and the estimator predicts,
how the reports print it, the bench option bounding its error and the CI gate's bound.

Everything else is derived from here: the ``--bound-<option>`` options and BenchConfig.bounds
(bench/options.py), compare.METRICS / GENERATION_METRICS, the columns of the RST report
(bench/report.py) and the accuracy reports' tables and gate (bench/accuracy/). A new metric is
one ``register(Metric(...))`` plus measuring it (bench/measure.py) and estimating it (estimator/).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .formats import fmt_fixed2, fmt_int, fmt_sig3

FORWARD, GENERATE = "forward", "generate"


@dataclass(frozen=True)
class Metric:
    """One metric. ``kind``: "forward" metrics belong to every row (the forward table, the
    bounds of BenchConfig.bounds); "generate" ones only to generation rows (kind "generate")."""

    key: str                      # key in a row's measured / estimated dicts, unit in the name
    label: str                    # short name: "Runtime" (accuracy tables, report header)
    unit: str                     # "ms": the report header is "Runtime (ms)"
    fmt: Callable[[Any], str]     # report cell of a measured / estimated value
    default_bound: float | None   # default of its bench option (None: no option)
    gate_bound: float | None      # largest |error| the CI accuracy gate accepts (None: not gated)
    option: str | None            # bench option --bound-<option>; metrics may share one
    kind: str = FORWARD
    bound_of: str = ""            # option help: "allowed |relative error| of <bound_of>"
    generation_column: int | None = None  # place in the generation table; a forward metric is
                                          # shown there only when set, a generate one always

    @property
    def header(self) -> str:
        return f"{self.label} ({self.unit})"

    @property
    def in_generation_table(self) -> bool:
        return self.kind == GENERATE or self.generation_column is not None


_REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add a metric (after the others); its key must be new, a shared option must agree on the
    default bound. Register before pytest reads the options (plugin load) for a --bound option."""
    if metric.key in _REGISTRY:
        raise ValueError(f"metric {metric.key!r} is already registered")
    if metric.kind not in (FORWARD, GENERATE):
        raise ValueError(f"metric {metric.key!r}: kind must be {FORWARD!r} or {GENERATE!r}")
    owner = next((m for m in _REGISTRY.values() if metric.option and m.option == metric.option), None)
    if owner is not None and owner.default_bound != metric.default_bound:
        raise ValueError(f"metric {metric.key!r}: option {metric.option!r} has default {owner.default_bound}")
    _REGISTRY[metric.key] = metric
    return metric


def unregister(key: str) -> Metric:
    """Remove a metric (tests that register a throwaway one)."""
    return _REGISTRY.pop(key)


def get(key: str) -> Metric:
    return _REGISTRY[key]


def all_metrics() -> tuple[Metric, ...]:
    return tuple(_REGISTRY.values())


def forward() -> tuple[Metric, ...]:
    """Metrics of every row, in registry order."""
    return tuple(m for m in _REGISTRY.values() if m.kind == FORWARD)


def generate_only() -> tuple[Metric, ...]:
    """Metrics that only generation rows have."""
    return tuple(m for m in _REGISTRY.values() if m.kind == GENERATE)


def generation_table() -> tuple[Metric, ...]:
    """The columns of the generation table, by generation_column (unplaced ones last)."""
    shown = [m for m in _REGISTRY.values() if m.in_generation_table]
    return tuple(sorted(shown, key=lambda m: (m.generation_column is None, m.generation_column or 0)))


def gated() -> tuple[Metric, ...]:
    """Metrics the CI accuracy gate and the accuracy reports cover: those with a gate bound."""
    return tuple(m for m in _REGISTRY.values() if m.gate_bound is not None)


def option_owners() -> tuple[Metric, ...]:
    """One metric per bench bound option (the first registered with it): its default and help."""
    owners: dict[str, Metric] = {}
    for m in _REGISTRY.values():
        if m.option and m.default_bound is not None:
            owners.setdefault(m.option, m)
    return tuple(owners.values())


def keys(metrics: tuple[Metric, ...]) -> tuple[str, ...]:
    return tuple(m.key for m in metrics)


for _metric in (
    Metric("runtime_ms", "Runtime", "ms", fmt_fixed2, 0.10, 0.05, "runtime", bound_of="runtime"),
    Metric("memory_gb", "Memory", "GB", fmt_fixed2, 0.05, 0.01, "memory", bound_of="memory",
           generation_column=2),
    Metric("energy_j_per_token", "Energy", "J/token", fmt_sig3, 0.15, 0.10, "energy",
           bound_of="energy per token"),
    Metric("throughput_tokens_per_s", "Throughput", "token/s", fmt_int, 0.10, 0.05, "throughput",
           bound_of="throughput"),
    Metric("ttft_ms", "TTFT", "ms", fmt_fixed2, 0.05, 0.05, "ttft", GENERATE,
           bound_of="time to first token (generation)", generation_column=0),
    Metric("tpot_ms", "TPOT", "ms", fmt_fixed2, 0.10, 0.10, "tpot", GENERATE,
           bound_of="time per output token (generation)", generation_column=1),
    Metric("generate_energy_j_per_token", "Energy", "J/generated token", fmt_sig3, 0.15, None, "energy",
           GENERATE, generation_column=3),
):
    register(_metric)
