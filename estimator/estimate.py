"""estimate(): runtime, peak memory per GPU, energy per token and throughput of one forward pass."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from . import energy, memory
from .cost import OpCost, price
from .device import DeviceSpec, get_device
from .errors import EstimatorError
from .model import ModelSpec, load_model
from .ops import ForwardOps, Op, forward_ops
from .placement import pipeline_placement
from .profile import Profile, profile_for
from .timeline import Clock
from .workload import Workload

GB = 1e9


@dataclass
class Estimate:
    model: str
    device: str
    workload: dict
    runtime_ms: float
    memory_gb: float
    memory_gb_per_gpu: list[float]
    energy_j_per_token: float | None   # None: no power model (CPU)
    throughput_tokens_per_s: float
    fits: bool
    host_ms: float
    gpu_busy_ms: float                  # kernel time on the critical path (pipeline: all stages)
    bound: str                          # host | gpu: what the critical path mostly waits on
    params: int
    profile: str
    breakdown: list[dict] = field(default_factory=list)  # per group: time_ms, bound, flops, bytes
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _validate(spec: ModelSpec, w: Workload) -> None:
    if w.seq > spec.max_positions:
        raise EstimatorError(f"seq {w.seq} exceeds the {spec.max_positions} positions of {spec.name}")
    if w.gpus == 1:
        return
    if w.parallel == "pipeline" and w.gpus > spec.layers:
        raise EstimatorError(f"pipeline over {w.gpus} GPUs needs at least {w.gpus} layers; {spec.name} has {spec.layers}")
    if w.parallel == "data" and w.batch % w.gpus:
        raise EstimatorError(f"data parallel over {w.gpus} GPUs needs a batch divisible by {w.gpus}, got {w.batch}")
    if w.parallel == "tensor" and (spec.heads % w.gpus or spec.kv_heads % w.gpus):
        raise EstimatorError(f"tensor parallel over {w.gpus} GPUs needs heads ({spec.heads}) and KV heads "
                             f"({spec.kv_heads}) divisible by {w.gpus}")


def comm_cost(name: str, nbytes: float, us: float, blocking: bool = True) -> OpCost:
    """A transfer: a p2p `.to()` blocks the host ("comm"); an NCCL collective does not."""
    kind = "comm" if blocking else "collective"
    return OpCost(Op(name, "communication", kind, 0.0, nbytes), us, "communication", 0.5)


def _steps(costs: list[OpCost], host_total_us: float) -> list[tuple[float, float, bool]]:
    """Host time spread over the kernels; copies between GPUs block the host (PyTorch's
    device-to-device .to() without non_blocking synchronizes the stream)."""
    per = host_total_us / max(1, len(costs))
    return [(per, c.gpu_us, c.op.kind == "comm") for c in costs]


def _group_sums(costs: list[OpCost]) -> dict[str, list]:
    """group -> [gpu us, flops, bytes, kernels, {bound: us}] for one pass over `costs`."""
    sums: dict[str, list] = {}
    for c in costs:
        g = sums.setdefault(c.op.group, [0.0, 0.0, 0.0, 0, {}])
        g[0] += c.gpu_us
        g[1] += c.op.flops
        g[2] += c.op.bytes
        g[3] += 1
        g[4][c.bound] = g[4].get(c.bound, 0.0) + c.gpu_us
    return sums


def _add_groups(groups: dict, sums: dict[str, list], times: int) -> None:
    for name, (us, flops, nbytes, kernels, bounds) in sums.items():
        g = groups.setdefault(name, {"group": name, "time_ms": 0.0, "flops": 0.0, "bytes": 0.0,
                                     "kernels": 0, "_bound": {}})
        g["time_ms"] += us * times / 1e3
        g["flops"] += flops * times
        g["bytes"] += nbytes * times
        g["kernels"] += kernels * times
        for k, v in bounds.items():
            g["_bound"][k] = g["_bound"].get(k, 0.0) + v * times


class _Pass:
    """One forward pass on one device kind: prices ops, runs the clock, sums energy."""

    def __init__(self, spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload):
        self.spec, self.dev, self.prof, self.w = spec, dev, prof, w
        self.clock = Clock(sync=prof.kind == "cpu")
        self.groups: dict = {}
        self.load: dict[int, energy.GpuLoad] = {}
        self.segments: list[tuple[int, list[OpCost], int]] = []
        host = prof.host(spec.model_type, spec.family)
        self.layer_host_us = float(host.get("per_layer_us", 0.0))
        self.fixed_host_us = float(host.get("fixed_us", 0.0))
        hooks = prof.raw.get("dispatch") or {}
        self.hook_us = float(hooks.get(spec.model_type, hooks.get(spec.family, 0.0)))
        self.power = prof.power
        self.slowdown = 1.0

    def price(self, ops: tuple[Op, ...]) -> list[OpCost]:
        """Kernel costs, compute kernels slowed by the power cap once set_power_cap has run."""
        return self._slowed([price(op, self.dev, self.prof, self.w.dtype, self.w.tf32) for op in ops])

    def _slowed(self, costs: list[OpCost]) -> list[OpCost]:
        if self.slowdown == 1.0:
            return costs
        return [replace(c, gpu_us=c.gpu_us * self.slowdown) if c.op.kind in ("gemm", "sdpa") else c for c in costs]

    def set_power_cap(self, costs: list[OpCost], duty: float = 1.0) -> list[OpCost]:
        """Clock slowdown of compute kernels under the power limit, judged on one decoder layer
        of a GPU busy `duty` of the time (a pipeline stage waits the rest: the limiter averages
        over many passes, so a stage that works 1/N of the time rarely reaches it); returns the
        layer's kernels with it applied."""
        compute = sum(c.gpu_us for c in costs if c.op.kind in ("gemm", "sdpa"))
        memory = sum(c.gpu_us for c in costs) - compute
        window = max(compute + memory, self.layer_host_us) / duty
        self.slowdown = energy.power_cap_slowdown(compute, memory, window, self.power) if self.power else 1.0
        return self._slowed(costs)

    def run(self, gpu: int, costs: list[OpCost], host_us: float, times: int = 1) -> None:
        if not costs or times == 0:
            return
        steps = _steps(costs, host_us)
        if times == 1:
            self.clock.run(gpu, steps)
        else:
            self.clock.repeat(gpu, steps, times)
        self.segments.append((gpu, costs, times))

    def summarize(self) -> None:
        """Breakdown per operator group and load per GPU, each distinct kernel list summed once."""
        sums: dict[int, tuple] = {}
        for gpu, costs, times in self.segments:
            if id(costs) not in sums:
                comp = [c for c in costs if c.op.kind in ("gemm", "sdpa")]
                mem = [c for c in costs if c.op.kind not in ("gemm", "sdpa")]
                sums[id(costs)] = (sum(c.gpu_us for c in comp), sum(c.gpu_us for c in mem),
                                   sum(c.gpu_us * c.utilization for c in comp),
                                   sum(c.gpu_us * c.utilization for c in mem), _group_sums(costs))
            compute, memory_us, comp_occ, mem_occ, groups = sums[id(costs)]
            load = self.load.setdefault(gpu, energy.GpuLoad(slowdown=self.slowdown))
            load.compute_us += compute * times
            load.memory_us += memory_us * times
            load.compute_occ_us += comp_occ * times
            load.memory_occ_us += mem_occ * times
            _add_groups(self.groups, groups, times)

    def transfer(self, gpu: int, nbytes: float) -> None:
        """Copy activations to `gpu` (accelerate hook: host overhead, then a blocking p2p copy)."""
        t = self.prof.p2p_us(nbytes)
        if t is None:  # no measured link: datasheet bandwidth of the interconnect
            t = nbytes / (self.dev.interconnect_gb_s * 1e9) * 1e6 + 10.0
        self.run(gpu, [comm_cost("p2p copy", nbytes, t)], self.hook_us)

    def energy_j(self, gpus: int) -> float | None:
        if not self.power:
            return None
        joules = 0.0
        for g in range(gpus):
            span = self.clock.last_us.get(g, 0.0) - self.clock.first_us.get(g, 0.0)
            joules += energy.gpu_energy_j(self.load.get(g, energy.GpuLoad(slowdown=self.slowdown)), span,
                                          self.clock.total_us, self.power)
        return joules


