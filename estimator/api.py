"""estimate(): runtime, peak memory per GPU, energy per token and throughput of one forward pass."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .device import GB, DeviceSpec, ambiguity_note, get_device
from .memory import PARTS, MemoryParts
from .errors import EstimatorError
from .front_door import MAX_LAYERS, check_instance, check_path_or
from .layers import masked_note
from . import fp8, host_model, ranges
from .model import ModelSpec, load_model
from .profile import Profile, profile_for
from .result_cache import cached_estimate
from .spec import ModelSpec as AnySpec
from .schedule import PassResult, forward_pass
from .workload import Workload

if TYPE_CHECKING:
    from .generation import Generation


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
    # per GPU, memory_gb_per_gpu by part (memory.PARTS: weights, kv_cache, activations, logits,
    # workspace, input_ids; activations or logits is the working set at the peak, the other 0):
    # the parts add up to that GPU's memory_gb_per_gpu to float rounding
    memory_breakdown_gb: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Workload(new_tokens=N) only (model.generate; runtime_ms is then the whole call and
    # energy_j_per_token / throughput count generated tokens): None for a plain forward
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    generate_ms: float | None = None
    generate_energy_j_per_token: float | None = None
    phases: list[dict] = field(default_factory=list)  # prefill / decode: steps, time_ms, host_ms, energy_j
    # [low, high]: the 10th-90th percentile range of each figure, from the measured errors of the
    # estimate's regime (estimator/ranges.py); None where the figure is None or no range is known
    runtime_ms_range: list[float] | None = None
    memory_gb_range: list[float] | None = None
    energy_j_per_token_range: list[float] | None = None
    ttft_ms_range: list[float] | None = None
    tpot_ms_range: list[float] | None = None
    # where the host time comes from (host_model.SOURCES / GENERATE_SOURCES): "measured" or the
    # fallback it rests on (its note says which, its ranges are widened by what it misses by)
    host_source: str = "measured"

    def to_dict(self) -> dict:
        """Every field; a plain forward's dict leaves out the generation fields (all empty)."""
        d = asdict(self)
        if self.ttft_ms is None:
            for k in GENERATION_FIELDS:
                d.pop(k)
        return d


GENERATION_FIELDS = ("ttft_ms", "tpot_ms", "generate_ms", "generate_energy_j_per_token", "phases",
                     "ttft_ms_range", "tpot_ms_range")


def does_not_fit_note(needed_gb: float, dev: DeviceSpec) -> str:
    """The note of an estimate whose busiest GPU needs more than torch can allocate on `dev`."""
    return (f"does not fit: needs {needed_gb:.1f} GB on one GPU, {dev.name} has {dev.memory_usable_gb:g} GB "
            f"usable ({dev.memory_gb:g} GB sold)")


def check_profile_kind(prof: Profile, dev: DeviceSpec) -> None:
    """EstimatorError when a CPU calibration would price a GPU (or a GPU's a CPU): its kernel and
    host times are another machine's, the estimate would be off by orders of magnitude."""
    if prof.kind != dev.kind:
        raise EstimatorError(f"profile {prof.source} is a {prof.kind.upper()} calibration ({prof.device_name}), "
                             f"{dev.name} is a {dev.kind.upper()}: calibrate on a machine with that "
                             f"{dev.kind.upper()} (python -m estimator calibrate) or leave --profile out")


MAX_GPUS_PER_NODE = 16   # the largest single machines (HGX-2, DGX-2); common ones hold 8


def validate(spec: ModelSpec, w: Workload) -> None:
    """Raise EstimatorError for a workload the model or the parallel mode cannot run."""
    if spec.layers > MAX_LAYERS:   # every layer is walked: 10^7 of them would run for minutes
        raise EstimatorError(f"{spec.name} has {spec.layers:,} layers, more than the {MAX_LAYERS:,} an estimate "
                             f"handles (the largest models have a few hundred)")
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
    if w.gpus_per_node > MAX_GPUS_PER_NODE:  # no machine holds more: spread them with nodes
        raise EstimatorError(f"{w.parallel} parallel over {w.gpus_per_node} GPUs on one machine: at most "
                             f"{MAX_GPUS_PER_NODE} GPUs share a machine, spread them over nodes (Workload nodes=N)")


