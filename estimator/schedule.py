"""One forward pass as the GPUs run it: kernels priced, host and GPU time overlapped on the clock,
load per GPU summed for energy; one GPU, a pipeline over accelerate's device map, or replicas
(data / tensor parallel), or one step of model.generate. Returns a frozen PassResult: the
breakdown per operator group, time per GPU, runtime, host work, critical-path GPU time, energy
and the peak memory of each GPU; the Pass and its Clock stay inside this module."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from . import distributed, energy, host_model, memory
from .breakdown import GroupSum, GroupTotal, add_groups, group_sum, group_sums
from .cost import OpCost, price, price_all
from .decode import GENERATE_GROUP
from .device import GB, DeviceSpec
from .errors import EstimatorError
from .layers import groups_in
from .model import ModelSpec
from .ops import ForwardOps, LayerOps, Op, forward_ops
from .placement import Placement, pipeline_placement, single_gpu_placement
from .profile import ALLGATHER_HOST_US, Profile
from .timeline import Clock, GpuTime
from .workload import Workload

COMPUTE_KINDS = ("gemm", "sdpa")   # kernels the power cap slows down


def _compute(c: OpCost) -> bool:
    """A kernel the power model counts as compute: GEMMs and attention, and a grouped GEMM of MoE
    experts only where its FLOPs bound it (at few rows per expert it streams every expert's
    weights: a memory-bound kernel, at the copy loop's power)."""
    return c.op.kind in COMPUTE_KINDS or (c.op.kind == "grouped_gemm" and c.bound == "compute")
# kernels after which the host waits for the GPU: a blocking copy, a result read on the host
# (nonzero, bool of a tensor: the MoE expert loop, families/moe.py)
BLOCKING_KINDS = ("comm", "sync")


def comm_cost(name: str, nbytes: float, us: float, blocking: bool = True) -> OpCost:
    """A transfer: a p2p `.to()` blocks the host ("comm"); an NCCL collective does not."""
    kind = "comm" if blocking else "collective"
    return OpCost(Op(name, "communication", kind, 0.0, nbytes), us, "communication", 0.5)


def _steps(costs: list[OpCost], host_total_us: float) -> list[tuple[float, float, bool]]:
    """Host time spread over the kernels; copies between GPUs block the host (PyTorch's
    device-to-device .to() without non_blocking synchronizes the stream)."""
    per = host_total_us / max(1, len(costs))
    return [(per, c.gpu_us, c.op.kind in BLOCKING_KINDS) for c in costs]


@dataclass(frozen=True)
class PassResult:
    """What one pass (or one generate step) came to, fixed once the schedule has run."""
    groups: tuple[GroupSum, ...]       # per operator group, in the order they first ran
    gpu_times: tuple[GpuTime, ...]     # per GPU that ran kernels, in the order they first ran
    runtime_us: float                  # until both the host and the last GPU are done
    host_work_us: float                # host time spent launching (not waiting on blocking copies)
    critical_gpu_us: float             # kernel time on the critical path (pipeline: all stages)
    energy_j: float | None             # every GPU of the workload; None: no power model (CPU)
    memory_parts: tuple[memory.MemoryParts, ...]   # peak bytes per GPU by part; empty for a generate step
    host_source: str                   # where the host times come from (host_model.SOURCES)

    @property
    def peak_bytes_per_gpu(self) -> tuple[float, ...]:
        """Peak bytes of each GPU (empty for a generate step: generation.py counts it)."""
        return tuple(m.total for m in self.memory_parts)

    @property
    def bound(self) -> str:
        """host | gpu: what the critical path mostly waits on."""
        return "host" if self.host_work_us >= self.critical_gpu_us else "gpu"

    def breakdown(self) -> list[dict]:
        """Per operator group: group, time_ms, flops, bytes, kernels, bound (fresh dicts)."""
        return [g.to_dict() for g in self.groups]


@dataclass
class Pass:
    """One forward pass on one device kind: prices ops, runs the clock, sums energy."""
    spec: ModelSpec
    dev: DeviceSpec
    prof: Profile
    w: Workload
    hook_us: float = 0.0   # accelerate's dispatch hook per hooked module (pipeline over GPUs)
    slowdown: float = 1.0  # power-cap factor on compute kernels, once set_power_cap has run
    clock: Clock = field(init=False)
    layer_host_us: float = field(init=False)  # eager host time per decoder layer
    fixed_host_us: float = field(init=False)  # the rest of the pass, spread over its kernels
    host_source: str = field(init=False)      # where the host times come from (host_model.SOURCES)
    groups: dict[str, GroupTotal] = field(default_factory=dict)
    load: dict[int, energy.GpuLoad] = field(default_factory=dict)
    segments: list[tuple[int, list[OpCost], int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = Clock(sync=self.prof.kind == "cpu")
        price = host_model.host_price(self.prof, self.spec, self.w.batch, self.w.seq, self.w.dtype_bytes)
        (self.layer_host_us, self.fixed_host_us), self.host_source = price.times, price.source

    def price(self, ops: tuple[Op, ...]) -> list[OpCost]:
        """Kernel costs, compute kernels slowed by the power cap once set_power_cap has run."""
        ops = tuple(ops)
        key = ("costs", ops, self.dev.key, self.w.dtype, self.w.tf32)   # one lookup for the whole list
        costs = self.prof.memoized_list(key, lambda: price_all(ops, self.dev, self.prof, self.w.dtype, self.w.tf32))
        return self._slowed(costs)

    def _slowed(self, costs: list[OpCost]) -> list[OpCost]:
        if self.slowdown == 1.0:
            return costs
        s = self.slowdown   # OpCost built directly: dataclasses.replace costs 5x more
        return [OpCost(c.op, c.gpu_us * s, c.bound, c.utilization) if _compute(c) else c for c in costs]

    def set_power_cap(self, costs: list[OpCost], duty: float = 1.0) -> list[OpCost]:
        """Clock slowdown of compute kernels under the power limit, judged on one decoder layer
        of a GPU busy `duty` of the time (a pipeline stage waits the rest: the limiter averages
        over many passes, so a stage that works 1/N of the time rarely reaches it); returns the
        layer's kernels with it applied. The clock model is calibrated on a tensor-core GEMM loop;
        float32 without TF32 runs on the CUDA cores, whose clocks at the cap were never measured,
        so it gets none (H200 float32 clm-60m/200m/400m: -9/-1/-2 % without, -6/+7/+7 % with)."""
        if self.w.dtype == "float32" and not self.w.tf32:
            self.slowdown = 1.0
            return costs
        compute = sum(c.gpu_us for c in costs if _compute(c))
        memory_us = sum(c.gpu_us for c in costs) - compute
        window = max(compute + memory_us, self.layer_host_us) / duty
        power = self.prof.power
        self.slowdown = energy.power_cap_slowdown(compute, memory_us, window, power) if power else 1.0
        return self._slowed(costs)

    def layer_costs(self, ops: ForwardOps, duty: float = 1.0) -> list[tuple[LayerOps, list[OpCost]]]:
        """Each group of layers with its kernels priced, the power cap judged (set_power_cap) on a
        layer of the group with the most layers and applied to every group."""
        costs = [self.price(g.ops) for g in ops.layers]
        judged = max(range(len(costs)), key=lambda i: ops.layers[i].group.count)
        costs[judged] = self.set_power_cap(costs[judged], duty)
        return [(g, c if i == judged else self._slowed(c)) for i, (g, c) in enumerate(zip(ops.layers, costs))]

    def run_layers(self, gpu: int, layers: list[tuple[LayerOps, list[OpCost]]], host_us: float, first: int,
                   count: int, lead=None) -> None:
        """Decoder layers first .. first + count - 1 on `gpu`, group by group, `host_us` each
        (`lead(costs)`: the kernels with what leads each layer, such as accelerate's input copies)."""
        by_group = {g.group: c for g, c in layers}
        for group, n in groups_in(tuple(by_group), first, count):
            costs = by_group[group]
            self.run(gpu, lead(costs) if lead else costs, host_us, times=n)

    def run(self, gpu: int, costs: list[OpCost], host_us: float, times: int = 1) -> None:
        if not costs or times == 0:
            return
        steps = _steps(costs, host_us)
        if times == 1:
            self.clock.run(gpu, steps)
        else:
            self.clock.repeat(gpu, steps, times)
        self.segments.append((gpu, costs, times))

    def transfer(self, gpu: int, nbytes: float) -> None:
        """Copy activations to `gpu` (accelerate hook: host overhead, then a blocking p2p copy)."""
        t = self.prof.transfer_us(nbytes, self.dev.interconnect_gb_s)
        self.run(gpu, [comm_cost("p2p copy", nbytes, t)], self.hook_us)

    def summarize(self) -> None:
        """Breakdown per operator group and load per GPU, each distinct kernel list summed once."""
        sums: dict[int, tuple] = {}
        for gpu, costs, times in self.segments:
            summed = sums.get(id(costs))
            if summed is None:
                comp, mem = [], []
                for c in costs:
                    (comp if _compute(c) else mem).append(c)
                summed = sums[id(costs)] = (sum([c.gpu_us for c in comp]), sum([c.gpu_us for c in mem]),
                                            sum([c.gpu_us * c.utilization for c in comp]),
                                            sum([c.gpu_us * c.utilization for c in mem]), group_sums(costs))
            compute, memory_us, comp_occ, mem_occ, groups = summed
            load = self.load.get(gpu)
            if load is None:
                load = self.load[gpu] = energy.GpuLoad(slowdown=self.slowdown)
            load.compute_us += compute * times
            load.memory_us += memory_us * times
            load.compute_occ_us += comp_occ * times
            load.memory_occ_us += mem_occ * times
            add_groups(self.groups, groups, times)

    def result(self, mem: list[memory.MemoryParts] | tuple[memory.MemoryParts, ...]) -> PassResult:
        """The frozen result, once summarize() (and, for replicas, _copy_replica) has run."""
        busy_us = self.clock.busy_us
        busy = sum(busy_us.values()) / max(1, len(busy_us))
        critical_gpu_us = sum(busy_us.values()) if self.w.parallel == "pipeline" or self.w.gpus == 1 else busy
        return PassResult(tuple(group_sum(name, g) for name, g in self.groups.items()), self.clock.gpu_times(),
                          self.clock.total_us, self.clock.host_work_us, critical_gpu_us,
                          self._energy_j(self.w.gpus), tuple(mem), self.host_source)

    def _energy_j(self, gpus: int) -> float | None:
        """Joules of GPUs 0 .. gpus-1, summed GPU by GPU."""
        power = self.prof.power
        if not power:
            return None
        joules = 0.0
        for g in range(gpus):
            span = self.clock.last_us.get(g, 0.0) - self.clock.first_us.get(g, 0.0)
            joules += energy.gpu_energy_j(self.load.get(g, energy.GpuLoad(slowdown=self.slowdown)), span,
                                          self.clock.total_us, power)
        return joules


def pipeline_split(spec: ModelSpec, w: Workload, dev: DeviceSpec) -> Placement:
    """accelerate's balanced split; where the weights overflow the GPUs, the split they would get
    with unlimited memory (the estimate then reports that it does not fit)."""
    try:
        return pipeline_placement(spec, w.gpus, w.dtype_bytes, dev.memory_gb * GB)
    except EstimatorError:
        return pipeline_placement(spec, w.gpus, w.dtype_bytes, 1e18)


def _with_input_copies(p: Pass, layer: list[OpCost], place: Placement, g: int, seq: int) -> list[OpCost]:
    """A layer's kernels, led by the small inputs accelerate's hook copies to its GPU: the
    rotary cos/sin (`seq` positions) from the rotary module's GPU, position ids from the input GPU."""
    n = (2 if place.rotary_gpu >= 0 and g != place.rotary_gpu else 0) + (1 if g != place.embed_gpu else 0)
    if n == 0:
        return layer
    small = 2 * seq * p.spec.arch.rotary_copy_dim(p.spec) * p.w.dtype_bytes
    return [comm_cost("input copy", small, p.prof.small_copy_us(small))] * n + layer


def _placed(p: Pass, spec: ModelSpec, w: Workload, place: Placement) -> list[memory.MemoryParts]:
    """One GPU, or layers split over GPUs by accelerate's balanced map, run one after another:
    the hidden state walks the placement's stages once."""
    e, t = w.dtype_bytes, w.tokens
    ops = forward_ops(spec, w.batch, w.seq, e, cuda=p.prof.kind != "cpu")
    layers = p.layer_costs(ops, max(place.layers_per_gpu) / spec.layers)
    pre, post = p.price(ops.pre), p.price(ops.post)
    fixed_per_kernel = p.fixed_host_us / max(1, len(pre) + len(post))
    n_norm = len(post) - sum(1 for c in post if c.op.group == "lm head")
    parts = {"embeddings": pre, "final norm": post[:n_norm], "lm head": post[n_norm:]}
    walk_stages(p, place, parts, layers, p.layer_host_us, fixed_per_kernel, w.batch, w.seq, w.seq)
    return memory.placed_parts_per_gpu(spec, place, t, w.seq, e)


def walk_stages(p: Pass, place: Placement, parts: dict[str, list[OpCost]], layers: list[tuple[LayerOps, list[OpCost]]],
          layer_host_us: float, fixed_per_kernel: float, batch: int, rows: int, logit_rows: int,
          input_copies: Callable[..., Any] | None = None) -> None:
    """The hidden state (batch x `rows` positions) walks the placement's stages once: a copy to
    each new stage's GPU, its decoder layers group by group (`layers`: each group's kernels),
    each behind its input copies, the other parts
    where they are placed, and the logits (batch x `logit_rows` x vocab) back to GPU 0."""
    e = p.w.dtype_bytes
    hidden_bytes = batch * rows * p.spec.hidden * e
    cur, first = place.embed_gpu, 0
    for stage in place.stages:
        if stage.part == "rotary":   # rotary_emb's hook copies the hidden state there; the decoder
            p.transfer(stage.gpu, hidden_bytes)   # goes on with its own copy, so `cur` stays
            continue
        if stage.gpu != cur:
            p.transfer(stage.gpu, hidden_bytes)
            cur = stage.gpu
        if stage.part == "layers":
            p.run_layers(stage.gpu, layers, layer_host_us + p.hook_us, first, stage.layers,
                         lambda costs: (input_copies or _with_input_copies)(p, costs, place, stage.gpu, rows))
            first += stage.layers
        else:
            costs = parts[stage.part]
            p.run(stage.gpu, costs, fixed_per_kernel * len(costs))
    if place.head_gpu != 0:  # accelerate's io_same_device hook returns outputs on GPU 0
        p.transfer(0, batch * logit_rows * p.spec.vocab * e)


def _replicated(p: Pass, spec: ModelSpec, w: Workload) -> list[memory.MemoryParts]:
    """data / tensor parallel: every GPU runs the same kernels on its shard, one process each."""
    e = w.dtype_bytes
    shards = w.gpus if w.parallel == "tensor" else 1
    batch = w.batch // w.gpus if w.parallel == "data" else w.batch
    t = batch * w.seq
    ops = forward_ops(spec, batch, w.seq, e, shards, cuda=p.prof.kind != "cpu")
    layers = p.layer_costs(ops)
    pre, post = p.price(ops.pre), p.price(ops.post)
    fixed = p.fixed_host_us / max(1, len(pre) + len(post))
    p.run(0, pre, fixed * len(pre))
    link = p.dev.interconnect_gb_s
    layer_host = p.layer_host_us
    if shards > 1:  # two all-reduces of the hidden state per layer (after attention, after MLP)
        nbytes = t * spec.hidden * e
        ar = distributed.allreduce_us(p.prof, nbytes, w.gpus, w.nodes, link, w.network)
        layers = [(g, c + [comm_cost("all-reduce", nbytes, ar, blocking=False)] * 2) for g, c in layers]
        layer_host += distributed.tp_layer_host_us(spec.arch.tp_sharded_linears(spec))
    p.run_layers(0, layers, layer_host, 0, spec.layers)
    p.run(0, post, fixed * len(post))
    if shards > 1:  # all-gather of the vocab-sharded logits, then torch.cat rebuilding the vocab dim
        full = t * spec.vocab * e
        nbytes = (w.gpus - 1) / w.gpus * full
        gather = distributed.allgather_us(p.prof, nbytes, w.gpus, w.nodes, link, w.network)
        steps = [comm_cost("all-gather", nbytes, gather, blocking=False)]
        if batch > 1:
            steps.append(price(Op("logits cat", "lm head", "elementwise", 0.0, 2 * full), p.dev, p.prof, w.dtype, w.tf32))
        p.run(0, steps, ALLGATHER_HOST_US)
    return [memory.replica_parts(spec, t, w.seq, e, shards)] * w.gpus


def _copy_replica(p: Pass, gpus: int) -> None:
    """Every replica does what GPU 0 did: copy its timing and its load, once summarize() has
    filled the load (copied before, the replicas would count as idle in the energy)."""
    p.clock.mirror(0, gpus)
    for g in range(1, gpus):
        p.load[g] = replace(p.load[0])


def forward_pass(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload) -> PassResult:
    """One forward pass of `w` on one GPU, a pipeline or replicas, with the peak bytes of each GPU."""
    if w.gpus > 1 and w.parallel != "pipeline":
        p = Pass(spec, dev, prof, w)
        mem = _replicated(p, spec, w)
        p.summarize()
        _copy_replica(p, w.gpus)
        return p.result(mem)
    elif w.gpus > 1:
        p = Pass(spec, dev, prof, w, hook_us=prof.dispatch_hook_us(spec.model_type, spec.family))
        mem = _placed(p, spec, w, pipeline_split(spec, w, dev))
    else:
        p = Pass(spec, dev, prof, w)
        mem = _placed(p, spec, w, single_gpu_placement(spec, w.dtype_bytes))
    p.summarize()
    return p.result(mem)


def step_pass(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload, ops: ForwardOps,
              step_host_us: float, layer_host_us: float, lead_host_us: float = 0.0) -> PassResult:
    """One forward of `ops` on GPU 0 on a fresh clock, drained at the end (a step of
    model.generate, generation.py): `lead_host_us` of host-only work first (generate's set-up),
    `step_host_us` spread over the kernels outside the layers, `layer_host_us` per decoder layer.
    Its memory is counted by generation.py (`memory_parts` stays empty)."""
    p = Pass(spec, dev, prof, w)
    p.clock.host_only(lead_host_us)
    layers = p.layer_costs(ops)
    pre, post = p.price(ops.pre), p.price(ops.post)
    fixed = step_host_us / max(1, len(pre) + len(post))
    p.run(0, pre, fixed * len(pre))
    p.run_layers(0, layers, layer_host_us, 0, spec.layers)
    p.run(0, post, fixed * len(post))
    p.summarize()
    return p.result(())


def placed_step_pass(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload, ops: ForwardOps, rows: int,
                     place: Placement, step_host_us: float, layer_host_us: float,
                     lead_host_us: float = 0.0) -> PassResult:
    """A step of model.generate over accelerate's pipeline placement, on a fresh clock drained at
    the end: as `step_pass`, but `rows` positions per sequence (the prompt, or 1 in a decode step)
    walk the stages as in a forward pass (hidden-state copies and accelerate's hooks, each layer's
    K/V cache on its own GPU), the last position's logits come back to GPU 0 and the sampling
    kernels (group "generate") run there, where accelerate returns the logits."""
    p = Pass(spec, dev, prof, w, hook_us=prof.dispatch_hook_us(spec.model_type, spec.family))
    p.clock.host_only(lead_host_us)
    layers = p.layer_costs(ops, max(place.layers_per_gpu) / spec.layers)
    pre, post = p.price(ops.pre), p.price(ops.post)
    fixed = step_host_us / max(1, len(pre) + len(post))
    by_group = {g: [c for c in post if c.op.group == g] for g in ("final norm", "lm head", GENERATE_GROUP)}
    parts = {"embeddings": pre, "final norm": by_group["final norm"], "lm head": by_group["lm head"]}
    walk_stages(p, place, parts, layers, layer_host_us, fixed, w.batch, rows, 1)
    sampling = by_group[GENERATE_GROUP]
    p.run(0, sampling, fixed * len(sampling))
    p.summarize()
    return p.result(())
