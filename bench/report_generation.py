"""The generation table of the RST report: rows of bench/test_generate.py (``kind: generate``)
in the forward table's layout; its columns are bench.metrics.generation_table() (TTFT, TPOT,
memory and energy per generated token)."""
from __future__ import annotations

from typing import Any, Mapping

GENERATE_KIND = "generate"


def is_generation(row: Mapping[str, Any]) -> bool:
    return row.get("kind") == GENERATE_KIND


def generation_workload(row: Mapping[str, Any]) -> str:
    """'batch x seq + new tokens, dtype' of one generation row."""
    return (f"Generate: :math:`{row.get('batch')} \\times {row.get('seq')}` + {row.get('new_tokens')} new tokens"
            + (f", dtype: {row.get('dtype')}" if row.get("dtype") else ""))