def estimate(model: str | ModelSpec, device: str | DeviceSpec, workload: Workload | None = None,
             profile: str | Profile | None = None, transfer_from: str | DeviceSpec | None = None) -> Estimate:
    """Predict one forward pass of `model` on `device` for `workload` (defaults: 16 x 1024, 1 GPU).

    `profile`: a calibration profile (object or JSON path) instead of the device's own;
    `transfer_from`: estimate through the transfer model from that device's shipped calibration
    (estimator/transfer.py), ignoring the device's own profile. `Estimate.device` is the device's
    full name; a name that picks one of several devices ("H100": the SXM5 part) adds a note saying so."""
    asked_device = device
    model = check_path_or(model, "model", (AnySpec,), "a model name, a config.json path or a ModelSpec", False)
    device = check_path_or(device, "device", (DeviceSpec,), "a device name, a device .json path or a DeviceSpec", False)
    check_instance(workload, "workload", (Workload, type(None)), "an estimator.Workload (Workload(batch=4, ...)) or None")
    profile = check_path_or(profile, "profile", (Profile,), "a profile JSON path or a Profile")
    transfer_from = check_path_or(transfer_from, "transfer_from", (DeviceSpec,), "a device name or a DeviceSpec")
    spec = load_model(model) if isinstance(model, str) else model
    dev = get_device(device) if isinstance(device, str) else device
    w = workload or Workload(dtype=spec.dtype or "float16")
    validate(spec, w)
    prof = profile if isinstance(profile, Profile) else profile_for(dev, profile, transfer_from)
    check_profile_kind(prof, dev)
    return priced(spec, dev, prof, w, asked_device if isinstance(asked_device, str) else None)


def priced(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload, asked_device: str | None = None) -> Estimate:
    """The whole estimate of a validated workload on a resolved profile (`asked_device`: the
    device name the caller gave, for the note on a name that picks one of several devices); a
    workload priced before on this profile comes from its cache of results (result_cache.py),
    always as a copy of its own."""
    return cached_estimate(prof.results, spec, dev, w, asked_device,
                           lambda: _whole_estimate(spec, dev, prof, w, asked_device))


def _whole_estimate(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload, asked_device: str | None) -> Estimate:
    weights_note = []
    if spec.fp8 is not None:   # FP8 weights stay FP8 from compute capability 8.9 on, else dequantized on load
        kept = fp8.on_device(spec.fp8, dev.architecture, dev.kind)
        weights_note = [fp8.note(not kept, dev.architecture)]
        spec = spec if kept else replace(spec, fp8=None)
    est = _estimate(spec, dev, prof, w)
    est.notes[:0] = weights_note
    return finished(est, spec, dev, prof, w, asked_device)


def finished(est: Estimate, spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload,
             asked_device: str | None) -> Estimate:
    """`est` (of `spec` as given) with the notes on its inputs and its ranges: the whole estimate."""
    est.notes[:0] = input_notes(spec, dev, prof, w)
    picked = ambiguity_note(asked_device) if asked_device is not None else None
    if picked:
        est.notes.append(picked)
    if est.workload["parallel"] == "tensor" and not spec.arch.has_tp_plan:
        est.notes.append(no_tp_plan_note(spec))
    return ranges.attach(est, prof)


def no_tp_plan_note(spec: ModelSpec) -> str:
    """The note of a tensor-parallel estimate of a family transformers has no tp_plan for."""
    return (f"transformers has no tensor-parallel plan for {spec.model_type} ({spec.name}): "
            "from_pretrained(tp_plan='auto') refuses it, so this prices a Megatron-style sharding "
            "transformers cannot run as is (the benchmark skips such cases)")


def input_notes(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload) -> list[str]:
    """What the estimate priced other than what its inputs say: a config dtype that is not
    priced (float8, int8, ...). A profile of another kind of device is refused (check_profile_kind)."""
    notes = []
    if spec.config_dtype is not None:
        notes.append(f"the config's torch_dtype {spec.config_dtype!r} is not one the estimator prices "
                     f"(float16, bfloat16, float32): priced as {w.dtype}")
    return notes


def priced_spec(spec: ModelSpec, w: Workload) -> ModelSpec:
    """The model as `w` runs it: without a K/V cache for use_cache=False, an MoE's experts
    implementation applied."""
    if not w.use_cache and spec.use_cache:   # model(input_ids, use_cache=False): no K/V cache
        spec = replace(spec, use_cache=False)
    return spec.arch.with_experts(spec, w.experts_implementation)   # MoE: the experts path priced


def _estimate(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload) -> Estimate:
    """The estimate of a validated workload with the profile resolved (no ranges yet)."""
    spec = priced_spec(spec, w)
    if w.new_tokens:
        return _generation_estimate(spec, dev, prof, w)
    return forward_estimate(spec, dev, prof, w, forward_pass(spec, dev, prof, w))


