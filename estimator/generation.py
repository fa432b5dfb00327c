"""model.generate on one GPU or over accelerate's pipeline placement, as phases: generate's set-up
and the prefill (time to first token), then new_tokens - 1 decode steps over a growing KV cache
(time per output token). Over a pipeline each step walks the stages of a forward pass
(``schedule.placed_step_pass``: hidden-state copies and accelerate's hooks, each layer's cache on
its stage's GPU, the sampling on GPU 0); data / tensor parallel generation is refused.

Each simulated step is a ``schedule.step_pass`` of its own, a frozen ``PassResult``: every step
of ``_sample`` ends in a host synchronisation (``unfinished_sequences.max() == 0``), so steps do
not overlap and a step takes max(host launches, GPU drain). A decode step's GPU work grows
linearly with the cache (the ``torch.cat`` of the cache and attention over it) and its host time
is constant, so its time is convex in the step index: the first and the last step are simulated
and the steps between averaged (exact while both ends are host-bound, the usual case; a slight
over-estimate when the last steps turn GPU-bound). Two simulated steps keep an estimate with
generation under 1 ms.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import memory
from .decode import decode_ops, prefill_ops
from .device import DeviceSpec
from .errors import EstimatorError
from .host_model import generate_price
from .model import ModelSpec
from .placement import Placement, single_gpu_placement
from .profile import Profile
from .schedule import PassResult, pipeline_split, placed_step_pass, step_pass
from .workload import Workload

PHASES = ("prefill", "decode")
BREAKDOWN_SUMS = ("time_ms", "flops", "bytes", "kernels")


@dataclass(frozen=True)
class PhaseResult:
    """One phase of the call: wall time, host launch time, GPU kernel time (a pipeline: every stage)
    and energy (every GPU)."""
    phase: str
    steps: int
    time_ms: float
    host_ms: float
    gpu_busy_ms: float
    energy_j: float | None
    breakdown: list[dict] = field(default_factory=list)   # per operator group, summed over its steps

    def to_dict(self) -> dict:
        return {"phase": self.phase, "steps": self.steps, "time_ms": self.time_ms, "host_ms": self.host_ms,
                "gpu_busy_ms": self.gpu_busy_ms, "energy_j": self.energy_j}


@dataclass(frozen=True)
class Generation:
    """The whole generate call: its phases and the peak bytes on each GPU."""
    prefill: PhaseResult
    decode: PhaseResult
    new_tokens: int
    peak_bytes_per_gpu: tuple[float, ...]
    memory: memory.MemoryParts | None = None   # one GPU: the peak by part (None over a pipeline)
    host_source: str = "measured"   # where generate's host time comes from (host_model.GENERATE_SOURCES)

    @property
    def peak_bytes(self) -> float:
        """The busiest GPU's peak."""
        return max(self.peak_bytes_per_gpu)

    @property
    def ttft_ms(self) -> float:
        return self.prefill.time_ms

    @property
    def tpot_ms(self) -> float:
        """Mean decode step (0 when new_tokens == 1), as (generate - ttft) / (new_tokens - 1)."""
        return self.decode.time_ms / self.decode.steps if self.decode.steps else 0.0

    @property
    def generate_ms(self) -> float:
        return self.prefill.time_ms + self.decode.time_ms

    @property
    def energy_j(self) -> float | None:
        if self.prefill.energy_j is None:
            return None
        return self.prefill.energy_j + (self.decode.energy_j or 0.0)

    @property
    def phases(self) -> list[PhaseResult]:
        return [self.prefill, self.decode]


