"""The generation table of the RST report: rows of bench/test_generate.py (``kind: generate``)
in the forward table's layout, with TTFT, TPOT, memory and energy per generated token."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from .compare import relative_error

GENERATE_KIND = "generate"


def is_generation(row: Mapping[str, Any]) -> bool:
    return row.get("kind") == GENERATE_KIND


def generation_columns(fmt_fixed2, fmt_sig3) -> tuple[tuple[str, str, Any], ...]:
    """(metric key, header, formatter): the columns of the generation table."""
    return (("ttft_ms", "TTFT (ms)", fmt_fixed2), ("tpot_ms", "TPOT (ms)", fmt_fixed2),
            ("memory_gb", "Memory (GB)", fmt_fixed2),
            ("generate_energy_j_per_token", "Energy (J/generated token)", fmt_sig3))


def generation_errors(row: Mapping[str, Any], columns: Iterable[tuple[str, str, Any]]) -> dict[str, float | None]:
    measured, estimated = row.get("measured") or {}, row.get("estimated") or {}
    return {m: relative_error(estimated.get(m), measured.get(m)) for m, _, _ in columns}


def generation_workload(row: Mapping[str, Any]) -> str:
    """'batch x seq + new tokens, dtype' of one generation row."""
    return (f"Generate: :math:`{row.get('batch')} \\times {row.get('seq')}` + {row.get('new_tokens')} new tokens"
            + (f", dtype: {row.get('dtype')}" if row.get("dtype") else ""))
