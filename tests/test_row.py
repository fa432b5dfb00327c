"""bench/row.py: every recorded row reads back and writes out exactly as it is on disk, and the
typed blocks give the JSON schema of the bench's rows (no GPU needed)."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.compare import METRICS
from bench.row import ABSENT, Estimated, Measured, Row
from estimator import Workload

MEASURED = Path(__file__).resolve().parents[1] / "reports" / "measured"
RECORDED = [(p.name, i, r) for p in sorted(MEASURED.glob("*.json"))
            for i, r in enumerate(json.loads(p.read_text())["cases"])]


@pytest.mark.parametrize("name, i, row", RECORDED, ids=[f"{n}-{i}" for n, i, _ in RECORDED])
def test_recorded_row_round_trips(name, i, row) -> None:
    back = Row.from_dict(row).to_dict()
    assert back == row
    assert json.dumps(back) == json.dumps(row)   # same key order everywhere, down to the blocks


def test_recorded_rows_cover_every_kind() -> None:
    rows = [Row.from_dict(r) for _, _, r in RECORDED]
    assert {r.kind for r in rows} == {None, "generate"} and any(r.nodes for r in rows)
    assert len(rows) == len(RECORDED) >= 226   # every recorded case of reports/measured/ (226 on 2026-12-01)


def test_workload_maps_single_to_a_one_gpu_pipeline() -> None:
    rows = {r["case_id"]: Row.from_dict(r) for _, _, r in RECORDED}
    one = next(r for r in rows.values() if r.parallel == "single" and r.kind is None)
    assert one.workload() == Workload(one.batch, one.seq, one.dtype, 1, "pipeline")
    gen = next(r for r in rows.values() if r.kind == "generate")
    assert gen.workload() == Workload(gen.batch, gen.seq, gen.dtype, new_tokens=gen.new_tokens)
    tp = next(r for r in rows.values() if r.nodes and r.parallel == "tensor")
    assert tp.workload() == Workload(tp.batch, tp.seq, tp.dtype, tp.gpus, "tensor", nodes=tp.nodes)


def test_distributed_rows_keep_the_legacy_rounds_key() -> None:
    m = Measured(10.0, memory_gb=2.0, memory_gb_per_gpu=[1.0, 2.0], energy_j_per_token=None,
                 throughput_tokens_per_s=5.0, runtime_rounds=7)
    head = dict(case_id="c", model="m", device="H200", device_short="H200", gpus=2, parallel="data",
                batch=2, seq=8, dtype="float16")
    dist = Row(**head, nodes=1, measured=m).to_dict()
    assert list(dist["measured"]) == ["runtime_ms", "memory_gb", "memory_gb_per_gpu", "energy_j_per_token",
                                      "throughput_tokens_per_s", "rounds"]
    assert Row.from_dict(dist).measured.runtime_rounds == 7
    assert list(Row(**head, measured=m).to_dict()["measured"])[-1] == "runtime_rounds"


def _estimate(**kw):
    base = dict(runtime_ms=1.0, memory_gb=2.0, energy_j_per_token=0.1, throughput_tokens_per_s=3.0,
                memory_gb_per_gpu=[2.0], host_ms=0.5, gpu_busy_ms=0.7, bound="gpu", profile="p",
                breakdown=[{"group": "x"}], ttft_ms=None, tpot_ms=None, generate_ms=None,
                generate_energy_j_per_token=None, phases=[])
    return SimpleNamespace(**(base | kw))


def test_estimated_block_of_a_forward_and_a_generation_estimate() -> None:
    host = {"per_layer_us": 1.0, "fixed_us": 2.0, "dispatch_hook_us": 0.0}
    fwd = Estimated.from_estimate(_estimate(), host_us=host).to_dict()
    assert list(fwd) == [*METRICS, "memory_gb_per_gpu", "host_ms", "gpu_busy_ms", "bound", "profile",
                         "breakdown", "host_us"]
    gen = Estimated.from_estimate(_estimate(ttft_ms=1.0, tpot_ms=0.1, generate_ms=9.0,
                                            generate_energy_j_per_token=0.2, phases=[{}]), host_us=host).to_dict()
    assert list(gen) == [*METRICS, "ttft_ms", "tpot_ms", "generate_ms", "generate_energy_j_per_token", "host_ms",
                         "gpu_busy_ms", "bound", "profile", "phases", "host_us", "breakdown"]
    assert gen["host_us"] is host and "memory_gb_per_gpu" not in gen


def test_absent_is_never_written_and_none_is() -> None:
    m = Measured(1.0, memory_gb=None)
    assert m.power_w is ABSENT and m.to_dict() == {"runtime_ms": 1.0, "memory_gb": None}
