"""Data- and tensor-parallel forward passes, one process per GPU (torchrun through
bench/launch.py), measured beside the estimate. bench/conftest.py hands this module
the cases with gpus > 1 and parallel data / tensor; bench/test_forward.py keeps the rest."""
from __future__ import annotations

import pytest

from bench.calibration import host_used
from bench import build, distributed
from bench.cases import Case, detect, spec_or_skip
from bench.launch import launch
from bench.row import Estimated, Row
from estimator import EstimatorError, estimate


@pytest.fixture(scope="session")
def checkpoints():
    store = distributed.Checkpoints()
    yield store
    store.close()


def test_distributed(case: Case, bench_config, bench_recorder, check_bounds, checkpoints, request) -> None:
    nodes = bench_config.nnodes
    machine = detect()
    if machine.problem:
        pytest.skip(machine.problem)
    if case.gpus % nodes or case.gpus // nodes > machine.gpu_count:
        pytest.skip(f"needs {case.gpus} GPUs over {nodes} node(s), this machine has {machine.gpu_count}")
    spec = spec_or_skip(case.model)
    reason = distributed.skip_reason(spec, case.parallel, case.gpus, case.batch,
                                     case.parallel != "tensor" or distributed.has_tp_plan(case.model))
    reason = reason or build.config_problem(case.model)   # transformers refuses it: skip, do not fail
    if reason:
        pytest.skip(reason)
    dtype = (spec.dtype or "float16") if case.dtype == "auto" else case.dtype
    resolved = request.getfixturevalue("bench_profile")
    if resolved.profile is None:
        pytest.skip(resolved.reason)
    short = machine.device.aliases[0]
    row = Row(case_id=case.id, model=case.model, device=machine.device.name, device_short=short, gpus=case.gpus,
              parallel=case.parallel, batch=case.batch, seq=case.seq, dtype=dtype, nodes=nodes)
    try:
        est = estimate(case.model, machine.device, row.workload(), resolved.profile)
    except EstimatorError as exc:
        pytest.skip(f"estimator cannot take this case: {exc}")
    if est.memory_gb > machine.device.memory_gb * 0.95:
        pytest.skip(f"out of memory: needs about {est.memory_gb:.1f} GB per GPU")
    ckpt = checkpoints.get(case.model, dtype) if case.parallel == "tensor" else None
    job = distributed.worker_case(case.model, case.parallel, case.batch, case.seq, dtype, "cuda",
                                  bench_config.energy_window_s, ckpt, rounds=max(bench_config.rounds, 7))
    result = launch(distributed.WORKER, job, case.gpus // nodes, bench_config.dist_timeout_s, nnodes=nodes,
                    node_rank=bench_config.node_rank, rdzv_endpoint=bench_config.rdzv_endpoint or None,
                    rdzv_id=case.id)
    if not result.ok:
        pytest.fail(f"{case.id}: {result.error}\n{result.stderr_tail}")
    if bench_config.node_rank:  # only node 0 records: it holds every rank's share of the work it can see
        pytest.skip("rows are recorded on node 0")
    agg = distributed.aggregate(result.ranks, shared_tokens=case.parallel == "tensor")
    estimated = Estimated.from_estimate(est, host_us=host_used(resolved.profile, spec))
    bench_recorder.default_name = f"bench-{short.lower()}-x{machine.gpu_count}"
    check_bounds(row.with_results(agg.measured(case.batch * case.seq), estimated).to_dict(), None)
