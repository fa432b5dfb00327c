"""Pricing over numpy arrays (issue 26, estimator/forward_many.py): every array twin gives the
floats of its scalar rule, and estimate_many's array path gives every workload the estimate
``estimate`` gives it (every number of to_dict() within 1e-9 relative; on a machine whose numpy
log / exp are libm's, exactly)."""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from estimator import EstimatorError, Workload, estimate, estimate_many, get_device, load_model
from estimator import energy, forward_many as fm
from estimator.api import priced_spec
from estimator.cost import BOUND_NAMES, price_all, price_many
from estimator.ops import forward_ops
from estimator.profile import profile_for, transfer_profile
from estimator.timeline import Clock, ClockMany

REL = 1e-9


def close(a, b, path=""):
    """Equal to_dict() values, floats within REL relative."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == b or abs(a - b) <= REL * max(abs(a), abs(b)), (path, a, b)
    else:
        assert a == b and type(a) is type(b), (path, a, b)


PROFILES = [("H100", None), ("A100", None), ("L4", "H200")]


def _profile(dev: str, source: str | None):
    d = get_device(dev)
    return d, (transfer_profile(d, source) if source else profile_for(d))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # log(0) of a size below the grid, clamped
@pytest.mark.parametrize("dev, source", PROFILES)
def test_profile_lookups_over_arrays_are_the_scalar_ones(dev, source):
    _, prof = _profile(dev, source)
    rng = random.Random(7)
    sizes = [rng.choice([1, 3, 7, 8, 64, 100, 1000, 4096, 12345, 65536, 10**6]) * rng.randint(1, 9) for _ in range(300)]
    for dtype in ("float16", "bfloat16", "float32", "tf32"):
        m = [float(s) for s in sizes]
        n = [float(rng.choice([64, 100, 768, 2048, 4096, 11008, 50272, 151936])) for _ in sizes]
        k = [float(rng.choice([64, 96, 768, 2048, 4096, 5120])) for _ in sizes]
        got = prof.gemm_us_many(np.array(m), np.array(n), np.array(k), dtype)
        assert got.tolist() == [prof.gemm_us(int(a), int(b), int(c), dtype) for a, b, c in zip(m, n, k)]
        bh = [float(rng.choice([1, 8, 32, 256, 1024])) for _ in sizes]
        seq = [float(rng.choice([1, 17, 128, 1000, 4096, 32768])) for _ in sizes]
        got = prof.sdpa_us_many(np.array(bh), np.array(seq), 128, dtype)
        assert got.tolist() == [prof.sdpa_us(int(a), int(b), 128, dtype) for a, b in zip(bh, seq)]
    nbytes = np.array([float(s) * rng.choice([1, 2, 6, 1000, 10**5]) for s in sizes] + [0.0, 0.5, 1e15])
    for pattern in ("binary", "unary", "strided", "cast", "reduce", "no such pattern"):
        assert prof.elementwise_us_many(pattern, nbytes).tolist() == [prof.elementwise_us(pattern, b) for b in nbytes]
    assert prof.copy_us_many(nbytes).tolist() == [prof.copy_us(b) for b in nbytes]
    nbytes = nbytes[nbytes >= 1.0]   # a transfer of nothing is never priced
    assert prof.transfer_us_many(nbytes, 450.0).tolist() == [prof.transfer_us(b, 450.0) for b in nbytes]
    assert prof.small_copy_us_many(nbytes).tolist() == [prof.small_copy_us(b) for b in nbytes]
    for gpus in (2, 4, 8):
        assert (prof.ring_allreduce_us_many(nbytes, gpus, 450.0).tolist()
                == [prof.ring_allreduce_us(b, gpus, 450.0) for b in nbytes])


def test_price_many_is_price_all_kernel_by_kernel():
    spec, (dev, prof) = load_model("meta-llama/Llama-3.1-8B"), _profile("H100", None)
    batch, seq = np.array([1.0, 3.0, 16.0, 64.0]), np.array([7.0, 128.0, 1000.0, 4096.0])
    for dtype, e, tf32 in (("float16", 2, False), ("float32", 4, True), ("float32", 4, False)):
        ops = fm.template_ops(spec, batch, seq, e)
        costs = price_many(ops.layers[0].ops + ops.post, dev, prof, dtype, tf32)
        for i in range(len(batch)):
            ref_ops = forward_ops(spec, int(batch[i]), int(seq[i]), e)
            ref = price_all(ref_ops.layers[0].ops + ref_ops.post, dev, prof, dtype, tf32)
            for c, r in zip(costs, ref):
                assert (float(np.broadcast_to(c.gpu_us, batch.shape)[i]), float(np.broadcast_to(c.utilization, batch.shape)[i]),
                        BOUND_NAMES[int(np.broadcast_to(c.bound, batch.shape)[i])]) == (r.gpu_us, r.utilization, r.bound)


def test_energy_rules_over_arrays_are_the_scalar_ones():
    power = profile_for(get_device("H100")).power
    rng = np.random.default_rng(3)
    compute, memory_us, span = rng.uniform(0, 5e3, 200), rng.uniform(0, 5e3, 200), rng.uniform(0, 2e4, 200)
    compute[:5] = 0.0
    window = compute + memory_us + rng.uniform(-100, 3e3, 200)
    got = energy.power_cap_slowdown_many(compute, memory_us, window, power)
    assert got.tolist() == [energy.power_cap_slowdown(*x, power) for x in zip(compute.tolist(), memory_us.tolist(), window.tolist())]
    load = energy.GpuLoad(compute, memory_us, compute * 0.9, memory_us * 0.7, got)
    total = span + rng.uniform(-1e3, 1e4, 200)
    many = energy.gpu_energy_j_many(load, span, total, power)
    for i in range(200):
        one = energy.GpuLoad(compute[i], memory_us[i], compute[i] * 0.9, memory_us[i] * 0.7, got[i])
        assert many[i] == energy.gpu_energy_j(one, span[i], total[i], power)


def test_clock_many_is_clock_workload_by_workload():
    rng = random.Random(11)
    n = 40
    for sync in (False, True):
        many, ones = ClockMany(n, sync), [Clock(sync=sync) for _ in range(n)]
        for part in range(6):
            gpu = part % 2
            host = rng.uniform(0.5, 20.0)
            durs = [[rng.choice([0.3, 1.0, 5.0, 40.0]) * rng.uniform(0.5, 2) for _ in range(n)] for _ in range(7)]
            blocking = [rng.random() < 0.15 for _ in durs]
            steps = [(host, np.array(d), b) for d, b in zip(durs, blocking)]
            times = rng.choice([1, 3, 30])
            (many.run(gpu, steps) if times == 1 else many.repeat(gpu, steps, times))
            for i, c in enumerate(ones):
                one = [(host, d[i], b) for d, b in zip(durs, blocking)]
                (c.run(gpu, one) if times == 1 else c.repeat(gpu, one, times))
        for i, c in enumerate(ones):
            assert (many.host_us[i], many.gpu_us[i], many.host_work_us[i], many.total_us[i]) == (
                c.host_us, c.gpu_us, c.host_work_us, c.total_us)
            for g in c.busy_us:
                assert (many.busy_us[g][i], many.first_us[g][i], many.last_us[g][i]) == (
                    c.busy_us[g], c.first_us[g], c.last_us[g])


MODELS = ("facebook/opt-1.3b", "meta-llama/Llama-3.1-8B", "mistralai/Mistral-7B-v0.1", "google/gemma-2-2b",
          "openai-community/gpt2", "Qwen/Qwen2.5-0.5B")
MODES = (dict(), dict(gpus=2), dict(gpus=4, parallel="pipeline", dtype="bfloat16"), dict(gpus=4, parallel="data"),
         dict(gpus=2, parallel="tensor"), dict(gpus=4, parallel="tensor", nodes=2), dict(dtype="float32"),
         dict(dtype="float32", tf32=True), dict(use_cache=False))


@pytest.mark.parametrize("model, dev", [(m, d) for m, d in zip(MODELS, itertools.cycle(("H100", "H200", "A100", "L4")))])
def test_array_path_equals_the_scalar_path(model, dev, monkeypatch):
    """A few hundred workloads over the modes (some refused, some repeated, one generation):
    the array path prices most of them, and each result is estimate()'s."""
    spec, d = load_model(model), get_device(dev)
    prof = profile_for(d)
    rng = random.Random(model)
    ws = [Workload(batch=rng.choice([1, 2, 3, 4, 8, 12, 16, 64]), seq=rng.choice([1, 16, 100, 512, 1024, 3000, 5000]),
                   **rng.choice(MODES)) for _ in range(60)]
    ws += [ws[0], Workload(batch=2, seq=10**6), Workload(batch=2, seq=64, new_tokens=3)]
    from estimator import many as many_module
    monkeypatch.setattr(many_module, "ARRAY_MIN", 1)   # every group offered to the arrays, however small
    priced = []
    real = fm.forward_many

    def counted(*args, **kwargs):
        chunks = real(*args, **kwargs)
        priced.append((sum(len(c.index) for c in chunks), len(args[3])))
        return chunks
    monkeypatch.setattr(fm, "forward_many", counted)
    prof.results.clear()
    many = estimate_many(spec, d, ws)
    prof.results.clear()
    for w, got in zip(ws, many):
        try:
            want = estimate(spec, d, w)
        except EstimatorError as exc:
            assert isinstance(got, EstimatorError) and str(got) == str(exc)
            continue
        close(want.to_dict(), got.to_dict(), f"{model} {w}")
    arrays, asked = map(sum, zip(*priced))
    assert arrays >= asked // 2 > 0, "most workloads went through the array path"