def _placement(spec: ModelSpec, w: Workload, dev: DeviceSpec):
    """accelerate's balanced split; where the weights overflow the GPUs, the split they would get
    with unlimited memory (the estimate then reports that it does not fit)."""
    try:
        return pipeline_placement(spec, w.gpus, w.dtype_bytes, dev.memory_gb * GB)
    except EstimatorError:
        return pipeline_placement(spec, w.gpus, w.dtype_bytes, 1e18)


def _with_input_copies(p: "_Pass", layer: list[OpCost], place, g: int, w: Workload) -> list[OpCost]:
    """A layer's kernels, led by the small inputs accelerate's hook copies to its GPU: the
    rotary cos/sin from the rotary module's GPU, position ids from the input GPU."""
    if place is None:
        return layer
    small = 2 * w.seq * 128 * w.dtype_bytes
    n = (2 if place.rotary_gpu >= 0 and g != place.rotary_gpu else 0) + (1 if g != place.embed_gpu else 0)
    t = p.prof.p2p_us(small) or 15.0
    return [comm_cost("input copy", small, t)] * n + layer


def _single_or_pipeline(p: _Pass, ops: ForwardOps, spec: ModelSpec, w: Workload) -> list[float]:
    """One GPU, or layers split over GPUs by accelerate's balanced map, run one after another."""
    e, t = w.dtype_bytes, w.tokens
    place = _placement(spec, w, p.dev) if w.gpus > 1 else None
    duty = max(place.layers_per_gpu) / spec.layers if place else 1.0
    layer = p.set_power_cap(p.price(ops.layer), duty)
    pre, post = p.price(ops.pre), p.price(ops.post)
    fixed_per_kernel = p.fixed_host_us / max(1, len(pre) + len(post))
    hidden_bytes = t * spec.hidden * e
    embed_gpu = place.embed_gpu if place else 0
    p.run(embed_gpu, pre, fixed_per_kernel * len(pre))
    cur = embed_gpu
    if place and place.rotary_gpu >= 0 and place.rotary_gpu != embed_gpu:
        p.transfer(place.rotary_gpu, hidden_bytes)  # rotary_emb's hook moves the hidden state to it
    per_gpu_layers = place.layers_per_gpu if place else (spec.layers,)
    for g, n in enumerate(per_gpu_layers):
        if n == 0:
            continue
        if g != cur:
            p.transfer(g, hidden_bytes)
            cur = g
        p.run(g, _with_input_copies(p, layer, place, g, w), p.layer_host_us + (p.hook_us if place else 0.0), times=n)
    norm_gpu, head_gpu = (place.final_norm_gpu, place.head_gpu) if place else (0, 0)
    n_norm = len(post) - sum(1 for c in post if c.op.group == "lm head")
    for g, costs in ((norm_gpu, post[:n_norm]), (head_gpu, post[n_norm:])):
        if g != cur:
            p.transfer(g, hidden_bytes)
            cur = g
        p.run(g, costs, fixed_per_kernel * len(costs))
    logits = t * spec.vocab * e
    if head_gpu != 0:  # accelerate's io_same_device hook returns outputs on GPU 0
        p.transfer(0, logits)
    weights = place.weight_bytes_per_gpu if place else (spec.param_count() * e,)
    mem = []
    for g in range(w.gpus):
        n = per_gpu_layers[g]
        peaks = [memory.layer_working_set(spec, t, e) if n else 0.0]
        if n and g == embed_gpu:
            peaks[0] += memory.embedding_outputs(spec, t, w.seq, e)
        if g == norm_gpu:
            peaks.append(memory.final_norm_working_set(spec, t, e))
        if g == head_gpu:
            peaks.append(memory.head_working_set(spec, t, e))
        if g == 0 and head_gpu != 0:
            peaks.append(logits)
        used = weights[g] > 0 or n > 0 or g == 0
        extra = t * 8 if g == 0 else 0  # input_ids (int64)
        mem.append(weights[g] + memory.kv_cache_bytes(spec, t, e, n) + max(peaks) + extra
                   + (memory.CUBLAS_WORKSPACE_BYTES if used else 0))
    return mem


