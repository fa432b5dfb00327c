"""Forward passes of many workloads at once, priced over numpy arrays (issue 26).

Workloads that differ only in batch and seq (one model, device, profile, dtype, GPU count,
parallel mode, ...) launch the same kernels: only their sizes differ, and every size is a product
of batch, seq and the model's widths. So the kernel list is built once, by the same builders as
one workload's (ops.forward_ops) given numpy arrays of batches and seqs for numbers: each Op then
holds an array of sizes, one per workload. A family whose kernels depend on the sizes themselves
(a sliding window past its length, ``if seq > window``) cannot be built so: numpy refuses the
comparison, and the workloads are tried again one seq at a time (batch an array), then one by one
on the scalar path (schedule.forward_pass).

The kernels are priced through the profile's tables over arrays (cost.price_many: the same rules
as cost.price_all, each beside its scalar twin), the host / GPU overlap is the same recurrence run
kernel by kernel with arrays over the workloads (timeline.ClockMany), and the sums (breakdown,
energy, power cap) are made in the same order as schedule.Pass makes them: each workload's numbers
are the floats its scalar pass gives (tests/test_forward_many.py, tests/snapshot_estimates.py --many).

What is priced here: plain forward passes (new_tokens 0) of kernels of kinds gemm, sdpa and
elementwise on one GPU, a pipeline, or data / tensor parallel replicas. Anything else (MoE
experts, generation, sizes beyond 2**52 where float and integer arithmetic part) is left to the
scalar path: ``forward_many`` returns None for those workloads.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from . import distributed, energy, fp8, host_model, memory
from .breakdown import GroupSum, GroupTotalMany, add_groups_many, group_bounds_many, group_sums_many
from .cost import BOUND_NAMES, COMMUNICATION, OpCostMany, price_many
from .device import DeviceSpec
from .model import ModelSpec
from .op_builders import FLOAT32_GEMM, ODD_ROW_SOFTMAX, Op
from .ops import ForwardOps, LayerOps, forward_ops
from .placement import Placement, single_gpu_placement
from .profile import ALLGATHER_HOST_US, Profile
from .schedule import BLOCKING_KINDS, COMPUTE_KINDS, Pass, PassResult, pipeline_split, walk_stages
from .timeline import ClockMany, GpuTime
from .workload import Workload

EXACT_LIMIT = 2.0 ** 52   # sizes up to here are exact in float64, as Python's integers are
PRICED_KINDS = ("gemm", "sdpa", "elementwise")


def _is_array(x: Any) -> bool:
    return hasattr(x, "ndim")


def _all_ops(ops: ForwardOps) -> tuple[Op, ...]:
    return ops.pre + tuple(op for g in ops.layers for op in g.ops) + ops.post


def template_ops(spec: ModelSpec, batch: Any, seq: Any, e: int, shards: int = 1, cuda: bool = True) -> ForwardOps | None:
    """ops.forward_ops with arrays of batches and seqs (or one seq): each Op's sizes an array over
    the workloads; None when the family's builders cannot take arrays (they branch on a size)."""
    try:
        with np.errstate(all="ignore"):
            return forward_ops.__wrapped__(spec, batch, seq, e, shards, cuda)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return None


def _at(x: Any, i: int) -> Any:
    return x[i] if _is_array(x) else x


# GEMMs priced on the float32 grid inside a 16-bit model (Qwen3-Next's delta rule) and FP8 weights:
# cost.price_all's branches price_many does not take, left to the scalar path
SCALAR_PATTERNS = (FLOAT32_GEMM, fp8.PATTERN, ODD_ROW_SOFTMAX)


def _priceable(ops: ForwardOps, n: int) -> Any:
    """Which workloads price_many can take (a boolean array over them): all or none by the
    kernels' kinds, each by its sizes (exact in float64 below EXACT_LIMIT, as Python's integers
    are; flops finite)."""
    ok = np.ones(n, dtype=bool)
    for op in _all_ops(ops):
        if (op.kind not in PRICED_KINDS or op.pattern in SCALAR_PATTERNS
                or (op.kind == "sdpa" and (len(op.shape) != 3 or _is_array(op.shape[2])))):
            return np.zeros(n, dtype=bool)
        for x in (op.bytes, *op.shape):
            ok &= np.isfinite(x) & (np.abs(x) < EXACT_LIMIT)
        ok &= np.isfinite(op.flops)
    return ok