@pytest.mark.parametrize("model", ["Qwen/Qwen3-30B-A3B", "openai/gpt-oss-20b"])
def test_kernels_the_arrays_do_not_price_go_one_by_one(model):
    """MoE experts (grouped GEMMs, host syncs) are not priced over arrays: the scalar path."""
    spec, dev = load_model(model), get_device("H100")
    ws = [Workload(batch=b, seq=s) for b in (1, 2, 4) for s in (64, 128)]
    assert fm.forward_many(priced_spec(spec, ws[0]), dev, profile_for(dev), ws) == []
    for w, got in zip(ws, estimate_many(spec, dev, ws)):
        close(estimate(spec, dev, w).to_dict(), got.to_dict())


def test_template_agrees_with_the_scalar_kernels():
    spec = load_model("mistralai/Mistral-7B-v0.1")
    batch = np.array([1.0, 2.0, 5.0])
    assert fm.template_ops(spec, batch, np.array([10.0, 5000.0, 100.0]), 2) is None   # the window: a branch on seq
    ops = fm.template_ops(spec, batch, 5000, 2)   # one seq: batch alone an array
    for i, b in enumerate((1, 2, 5)):
        assert fm.agrees(ops, forward_ops(spec, b, 5000, 2), i)
    assert not fm.agrees(ops, forward_ops(spec, 3, 5000, 2), 0)