def _replicated(p: _Pass, spec: ModelSpec, w: Workload) -> list[float]:
    """data / tensor parallel: every GPU runs the same kernels on its shard, one process each."""
    e = w.dtype_bytes
    shards = w.gpus if w.parallel == "tensor" else 1
    batch = w.batch // w.gpus if w.parallel == "data" else w.batch
    t = batch * w.seq
    ops = forward_ops(spec, batch, w.seq, e, shards)
    layer = p.set_power_cap(p.price(ops.layer))
    pre, post = p.price(ops.pre), p.price(ops.post)
    fixed = p.fixed_host_us / max(1, len(pre) + len(post))
    p.run(0, pre, fixed * len(pre))
    if shards > 1:  # two all-reduces of the hidden state per layer (after attention, after MLP)
        nbytes = t * spec.hidden * e
        ar = p.prof.allreduce_us(nbytes, w.gpus)
        if ar is None:  # ring all-reduce moves 2(n-1)/n of the data over each GPU's link
            ar = 2 * (w.gpus - 1) / w.gpus * nbytes / (p.dev.interconnect_gb_s * 1e9) * 1e6 + 20.0
        layer = layer + [comm_cost("all-reduce", nbytes, ar, blocking=False)] * 2
    p.run(0, layer, p.layer_host_us, times=spec.layers)
    p.run(0, post, fixed * len(post))
    if shards > 1:  # all-gather of the vocab-sharded logits
        nbytes = (w.gpus - 1) / w.gpus * t * spec.vocab * e
        p.run(0, [comm_cost("all-gather", nbytes, nbytes / (p.dev.interconnect_gb_s * 1e9) * 1e6, blocking=False)], 5.0)
    layer_w = spec.layers * spec.layer_params() / shards
    rest = spec.embedding_params() / shards + spec.head_params() / shards + spec.norm_params()
    weights = (layer_w + rest) * e
    peak = max(memory.layer_working_set(spec, t, e, shards) + memory.embedding_outputs(spec, t, w.seq, e),
               memory.head_working_set(spec, t, e, 1),
               memory.final_norm_working_set(spec, t, e))
    per = weights + memory.kv_cache_bytes(spec, t, e, spec.layers, shards) + peak + t * 8 + memory.CUBLAS_WORKSPACE_BYTES
    # every GPU does the same: copy the per-GPU timing so energy counts all of them
    for g in range(1, w.gpus):
        p.clock.busy_us[g] = p.clock.busy_us[0]
        p.clock.first_us[g] = p.clock.first_us[0]
        p.clock.last_us[g] = p.clock.last_us[0]
        p.load[g] = p.load.get(0, energy.GpuLoad(slowdown=p.slowdown))
    return [per] * w.gpus


