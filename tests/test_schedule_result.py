"""The schedule's result is frozen: reading it twice gives the same answer, nothing can change it,
and estimate() only assembles an Estimate from it."""
from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from estimator import Workload, estimate, get_device, load_model
from estimator.decode import decode_ops
from estimator.device import GB
from estimator.generation import generate_call
from estimator.profile import profile_for
from estimator.schedule import GroupSum, PassResult, forward_pass, step_pass
from estimator.timeline import GpuTime

WORKLOADS = [Workload(4, 512, "float16"), Workload(4, 512, "bfloat16", gpus=4, parallel="pipeline"),
             Workload(4, 512, "bfloat16", gpus=2, parallel="tensor"),
             Workload(4, 512, "float16", gpus=4, parallel="data")]


@pytest.fixture(scope="module")
def h100():
    return get_device("H100")


@pytest.fixture(scope="module")
def opt():
    return load_model("facebook/opt-1.3b")


@pytest.mark.parametrize("w", WORKLOADS, ids=lambda w: f"{w.gpus}-{w.parallel}")
def test_result_reads_the_same_twice(opt, h100, w):
    r = forward_pass(opt, h100, profile_for(h100), w)
    assert isinstance(r, PassResult)
    assert r.breakdown() == r.breakdown() and r.breakdown() is not r.breakdown()
    assert r.breakdown()[0] is not r.breakdown()[0]   # fresh dicts: a caller's edit changes nothing
    r.breakdown()[0]["time_ms"] = -1.0
    assert r.breakdown()[0]["time_ms"] > 0
    assert (r.bound, r.energy_j, r.critical_gpu_us) == (r.bound, r.energy_j, r.critical_gpu_us)
    assert [g.to_dict() for g in r.groups] == r.breakdown()
    assert list(r.breakdown()[0]) == ["group", "time_ms", "flops", "bytes", "kernels", "bound"]


def test_estimate_twice_is_identical(opt, h100):
    w = Workload(4, 512, "bfloat16", gpus=4, parallel="pipeline")
    assert estimate(opt, h100, w).to_dict() == estimate(opt, h100, w).to_dict()
    g = Workload(2, 256, "float16", new_tokens=4)
    assert estimate(opt, h100, g).to_dict() == estimate(opt, h100, g).to_dict()


def test_result_is_frozen(opt, h100):
    r = forward_pass(opt, h100, profile_for(h100), WORKLOADS[1])
    for obj, name in ((r, "runtime_us"), (r.groups[0], "time_ms"), (r.gpu_times[0], "busy_us")):
        with pytest.raises(FrozenInstanceError):
            setattr(obj, name, 0.0)
    assert isinstance(r.groups, tuple) and isinstance(r.gpu_times, tuple)
    assert isinstance(r.peak_bytes_per_gpu, tuple)
    assert all(isinstance(g, GroupSum) for g in r.groups) and all(isinstance(t, GpuTime) for t in r.gpu_times)


@pytest.mark.parametrize("w", WORKLOADS, ids=lambda w: f"{w.gpus}-{w.parallel}")
def test_estimate_is_assembled_from_the_result(opt, h100, w):
    r = forward_pass(opt, h100, profile_for(h100), w)
    est = estimate(opt, h100, w)
    assert est.runtime_ms == r.runtime_us / 1e3 and est.host_ms == r.host_work_us / 1e3
    assert est.gpu_busy_ms == r.critical_gpu_us / 1e3 and est.bound == r.bound
    assert est.energy_j_per_token == r.energy_j / w.tokens
    assert est.memory_gb_per_gpu == [m / GB for m in r.peak_bytes_per_gpu]
    assert est.breakdown == r.breakdown()


@pytest.mark.parametrize("w", WORKLOADS, ids=lambda w: f"{w.gpus}-{w.parallel}")
def test_gpu_times_and_critical_path(opt, h100, w):
    r = forward_pass(opt, h100, profile_for(h100), w)
    assert sorted(t.gpu for t in r.gpu_times) == list(range(w.gpus))
    assert all(t.span_us >= 0 and t.busy_us > 0 and t.last_us <= r.runtime_us for t in r.gpu_times)
    busy = [t.busy_us for t in r.gpu_times]
    assert len(r.peak_bytes_per_gpu) == w.gpus
    if w.gpus == 1 or w.parallel == "pipeline":   # stages run one after another
        assert r.critical_gpu_us == pytest.approx(sum(busy))
    else:                                         # replicas run side by side
        assert r.critical_gpu_us == pytest.approx(sum(busy) / len(busy))
        assert len(set(busy)) == 1


def test_generate_step_result(opt, h100):
    w = Workload(2, 256, "float16", new_tokens=4)
    r = step_pass(opt, h100, profile_for(h100), w, decode_ops(opt, 2, 258, 2), 100.0, 10.0, lead_host_us=50.0)
    assert r.peak_bytes_per_gpu == () and [t.gpu for t in r.gpu_times] == [0]
    assert r.host_work_us == pytest.approx(50.0 + 100.0 + 10.0 * opt.layers)
    assert r.breakdown() == r.breakdown()
    g = generate_call(opt, h100, profile_for(h100), w)
    with pytest.raises(FrozenInstanceError):
        g.prefill.time_ms = 0.0
    assert [ph.to_dict() for ph in g.phases] == [ph.to_dict() for ph in g.phases]