def agrees(template: ForwardOps, scalar: ForwardOps, i: int) -> bool:
    """Whether workload `i` of `template` has the kernels `scalar` lists for it, size for size."""
    a, b = _all_ops(template), _all_ops(scalar)
    if len(a) != len(b) or [g.group for g in template.layers] != [g.group for g in scalar.layers]:
        return False
    for x, y in zip(a, b):
        if (x.name, x.group, x.kind, x.pattern, len(x.shape)) != (y.name, y.group, y.kind, y.pattern, len(y.shape)):
            return False
        if _at(x.flops, i) != y.flops or _at(x.bytes, i) != y.bytes or any(_at(u, i) != v for u, v in zip(x.shape, y.shape)):
            return False
    return True


def comm_cost_many(name: str, nbytes: Any, us: Any, blocking: bool = True) -> OpCostMany:
    """schedule.comm_cost of many workloads."""
    kind = "comm" if blocking else "collective"
    return OpCostMany(Op(name, "communication", kind, 0.0, nbytes), us, COMMUNICATION, 0.5)


class PassMany:
    """schedule.Pass for many workloads: kernels priced over arrays, the clock run over arrays."""

    def __init__(self, spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload, n: int,
                 host: host_model.HostPrice, hook_us: float = 0.0):
        self.spec, self.dev, self.prof, self.w, self.n, self.hook_us = spec, dev, prof, w, n, hook_us
        self.slowdown: Any = 1.0
        self.clock = ClockMany(n, sync=prof.kind == "cpu")
        (self.layer_host_us, self.fixed_host_us), self.host_source = host.times, host.source
        self.groups: dict[str, GroupTotalMany] = {}
        self.load: dict[int, energy.GpuLoad] = {}
        self.segments: list[tuple[int, list[OpCostMany], int]] = []

    def _full(self, x: Any) -> Any:
        return np.broadcast_to(np.asarray(x, dtype=float), (self.n,))

    def price(self, ops: Sequence[Op]) -> list[OpCostMany]:
        costs = price_many(tuple(ops), self.dev, self.prof, self.w.dtype, self.w.tf32)
        return self._slowed([self.broadcast(c) for c in costs])

    def broadcast(self, c: OpCostMany) -> OpCostMany:
        """`c` with its time, bound and utilization one per workload."""
        return OpCostMany(c.op, self._full(c.gpu_us), np.broadcast_to(c.bound, (self.n,)), self._full(c.utilization))

    def _slowed(self, costs: list[OpCostMany]) -> list[OpCostMany]:
        if not _is_array(self.slowdown) and self.slowdown == 1.0:
            return costs
        s = self.slowdown   # x * 1.0 is x: workloads the cap does not slow keep their floats
        return [OpCostMany(c.op, c.gpu_us * s, c.bound, c.utilization) if c.op.kind in COMPUTE_KINDS else c
                for c in costs]

    def set_power_cap(self, costs: list[OpCostMany], duty: float = 1.0) -> list[OpCostMany]:
        """Pass.set_power_cap of many workloads."""
        if self.w.dtype == "float32" and not self.w.tf32:
            self.slowdown = 1.0
            return costs
        compute = sum(c.gpu_us for c in costs if c.op.kind in COMPUTE_KINDS)
        memory_us = sum(c.gpu_us for c in costs) - compute
        busy = compute + memory_us
        window = np.where(busy >= self.layer_host_us, busy, self.layer_host_us) / duty
        power = self.prof.power
        self.slowdown = energy.power_cap_slowdown_many(compute, memory_us, window, power) if power else 1.0
        return self._slowed(costs)

    def layer_costs(self, ops: ForwardOps, duty: float = 1.0) -> list[tuple[LayerOps, list[OpCostMany]]]:
        costs = [self.price(g.ops) for g in ops.layers]
        judged = max(range(len(costs)), key=lambda i: ops.layers[i].group.count)
        costs[judged] = self.set_power_cap(costs[judged], duty)
        return [(g, c if i == judged else self._slowed(c)) for i, (g, c) in enumerate(zip(ops.layers, costs))]

    run_layers = Pass.run_layers   # the same walk over layer groups, with this class's run

    def run(self, gpu: int, costs: list[OpCostMany], host_us: float, times: int = 1) -> None:
        if not costs or times == 0:
            return
        per = host_us / max(1, len(costs))
        steps = [(per, c.gpu_us, c.op.kind in BLOCKING_KINDS) for c in costs]
        if times == 1:
            self.clock.run(gpu, steps)
        else:
            self.clock.repeat(gpu, steps, times)
        self.segments.append((gpu, costs, times))

    def transfer(self, gpu: int, nbytes: Any) -> None:
        t = self.prof.transfer_us_many(nbytes, self.dev.interconnect_gb_s)
        self.run(gpu, [comm_cost_many("p2p copy", nbytes, self._full(t))], self.hook_us)

    def summarize(self) -> None:
        """Pass.summarize of many workloads."""
        for index, (gpu, costs, times) in enumerate(self.segments):
            comp = [c for c in costs if c.op.kind in COMPUTE_KINDS]
            mem = [c for c in costs if c.op.kind not in COMPUTE_KINDS]
            compute, memory_us = sum(c.gpu_us for c in comp), sum(c.gpu_us for c in mem)
            comp_occ = sum(c.gpu_us * c.utilization for c in comp)
            mem_occ = sum(c.gpu_us * c.utilization for c in mem)
            load = self.load.setdefault(gpu, energy.GpuLoad(slowdown=self.slowdown))
            load.compute_us = load.compute_us + compute * times
            load.memory_us = load.memory_us + memory_us * times
            load.compute_occ_us = load.compute_occ_us + comp_occ * times
            load.memory_occ_us = load.memory_occ_us + mem_occ * times
            add_groups_many(self.groups, group_sums_many(costs), times, index)

    def energy_j(self) -> Any:
        """Pass._energy_j of many workloads (None without a power model)."""
        power = self.prof.power
        if not power:
            return None
        joules = 0.0
        total = self.clock.total_us
        for g in range(self.w.gpus):
            span = self.clock.last_us.get(g, 0.0) - self.clock.first_us.get(g, 0.0)
            joules = joules + energy.gpu_energy_j_many(self.load.get(g, energy.GpuLoad(slowdown=self.slowdown)),
                                                       span, total, power)
        return joules

    def passes(self, index: list[int], mem: list[memory.MemoryParts]) -> ManyPasses:
        """Pass.result of every workload, as columns (`mem`: the memory parts of each GPU, arrays
        over the workloads)."""
        clock = self.clock
        busy_us = clock.busy_us
        busy = sum(busy_us.values()) / max(1, len(busy_us))
        critical = sum(busy_us.values()) if self.w.parallel == "pipeline" or self.w.gpus == 1 else busy
        names = BOUND_NAMES + ("host",)
        groups = [(name, self._full(g.time).tolist(), self._full(g.flops).tolist(), self._full(g.bytes).tolist(),
                   g.kernels, [names[b] for b in group_bounds_many(g).tolist()]) for name, g in self.groups.items()]
        gpus = [(gpu, self._full(b).tolist(), self._full(clock.first_us[gpu]).tolist(),
                 self._full(clock.last_us[gpu]).tolist()) for gpu, b in busy_us.items()]
        joules = self.energy_j()
        return ManyPasses(index, self._full(clock.total_us), self._full(clock.host_work_us), self._full(critical),
                          None if joules is None else self._full(joules), groups, gpus, mem, self.host_source)