def _phase(name: str, steps_run: list[PassResult], steps: int) -> PhaseResult:
    """`steps` steps priced from the simulated steps (their mean stands for every step)."""
    if not steps_run or steps == 0:
        return PhaseResult(name, 0, 0.0, 0.0, 0.0, 0.0, [])
    k = steps / len(steps_run)
    groups: dict[str, dict] = {}
    for r in steps_run:
        for g in r.groups:
            acc = groups.setdefault(g.group, {"phase": name, "group": g.group, "bound": g.bound,
                                              **{s: 0.0 for s in BREAKDOWN_SUMS}})
            for s in BREAKDOWN_SUMS:
                acc[s] += getattr(g, s) * k
    for g in groups.values():
        g["kernels"] = round(g["kernels"])
    energies = [r.energy_j for r in steps_run]
    energy = None if energies[0] is None else sum(energies) * k
    return PhaseResult(name, steps, sum(r.runtime_us for r in steps_run) * k / 1e3,
                       sum(r.host_work_us for r in steps_run) * k / 1e3,
                       sum(r.critical_gpu_us for r in steps_run) * k / 1e3, energy, list(groups.values()))


def generation_bytes(spec: ModelSpec, w: Workload, place: Placement | None = None) -> list[float]:
    """Peak allocated bytes of the call on each GPU of `place` (default: one GPU): the larger of
    the prefill's peak (cache of the prompt, a layer's working set over the prompt, logits of the
    last position) and the last decode step's (cache of seq + new_tokens - 1 tokens while
    torch.cat holds one layer's old K too). Over a pipeline each GPU holds its stage's weights and
    its layers' cache; the logits come back to GPU 0 (accelerate's hook), where generate's float32
    copy, input ids and the attention mask live."""
    e, b, s, n = w.dtype_bytes, w.batch, w.seq, w.new_tokens
    place = place or single_gpu_placement(spec, e)
    last_logits = b * spec.vocab * (e + memory.FP32)   # the logits row and its float32 copy
    out = []
    first = 0
    for g, layers in enumerate(place.layers_per_gpu):
        head = 0.0
        if g == place.head_gpu:   # the normed last position and its logits, copied to float32 on GPU 0
            head = b * e * spec.hidden + (last_logits if g == 0 else b * spec.vocab * e)
        elif g == 0:
            head = last_logits
        embed = g == place.embed_gpu
        prefill_layer = decode_layer = 0.0
        if layers:
            prefill_layer = memory.layer_working_set(spec, b * s, e, seq=s)
            decode_layer = memory.layer_working_set(spec, b, e)
            if embed:
                prefill_layer += memory.embedding_outputs(spec, b * s, s, e)
                decode_layer += memory.embedding_outputs(spec, b, 1, e)
        norm = memory.final_norm_working_set(spec, b * s, e) if g == place.final_norm_gpu else 0.0
        prefill = (memory.kv_cache_bytes(spec, b, s, e, first, layers) + max(prefill_layer, norm, head)
                   + (2 * b * s * memory.INPUT_ID_BYTES if g == 0 else 0))
        cat_old = memory.cat_old_bytes(spec, b, s + n - 2, e, first, layers, 1 if n > 2 else s)
        decode = (memory.kv_cache_bytes(spec, b, s + n - 1, e, first, layers, step=1) + (cat_old if layers else 0.0)
                  + max(decode_layer, head) + (2 * b * (s + n) * memory.INPUT_ID_BYTES if g == 0 else 0)
                  ) if n > 1 else 0.0
        weights = place.weight_bytes_per_gpu[g]
        used = weights > 0 or layers > 0 or g == 0
        out.append(weights + max(prefill, decode) + (memory.CUBLAS_WORKSPACE_BYTES if used else 0))
        first += layers
    return out


def _refused(w: Workload) -> str | None:
    if w.gpus > 1 and w.parallel != "pipeline":
        return (f"generation is modelled on one GPU or a pipeline over accelerate's device map; "
                f"got {w.parallel} parallel over {w.gpus} GPUs")
    return None