@pytest.mark.parametrize("mode", [dict(), dict(gpus=3), dict(gpus=2, parallel="data"), dict(gpus=4, parallel="tensor")])
def test_passes_priced_together_are_forward_pass(mode):
    """Each workload's PassResult (GPU times and memory parts too, which no Estimate shows) is
    schedule.forward_pass's."""
    from estimator.schedule import forward_pass
    spec, dev = load_model("Qwen/Qwen2.5-0.5B"), get_device("H200")
    prof = profile_for(dev)
    ws = [Workload(batch=b, seq=s, **mode) for b in (2, 4, 6) for s in (1, 33, 700)]
    got = fm.forward_results(spec, dev, prof, ws)
    for w, r in zip(ws, got):
        want = forward_pass(spec, dev, prof, w)
        assert r.gpu_times == want.gpu_times and r.groups == want.groups
        assert r.peak_bytes_per_gpu == want.peak_bytes_per_gpu and r.memory_parts == want.memory_parts
        assert (r.runtime_us, r.host_work_us, r.critical_gpu_us, r.energy_j, r.host_source) == (
            want.runtime_us, want.host_work_us, want.critical_gpu_us, want.energy_j, want.host_source)


def test_a_cpu_profile_over_arrays(tmp_path):
    """A CPU calibration (the host computes each kernel: nothing overlaps; CPU attention kernels;
    no ranges): the array path gives estimate()'s results there too."""
    import json
    from estimator.profile import PROFILE_DIR, load_profile_file
    raw = json.loads((PROFILE_DIR / "h100-sxm5-80gb.json").read_text())
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(dict(raw, kind="cpu", device_name="Some CPU")))
    cpu = load_profile_file(path)
    dev = cpu.host_device()
    ws = [Workload(batch=b, seq=s, dtype="float32") for b in (1, 2, 5) for s in (16, 100, 640)]
    priced = fm.forward_results(load_model("Qwen/Qwen2.5-0.5B"), dev, cpu, ws)
    assert all(r is not None for r in priced)
    many = estimate_many("Qwen/Qwen2.5-0.5B", dev, ws, cpu)
    cpu.results.clear()   # estimate() prices each anew, not from the cache the array path filled
    for w, got in zip(ws, many):
        close(estimate("Qwen/Qwen2.5-0.5B", dev, w, cpu).to_dict(), got.to_dict())