@dataclass
class ManyPasses:
    """schedule.PassResult of workloads priced together, by column: numbers as arrays (or lists)
    with one entry per workload, `index` saying which of the workloads given they are."""
    index: list[int]
    runtime_us: Any
    host_work_us: Any
    critical_gpu_us: Any
    energy_j: Any              # None: no power model
    groups: list[tuple]        # per operator group: name, time_ms, flops, bytes (lists), kernels, bound (list)
    gpu_times: list[tuple]     # per GPU that ran kernels: gpu, busy_us, first_us, last_us (lists)
    memory_parts: list[memory.MemoryParts]   # per GPU, each part a number or an array over the workloads
    host_source: str

    def result(self, i: int) -> PassResult:
        """The PassResult of the i-th workload here (the one schedule.forward_pass gives it)."""
        n = len(self.index)
        parts = tuple(memory.MemoryParts(*(float(np.broadcast_to(getattr(m, f), (n,))[i]) if _is_array(getattr(m, f))
                                           else getattr(m, f) for f in memory.PARTS + ("total",)))
                      for m in self.memory_parts)
        return PassResult(tuple(GroupSum(name, t[i], f[i], b[i], k, bd[i]) for name, t, f, b, k, bd in self.groups),
                          tuple(GpuTime(gpu, b[i], f[i], last[i]) for gpu, b, f, last in self.gpu_times),
                          float(self.runtime_us[i]), float(self.host_work_us[i]), float(self.critical_gpu_us[i]),
                          None if self.energy_j is None else float(self.energy_j[i]), parts, self.host_source)