def generation_parts(spec: ModelSpec, w: Workload) -> memory.MemoryParts:
    """The one-GPU peak of the call by part (memory.MemoryParts): the larger of the prefill's peak
    (cache of the prompt, a layer's working set over the prompt, logits of the last position) and
    the last decode step's (cache of seq + new_tokens - 1 tokens while torch.cat holds one
    layer's old K too); its total is generation_bytes' one-GPU figure."""
    e, b, s, n = w.dtype_bytes, w.batch, w.seq, w.new_tokens
    weights = single_gpu_placement(spec, e).weight_bytes_per_gpu[0]
    last_logits = b * spec.vocab * (e + memory.FP32)   # the logits row and its float32 copy
    head = b * e * spec.hidden + last_logits
    act, logits, live = memory.split_peak([memory.layer_working_set(spec, b * s, e, seq=s)
                                      + memory.embedding_outputs(spec, b * s, s, e),
                                      memory.final_norm_working_set(spec, b * s, e)], [head])
    kv, ids = memory.kv_cache_bytes(spec, b, s, e, 0, spec.layers), 2 * b * s * memory.INPUT_ID_BYTES
    prefill = kv + live + ids
    parts = (kv, act, logits, ids)
    if n > 1:
        cat_old = memory.cat_old_bytes(spec, b, s + n - 2, e, 0, spec.layers, 1 if n > 2 else s)
        d_act, d_logits, d_live = memory.split_peak([memory.layer_working_set(spec, b, e)
                                                + memory.embedding_outputs(spec, b, 1, e)], [head])
        d_kv = memory.kv_cache_bytes(spec, b, s + n - 1, e, 0, spec.layers, step=1) + cat_old
        d_ids = 2 * b * (s + n) * memory.INPUT_ID_BYTES
        decode = d_kv + d_live + d_ids
        if decode > prefill:
            prefill, parts = decode, (d_kv, d_act, d_logits, d_ids)
    kv, act, logits, ids = parts
    return memory.MemoryParts(weights, kv, act, logits, memory.CUBLAS_WORKSPACE_BYTES, ids,
                              weights + prefill + memory.CUBLAS_WORKSPACE_BYTES)


def generate_call(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload) -> Generation:
    """Set-up + prefill, then new_tokens - 1 decode steps (greedy, no early stop), on one GPU or
    walked over accelerate's pipeline placement (schedule.placed_step_pass)."""
    reason = _refused(w)
    if reason:
        raise EstimatorError(reason)
    if w.seq + w.new_tokens > spec.max_positions:
        raise EstimatorError(f"seq + new_tokens = {w.seq + w.new_tokens} exceeds the {spec.max_positions} "
                             f"positions of {spec.name}")
    spec = spec if spec.use_cache else replace(spec, use_cache=True)   # generate always keeps the cache
    e, layers = w.dtype_bytes, spec.layers
    host, host_source = generate_price(prof, spec, e)
    place = pipeline_split(spec, w, dev) if w.gpus > 1 else None

    def run(s: ModelSpec, ops, rows: int, lead_us: float = 0.0) -> PassResult:
        if place is None:
            return step_pass(s, dev, prof, w, ops, host.step_us, host.step_per_layer_us, lead_us)
        return placed_step_pass(s, dev, prof, w, ops, rows, place, host.step_us, host.step_per_layer_us, lead_us)

    prefill = run(spec, prefill_ops(spec, w.batch, w.seq, e), w.seq, host.setup_total_us(layers))
    steps = w.new_tokens - 1
    kv_lens = sorted({w.seq + 1, w.seq + steps}) if steps else []
    step = spec.arch.decode_spec(spec, cuda=prof.kind != "cpu")   # MoE on a GPU: batched_mm decode
    decode = [run(step, decode_ops(step, w.batch, kv, e), 1) for kv in kv_lens]
    return Generation(_phase("prefill", [prefill], 1), _phase("decode", decode, steps), w.new_tokens,
                      tuple(generation_bytes(spec, w, place)), None if place else generation_parts(spec, w),
                      host_source)


def generation_rows(est) -> list[list[str]]:
    """The CLI's summary lines of an estimate with new_tokens (an api.Estimate)."""
    energy = est.generate_energy_j_per_token
    return [["time to first token", f"{est.ttft_ms:.2f} ms"], ["time per output token", "n/a (no decode step)" if est.tpot_ms is None else f"{est.tpot_ms:.2f} ms"],
            ["generate", f"{est.generate_ms:.1f} ms ({est.workload['new_tokens']} new tokens)"],
            ["energy per generated token", "n/a" if energy is None else f"{energy:.4g} J/token"]]