def test_sizes_past_exact_floats_go_one_by_one():
    """A workload whose kernel sizes pass 2**52 (where float64 and Python's integers part) is
    left to the scalar path; the others of its group stay on the arrays."""
    spec, dev = load_model("openai-community/gpt2"), get_device("H100")
    ws = [Workload(batch=b, seq=64) for b in (1, 2, 3, 10**12)]
    priced = fm.forward_results(spec, dev, profile_for(dev), ws)
    assert [r is not None for r in priced] == [True, True, True, False]
    many = estimate_many(spec, dev, ws)
    profile_for(dev).results.clear()   # estimate() prices each anew, not from the cache the array path filled
    for w, got in zip(ws, many):
        try:
            want = estimate(spec, dev, w).to_dict()
        except EstimatorError as exc:
            assert str(got) == str(exc)
            continue
        close(want, got.to_dict())


def test_group_sums_over_arrays_are_the_scalar_ones_ties_included():
    """breakdown's running sums and a group's bound (the most time; on a tie the bound that ran
    first) for many workloads at once: each workload's are group_sum's of its own kernels."""
    from estimator.breakdown import add_groups, add_groups_many, group_bounds_many, group_sum, group_sums, group_sums_many
    from estimator.cost import OpCost, OpCostMany
    from estimator.op_builders import Op
    rng = random.Random(5)
    n = 50
    ops = [Op(f"k{i}", rng.choice("ab"), "elementwise", float(i), 10.0 * i) for i in range(8)]
    lists = []
    for _ in range(3):
        times = [[rng.choice([1.0, 2.0, 3.0]) for _ in range(n)] for _ in ops]   # small values: many ties
        bounds = [[rng.randrange(3) for _ in range(n)] for _ in ops]
        lists.append((times, bounds, rng.choice([1, 4])))
    many_groups: dict = {}
    for index, (times, bounds, k) in enumerate(lists):
        costs = [OpCostMany(op, np.array(t), np.array(b), 0.5) for op, t, b in zip(ops, times, bounds)]
        add_groups_many(many_groups, group_sums_many(costs), k, index)
    for i in range(n):
        groups: dict = {}
        for times, bounds, k in lists:
            costs = [OpCost(op, t[i], BOUND_NAMES[b[i]], 0.5) for op, t, b in zip(ops, times, bounds)]
            add_groups(groups, group_sums(costs), k)
        for name, g in groups.items():
            want, got = group_sum(name, g), many_groups[name]
            assert (got.time[i], got.flops, got.bytes, got.kernels) == (want.time_ms, want.flops, want.bytes, want.kernels)
            assert BOUND_NAMES[group_bounds_many(got)[i]] == want.bound