def _with_input_copies_many(p: PassMany, layer: list[OpCostMany], place: Placement, g: int, seq: Any) -> list[OpCostMany]:
    """schedule._with_input_copies of many workloads."""
    n = (2 if place.rotary_gpu >= 0 and g != place.rotary_gpu else 0) + (1 if g != place.embed_gpu else 0)
    if n == 0:
        return layer
    small = 2 * seq * p.spec.arch.rotary_copy_dim(p.spec) * p.w.dtype_bytes
    return [comm_cost_many("input copy", small, p._full(p.prof.small_copy_us_many(small)))] * n + layer


def _placed_many(p: PassMany, ops: ForwardOps, place: Placement, batch: Any, seq: Any) -> None:
    """schedule._placed of many workloads (their memory is counted one by one, by memory.py)."""
    layers = p.layer_costs(ops, max(place.layers_per_gpu) / p.spec.layers)
    pre, post = p.price(ops.pre), p.price(ops.post)
    fixed_per_kernel = p.fixed_host_us / max(1, len(pre) + len(post))
    n_norm = len(post) - sum(1 for c in post if c.op.group == "lm head")
    parts = {"embeddings": pre, "final norm": post[:n_norm], "lm head": post[n_norm:]}
    walk_stages(p, place, parts, layers, p.layer_host_us, fixed_per_kernel, batch, seq, seq, _with_input_copies_many)


def _replicated_many(p: PassMany, ops: ForwardOps, batch: Any, seq: Any, cat: bool) -> None:
    """schedule._replicated of many workloads (`batch`: each replica's; `cat`: batch > 1)."""
    spec, w = p.spec, p.w
    e = w.dtype_bytes
    shards = w.gpus if w.parallel == "tensor" else 1
    t = batch * seq
    layers = p.layer_costs(ops)
    pre, post = p.price(ops.pre), p.price(ops.post)
    fixed = p.fixed_host_us / max(1, len(pre) + len(post))
    p.run(0, pre, fixed * len(pre))
    link = p.dev.interconnect_gb_s
    layer_host = p.layer_host_us
    if shards > 1:
        nbytes = t * spec.hidden * e
        ar = p._full(distributed.allreduce_us_many(p.prof, nbytes, w.gpus, w.nodes, link, w.network))
        layers = [(g, c + [comm_cost_many("all-reduce", nbytes, ar, blocking=False)] * 2) for g, c in layers]
        layer_host += distributed.tp_layer_host_us(spec.arch.tp_sharded_linears(spec))
    p.run_layers(0, layers, layer_host, 0, spec.layers)
    p.run(0, post, fixed * len(post))
    if shards > 1:
        full = t * spec.vocab * e
        nbytes = (w.gpus - 1) / w.gpus * full
        gather = p._full(distributed.allgather_us_many(p.prof, nbytes, w.gpus, w.nodes, link, w.network))
        steps = [comm_cost_many("all-gather", nbytes, gather, blocking=False)]
        if cat:   # priced as it is (cost.price): not a kernel the power cap slows
            [c] = price_many((Op("logits cat", "lm head", "elementwise", 0.0, 2 * full),), p.dev, p.prof, w.dtype, w.tf32)
            steps.append(p.broadcast(c))
        p.run(0, steps, ALLGATHER_HOST_US)


def _copy_replica_many(p: PassMany, gpus: int) -> None:
    p.clock.mirror(0, gpus)
    for g in range(1, gpus):
        p.load[g] = replace(p.load[0])


def forward_many(spec: ModelSpec, dev: DeviceSpec, prof: Profile, ws: Sequence[Workload],
                 least: int = 2) -> list[ManyPasses]:
    """schedule.forward_pass of `ws` (validated plain forwards that differ only in batch and seq,
    `spec` as api.priced_spec gives it), in chunks priced together; a workload in no chunk is left
    to the scalar path (those of a seq with fewer than `least` workloads where their kernels have
    to be listed one seq at a time)."""
    if not ws or ws[0].new_tokens:
        return []
    whole = _priced_together(spec, dev, prof, ws, list(range(len(ws))), seq_array=True)
    if whole is not None:
        return [whole]
    by_seq: dict[int, list[int]] = {}
    for i, w in enumerate(ws):
        by_seq.setdefault(w.seq, []).append(i)
    chunks = (_priced_together(spec, dev, prof, ws, idx, seq_array=False) for idx in by_seq.values() if len(idx) >= least)
    return [c for c in chunks if c is not None]