def forward_estimate(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload, r: PassResult) -> Estimate:
    """The Estimate of a forward pass of `spec` (priced_spec) that came to `r` (no ranges yet);
    estimate_many builds its array-priced passes' estimates here too (forward_many.py)."""
    mem_gb = [m / GB for m in r.peak_bytes_per_gpu]
    parts_gb = [memory_parts_gb(m) for m in r.memory_parts]
    notes = spec.arch.estimate_notes(spec, w.batch * w.seq // (w.gpus if w.parallel == "data" else 1))
    notes += model_masked_note(spec, w.seq)
    host_note = host_model.source_note(spec, r.host_source)
    if host_note:
        notes.append(host_note)
    source = r.host_source
    fits = max(mem_gb) <= dev.memory_usable_gb
    if not fits:
        notes.append(does_not_fit_note(max(mem_gb), dev))
    return Estimate(
        model=spec.name, device=dev.name, workload=_workload_dict(spec, w, parallel=w.parallel if w.gpus > 1 else "single"),
        runtime_ms=r.runtime_us / 1e3, memory_gb=max(mem_gb), memory_gb_per_gpu=mem_gb,
        energy_j_per_token=None if r.energy_j is None else r.energy_j / w.tokens,
        throughput_tokens_per_s=w.tokens / (r.runtime_us * 1e-6), fits=fits, host_ms=r.host_work_us / 1e3,
        gpu_busy_ms=r.critical_gpu_us / 1e3, bound=r.bound, params=spec.param_count(), profile=prof.source,
        breakdown=r.breakdown(), memory_breakdown_gb=parts_gb, notes=notes, host_source=source)


def forward_estimates_many(spec: ModelSpec, dev: DeviceSpec, prof: Profile, ws: list[Workload],
                           passes: Any) -> tuple[list[Estimate], dict]:
    """forward_estimate of each workload ws[i] for i in passes.index, from its pass priced
    together with the others over arrays (forward_many.ManyPasses), column by column: the same
    fields and floats as forward_estimate of passes.result(k) (tests/test_forward_many.py);
    with the figures ranges are set on, as arrays (for finished_many)."""
    import numpy as np
    n = len(passes.index)
    mine = [ws[i] for i in passes.index]
    mem = [np.broadcast_to(m.total / GB, (n,)) for m in passes.memory_parts]
    mem_gb = [g.tolist() for g in mem]
    busiest = np.max(np.array(mem), axis=0).tolist()
    parts_gb = [{k: np.broadcast_to(getattr(m, k) / GB, (n,)).tolist() for k in PARTS} for m in passes.memory_parts]
    tokens = np.array([float(w.tokens) for w in mine])
    energy = None if passes.energy_j is None else (passes.energy_j / tokens).tolist()
    throughput = (tokens / (passes.runtime_us * 1e-6)).tolist()
    runtime_ms, host_ms = (passes.runtime_us / 1e3).tolist(), (passes.host_work_us / 1e3).tolist()
    busy_ms = (passes.critical_gpu_us / 1e3).tolist()
    host_bound = (passes.host_work_us >= passes.critical_gpu_us).tolist()
    host_note = host_model.source_note(spec, passes.host_source)
    params, name, device, source = spec.param_count(), spec.name, dev.name, prof.source
    parallel = mine[0].parallel if mine[0].gpus > 1 else "single"
    per_tokens: dict[int, list[str]] = {}
    per_seq: dict[int, list[str]] = {}
    # the dicts of each workload's breakdown and memory parts, made column by column
    breakdowns = list(zip(*[[{"group": g, "time_ms": t_, "flops": f_, "bytes": b_, "kernels": kernels, "bound": bd_}
                              for t_, f_, b_, bd_ in zip(t, f, b, bd)]
                             for g, t, f, b, kernels, bd in passes.groups])) or [()] * n
    memories = list(zip(*[[dict(zip(PARTS, row)) for row in zip(*(parts[p] for p in PARTS))] for parts in parts_gb]))
    per_gpu = list(zip(*mem_gb))
    template = _workload_dict(spec, mine[0], parallel=parallel)
    usable = dev.memory_usable_gb
    out = []
    for k, w in enumerate(mine):
        tokens_per_gpu = w.batch * w.seq // (w.gpus if w.parallel == "data" else 1)
        notes = per_tokens.get(tokens_per_gpu)
        if notes is None:
            notes = per_tokens[tokens_per_gpu] = spec.arch.estimate_notes(spec, tokens_per_gpu)
        masked = per_seq.get(w.seq)
        if masked is None:
            masked = per_seq[w.seq] = model_masked_note(spec, w.seq)
        notes = notes + masked
        if host_note:
            notes.append(host_note)
        fits = busiest[k] <= usable
        if not fits:
            notes.append(does_not_fit_note(busiest[k], dev))
        workload = template.copy()   # _workload_dict's keys, in its order
        workload["batch"], workload["seq"] = w.batch, w.seq
        out.append(Estimate(
            model=name, device=device, workload=workload,
            runtime_ms=runtime_ms[k], memory_gb=busiest[k], memory_gb_per_gpu=list(per_gpu[k]),
            energy_j_per_token=None if energy is None else energy[k], throughput_tokens_per_s=throughput[k],
            fits=fits, host_ms=host_ms[k], gpu_busy_ms=busy_ms[k], bound="host" if host_bound[k] else "gpu",
            params=params, profile=source, breakdown=list(breakdowns[k]), memory_breakdown_gb=list(memories[k]),
            notes=notes, host_source=passes.host_source))
    figures = {"runtime_ms": passes.runtime_us / 1e3, "memory_gb": np.array(busiest), "ttft_ms": None, "tpot_ms": None,
               "energy_j_per_token": None if energy is None else passes.energy_j / tokens}
    return out, figures


def finished_many(ests: list[Estimate], spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload,
                  asked_device: str | None, figures: dict | None = None) -> list[Estimate]:
    """finished of estimates of workloads that differ from `w` only in batch and seq (`figures`:
    their ranged figures as arrays, forward_estimates_many's)."""
    before = input_notes(spec, dev, prof, w)
    after = []
    picked = ambiguity_note(asked_device) if asked_device is not None else None
    if picked:
        after.append(picked)
    if w.gpus > 1 and w.parallel == "tensor" and not spec.arch.has_tp_plan:
        after.append(no_tp_plan_note(spec))
    for est in ests:
        est.notes[:0] = before
        est.notes += after
    return ranges.attach_many(ests, prof, values=figures)


def model_masked_note(spec: ModelSpec, kv_len: int) -> list[str]:
    """layers.masked_note of `spec` at `kv_len` keys, over a layer kind per group of layers
    (spec.layer_groups, the kinds as priced) rather than one per layer: the same note, a few
    kinds to look at instead of every layer."""
    return masked_note(tuple(g.layer for g in spec.layer_groups), kv_len)


def memory_parts_gb(m: MemoryParts) -> dict[str, float]:
    """One GPU's peak by part, in GB (memory.PARTS, in that order)."""
    return {k: getattr(m, k) / GB for k in PARTS}


def _workload_dict(spec: ModelSpec, w: Workload, **extra: object) -> dict:
    """The estimate's workload; an MoE model's names the experts implementation priced."""
    d = dict(batch=w.batch, seq=w.seq, dtype=w.dtype, gpus=w.gpus, **extra)
    impl = spec.arch.experts_implementation(spec)
    return d if impl is None else d | {"experts_implementation": impl}


# what a generation estimate models: the execution it was fitted to and is measured against
GENERATION_EXECUTION = ("generation modelled as Hugging Face transformers' eager model.generate, greedy "
                        "(do_sample=False), one process; not a serving engine (no continuous batching, paged "
                        "KV cache or CUDA graphs as in vLLM, TGI or TensorRT-LLM)")


def _generation_estimate(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload) -> Estimate:
    """model.generate(batch x seq, new_tokens): TTFT, TPOT, the whole call, its energy per
    generated token and the peak memory over the call; the breakdown per phase and group."""
    from .generation import generate_call   # a plain forward does not load generation (issue 26)
    g: Generation = generate_call(spec, dev, prof, w)
    generated = w.batch * w.new_tokens
    energy = g.energy_j
    mem_gb_per_gpu = [b / GB for b in g.peak_bytes_per_gpu]
    mem_gb = max(mem_gb_per_gpu)
    host = sum(ph.host_ms for ph in g.phases)
    busy = sum(ph.gpu_busy_ms for ph in g.phases)
    fits = mem_gb <= dev.memory_usable_gb
    notes = [] if fits else [does_not_fit_note(mem_gb, dev)]
    notes = ([GENERATION_EXECUTION] + spec.arch.estimate_notes(spec, w.batch * w.seq)
             + model_masked_note(spec, w.seq + w.new_tokens - 1) + notes)
    host_note = host_model.source_note(spec, g.host_source, "generate's host time")
    if host_note:
        notes.append(host_note)
    per_token = None if energy is None else energy / generated
    return Estimate(
        model=spec.name, device=dev.name, workload=_workload_dict(spec, w, parallel=w.parallel if w.gpus > 1 else "single",
                                                                   new_tokens=w.new_tokens),
        runtime_ms=g.generate_ms, memory_gb=mem_gb, memory_gb_per_gpu=mem_gb_per_gpu, energy_j_per_token=per_token,
        throughput_tokens_per_s=generated / (g.generate_ms * 1e-3), fits=fits, host_ms=host, gpu_busy_ms=busy,
        bound="host" if host >= busy else "gpu", params=spec.param_count(), profile=prof.source,
        breakdown=[b for ph in g.phases for b in ph.breakdown], memory_breakdown_gb=[memory_parts_gb(g.memory)] if g.memory else [],
        notes=notes, ttft_ms=g.ttft_ms, tpot_ms=g.tpot_ms if w.new_tokens > 1 else None,   # no decode step: none
        generate_ms=g.generate_ms, generate_energy_j_per_token=per_token, phases=[ph.to_dict() for ph in g.phases],
        host_source=g.host_source)
