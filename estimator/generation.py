"""model.generate on one GPU as phases: generate's set-up and the prefill (time to first token),
then new_tokens - 1 decode steps over a growing KV cache (time per output token).

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
from .model import ModelSpec
from .placement import single_gpu_placement
from .profile import Profile
from .schedule import PassResult, step_pass
from .workload import Workload

PHASES = ("prefill", "decode")
BREAKDOWN_SUMS = ("time_ms", "flops", "bytes", "kernels")


@dataclass(frozen=True)
class PhaseResult:
    """One phase of the call: wall time, host launch time, GPU kernel time and energy (all GPU 0)."""
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
    """The whole generate call: its phases and the peak bytes on the GPU."""
    prefill: PhaseResult
    decode: PhaseResult
    new_tokens: int
    memory: memory.MemoryParts   # the peak bytes on the GPU over the call, by part

    @property
    def peak_bytes(self) -> float:
        return self.memory.total

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


def generation_parts(spec: ModelSpec, w: Workload) -> memory.MemoryParts:
    """Peak allocated bytes of the call: the larger of the prefill's peak (cache of the prompt,
    a layer's working set over the prompt, logits of the last position) and the last decode
    step's (cache of seq + new_tokens - 1 tokens while torch.cat holds one layer's old K too),
    by part (memory.MemoryParts) at that peak."""
    e, b, s, n = w.dtype_bytes, w.batch, w.seq, w.new_tokens
    weights = single_gpu_placement(spec, e).weight_bytes_per_gpu[0]
    last_logits = b * spec.vocab * (e + memory.FP32)   # the logits row and its float32 copy
    head = b * e * spec.hidden + last_logits
    act, logits, live = memory.split_peak([memory.layer_working_set(spec, b * s, e, seq=s)
                                      + memory.embedding_outputs(spec, b * s, s, e),
                                      memory.final_norm_working_set(spec, b * s, e)], [head])
    kv, ids = memory.kv_cache_bytes(spec, b * s, e, spec.layers), 2 * b * s * memory.INPUT_ID_BYTES
    prefill = kv + live + ids
    parts = (kv, act, logits, ids)
    if n > 1:
        kv_end = b * (s + n - 1)
        cat_old = b * (s + n - 2) * spec.kv_heads * spec.head_dim * e
        d_act, d_logits, d_live = memory.split_peak([memory.layer_working_set(spec, b, e)
                                                + memory.embedding_outputs(spec, b, 1, e)], [head])
        d_kv = memory.kv_cache_bytes(spec, kv_end, e, spec.layers) + cat_old
        d_ids = 2 * b * (s + n) * memory.INPUT_ID_BYTES
        decode = d_kv + d_live + d_ids
        if decode > prefill:
            prefill, parts = decode, (d_kv, d_act, d_logits, d_ids)
    kv, act, logits, ids = parts
    return memory.MemoryParts(weights, kv, act, logits, memory.CUBLAS_WORKSPACE_BYTES, ids,
                              weights + prefill + memory.CUBLAS_WORKSPACE_BYTES)


def generation_bytes(spec: ModelSpec, w: Workload) -> float:
    return generation_parts(spec, w).total


def generate_call(spec: ModelSpec, dev: DeviceSpec, prof: Profile, w: Workload) -> Generation:
    """Set-up + prefill, then new_tokens - 1 decode steps (greedy, no early stop), on one GPU."""
    if w.gpus != 1:
        raise EstimatorError(f"generation is modelled on one GPU; got gpus={w.gpus}")
    if w.seq + w.new_tokens > spec.max_positions:
        raise EstimatorError(f"seq + new_tokens = {w.seq + w.new_tokens} exceeds the {spec.max_positions} "
                             f"positions of {spec.name}")
    spec = spec if spec.use_cache else replace(spec, use_cache=True)   # generate always keeps the cache
    host = prof.generate_host(*spec.arch.host_keys(spec))
    e, layers = w.dtype_bytes, spec.layers
    prefill = step_pass(spec, dev, prof, w, prefill_ops(spec, w.batch, w.seq, e), host.step_us,
                        host.step_per_layer_us, host.setup_total_us(layers))
    steps = w.new_tokens - 1
    kv_lens = sorted({w.seq + 1, w.seq + steps}) if steps else []
    step = spec.arch.decode_spec(spec, cuda=prof.kind != "cpu")   # MoE on a GPU: batched_mm decode
    decode = [step_pass(step, dev, prof, w, decode_ops(step, w.batch, kv, e), host.step_us, host.step_per_layer_us)
              for kv in kv_lens]
    return Generation(_phase("prefill", [prefill], 1), _phase("decode", decode, steps), w.new_tokens,
                      generation_parts(spec, w))


def generation_rows(est) -> list[list[str]]:
    """The CLI's summary lines of an estimate with new_tokens (an api.Estimate)."""
    energy = est.generate_energy_j_per_token
    return [["time to first token", f"{est.ttft_ms:.2f} ms"], ["time per output token", f"{est.tpot_ms:.2f} ms"],
            ["generate", f"{est.generate_ms:.1f} ms ({est.workload['new_tokens']} new tokens)"],
            ["energy per generated token", "n/a" if energy is None else f"{energy:.4g} J/token"]]