def forward_results(spec: ModelSpec, dev: DeviceSpec, prof: Profile, ws: Sequence[Workload]) -> list[PassResult | None]:
    """forward_many as one PassResult per workload (None: left to the scalar path)."""
    out: list[PassResult | None] = [None] * len(ws)
    for chunk in forward_many(spec, dev, prof, ws):
        for k, i in enumerate(chunk.index):
            out[i] = chunk.result(k)
    return out


def _priced_together(spec: ModelSpec, dev: DeviceSpec, prof: Profile, ws: Sequence[Workload], idx: list[int],
                     seq_array: bool) -> ManyPasses | None:
    """The passes of ws[i] for i in idx, priced over arrays; None where their kernels cannot be
    listed or priced as arrays (`seq_array` False: one seq, batch alone an array)."""
    w0 = ws[idx[0]]
    e, gpus, mode = w0.dtype_bytes, w0.gpus, w0.parallel
    cuda = prof.kind != "cpu"
    batch = np.array([float(ws[i].batch) for i in idx])
    seq = np.array([float(ws[i].seq) for i in idx]) if seq_array else w0.seq
    replicated = gpus > 1 and mode != "pipeline"
    shards = gpus if replicated and mode == "tensor" else 1
    run_batch = batch // gpus if replicated and mode == "data" else batch
    ops = template_ops(spec, run_batch, seq, e, shards, cuda)
    if ops is None:
        return None
    exact = _priceable(ops, len(idx))
    if not exact.all():   # sizes past float64's integers (or none priceable): those left to the scalar path
        some = [i for i, ok in zip(idx, exact.tolist()) if ok]
        return _priced_together(spec, dev, prof, ws, some, seq_array) if some else None
    # the host price lists the kernels of the whole batch on one GPU (host_model.host_price): it
    # depends on which kernels run, not on their sizes, so one workload's price holds for all
    # whose kernels the same arrays list
    if (shards, cuda) != (1, True) or run_batch is not batch:
        if template_ops(spec, batch, seq, e) is None:
            return None
    per_replica = gpus if replicated and mode == "data" else 1
    for k in {0, len(idx) - 1}:   # the arrays list the kernels the scalar path lists (first and last workload)
        w = ws[idx[k]]
        if not agrees(ops, forward_ops(spec, w.batch // per_replica, w.seq, e, shards, cuda), k):
            return None
    host = host_model.host_price(prof, spec, w0.batch, w0.seq, e)
    n = len(idx)
    try:
        mem = _memory(spec, dev, w0, replicated, run_batch, batch, seq, shards)
    except (TypeError, ValueError):   # a family's memory rule branches on a size: one by one
        return None
    with np.errstate(all="ignore"):
        if replicated:
            p = PassMany(spec, dev, prof, w0, n, host)
            _replicated_many(p, ops, run_batch, seq, cat=w0.batch > 1)
            p.summarize()
            _copy_replica_many(p, gpus)
        else:
            if gpus > 1:
                p = PassMany(spec, dev, prof, w0, n, host, hook_us=prof.dispatch_hook_us(spec.model_type, spec.family))
                place = pipeline_split(spec, w0, dev)
            else:
                p = PassMany(spec, dev, prof, w0, n, host)
                place = single_gpu_placement(spec, e)
            _placed_many(p, ops, place, batch, seq)
            p.summarize()
        return p.passes(idx, mem)


def _memory(spec: ModelSpec, dev: DeviceSpec, w0: Workload, replicated: bool, run_batch: Any, batch: Any, seq: Any,
            shards: int) -> list[memory.MemoryParts]:
    """The memory parts of each GPU (as schedule.forward_pass counts them), arrays over the workloads."""
    e = w0.dtype_bytes
    with np.errstate(all="ignore"):
        if replicated:
            return [memory.replica_parts(spec, run_batch * seq, seq, e, shards)] * w0.gpus
        place = pipeline_split(spec, w0, dev) if w0.gpus > 1 else single_gpu_placement(spec, e)
        return memory.placed_parts_per_gpu(spec, place, batch * seq, seq, e)