def estimate(model: str | ModelSpec, device: str | DeviceSpec, workload: Workload | None = None,
             profile: str | Profile | None = None) -> Estimate:
    """Predict one forward pass of `model` on `device` for `workload` (defaults: 16 x 1024, 1 GPU)."""
    spec = load_model(model) if isinstance(model, str) else model
    dev = get_device(device) if isinstance(device, str) else device
    w = workload or Workload(dtype=spec.dtype or "float16")
    _validate(spec, w)
    prof = profile if isinstance(profile, Profile) else profile_for(dev, profile)
    p = _Pass(spec, dev, prof, w)
    if w.gpus == 1 or w.parallel == "pipeline":
        mem = _single_or_pipeline(p, forward_ops(spec, w.batch, w.seq, w.dtype_bytes), spec, w)
    else:
        mem = _replicated(p, spec, w)
    p.summarize()
    runtime_us = p.clock.total_us
    runtime_s = runtime_us * 1e-6
    joules = p.energy_j(w.gpus)
    busy = sum(p.clock.busy_us.values()) / max(1, len(p.clock.busy_us))
    host = p.clock.host_work_us
    critical_gpu_us = sum(p.clock.busy_us.values()) if w.parallel == "pipeline" or w.gpus == 1 else busy
    breakdown = []
    for g in p.groups.values():
        bounds = g.pop("_bound")
        g["bound"] = max(bounds, key=bounds.get) if bounds else "host"
        breakdown.append(g)
    mem_gb = [m / GB for m in mem]
    notes = []
    fits = max(mem_gb) <= dev.memory_gb
    if not fits:
        notes.append(f"does not fit: needs {max(mem_gb):.1f} GB on one GPU, {dev.name} has {dev.memory_gb:g} GB")
    return Estimate(
        model=spec.name, device=dev.name, workload=dict(batch=w.batch, seq=w.seq, dtype=w.dtype, gpus=w.gpus,
                                                        parallel=w.parallel if w.gpus > 1 else "single"),
        runtime_ms=runtime_us / 1e3, memory_gb=max(mem_gb), memory_gb_per_gpu=mem_gb,
        energy_j_per_token=None if joules is None else joules / w.tokens, throughput_tokens_per_s=w.tokens / runtime_s, fits=fits,
        host_ms=host / 1e3, gpu_busy_ms=critical_gpu_us / 1e3, bound="host" if host >= critical_gpu_us else "gpu",
        params=spec.param_count(), profile=prof.source, breakdown=breakdown, notes=notes)
