"""Peak allocated bytes per GPU, as torch.cuda.max_memory_allocated reports them.

peak = weights on that GPU + K/V cache of its layers (model(input_ids) keeps a DynamicCache;
       linear-attention layers their fixed state per sequence, kv_cache.state_bytes)
     + the largest working set of live activations while one of its modules runs
     + the cuBLAS workspace.
Working sets are counted from the eager code: which tensors are alive at the busiest moment of a
layer (all in bytes per token, T tokens, e bytes per element, h hidden, f FFN, q/kv head dims).
Each GPU's peak comes as ``MemoryParts``: what holds the bytes, and the total.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import kv_cache   # called through the module: the one place a layer's cache is sized
from .layers import groups_in

if TYPE_CHECKING:
    from .spec import ModelSpec
    from .placement import Placement

CUBLAS_WORKSPACE_BYTES = 32 * 2**20  # torch's default CUBLAS_WORKSPACE_CONFIG :4096:8 (8 x 4 MiB)
FP32 = 4
INPUT_ID_BYTES = 8  # input_ids are int64, on GPU 0
PARTS = ("weights", "kv_cache", "activations", "logits", "workspace", "input_ids")


@dataclass(frozen=True)
class MemoryParts:
    """One GPU's peak bytes by what holds them at the peak. `activations` is the largest live
    working set of a layer or the final norm (with the embedding outputs the decoder keeps) when
    that is the peak; `logits` the LM head's working set (normed hidden state and logits; a
    tensor-parallel head's gathered logits; the logits accelerate returns to GPU 0) when that is
    the peak: one of the two is 0. `total` is the peak as summed below (the parts add up to it
    to float rounding, 1e-12 relative)."""
    weights: float
    kv_cache: float        # generation's last decode step: with the old K torch.cat still holds
    activations: float
    logits: float
    workspace: float       # cuBLAS
    input_ids: float       # int64 ids on GPU 0 (generate: input_ids and the attention mask)
    total: float


def _is_array(x: object) -> bool:
    return hasattr(x, "ndim")


def larger(a, b):
    """max(a, b) of two byte counts, either a number or a numpy array of them, one per workload
    (forward_many.py counts many workloads' memory at once through these same functions)."""
    if _is_array(a) or _is_array(b):
        import numpy as np
        return np.where(b > a, b, a)
    return max(a, b)


def split_peak(layer_peaks: list[float], head_peaks: list[float]) -> tuple[float, float, float]:
    """(activations, logits, peak): the largest working set, counted as activations when a layer
    or the final norm reaches it, as logits when only the head does (numbers or arrays, see larger)."""
    act = layer_peaks[0]
    for x in layer_peaks[1:]:
        act = larger(act, x)
    head = head_peaks[0] if head_peaks else 0.0
    for x in head_peaks[1:]:
        head = larger(head, x)
    if _is_array(act) or _is_array(head):
        import numpy as np
        layer_wins = act >= head
        return np.where(layer_wins, act, 0.0), np.where(layer_wins, 0.0, head), np.where(layer_wins, act, head)
    return (act, 0.0, act) if act >= head else (0.0, head, head)


def layer_working_set(spec: ModelSpec, t: int, e: int, shards: int = 1, seq: int = 0) -> float:
    """Live activation bytes at the busiest moment inside a decoder layer (`seq`: tokens per
    sequence, for the seq² score matrices of eager attention; 0 leaves them out): the largest over
    the model's layer kinds, each MLP at its own width (a MoE model's dense first layers, e.g.
    DeepSeek-V3's three of 18432, run a dense MLP, not its experts' formula at the dense width:
    that counted 12 GB too many on a 5-layer slice at 8 x 2048, 2026-12-03)."""
    layers = {g.layer for g in spec.layer_groups}
    mixed = any(layer.mlp.kind != "dense" for layer in layers)
    return max(_layer_working_set(spec, layer, mixed, t, e, shards, seq) for layer in layers)


def _layer_working_set(spec: ModelSpec, layer, mixed: bool, t: int, e: int, shards: int, seq: int) -> float:
    h, f = spec.hidden, spec.layer_ffn(layer) // shards
    qd = spec.heads // shards * spec.head_dim
    kvd = max(1, spec.kv_heads // shards) * spec.head_dim
    base = 2 * h  # the layer's input (held by the model's loop, also the residual) + normed input
    attn, mlp = spec.arch.layer_live_per_token(spec, qd, kvd, f)
    if mixed and layer.mlp.kind == "dense":   # a MoE model's dense layer: act(gate), up, product
        mlp = h + 3 * f
    attn, mlp = base + attn, base + mlp
    norm = h + (FP32 + FP32) * h / e if spec.norm == "rmsnorm" else 0  # fp32 copy + pow in RMSNorm
    scores = masks = 0.0
    if _is_array(seq) or seq:
        scores = spec.arch.attention_live_bytes(spec, t // seq, seq, max(1, spec.heads // shards), e)
        masks = spec.arch.mask_bytes(spec, seq)   # alive through the whole layer
    return larger(t * e * attn + scores, t * e * max(mlp, norm)) + masks


def kv_cache_bytes(spec: ModelSpec, batch: int, context: int, e: int, first: int, count: int,
                   shards: int = 1, step: int | None = None) -> float:
    """The cache of layers first .. first + count - 1 once `context` tokens of each of `batch`
    sequences have gone through them, the last forward of `step` tokens each (None: the whole
    context in one forward), walked by layer group: the bytes it keeps allocated
    (kv_cache.stored_tokens)."""
    if not spec.use_cache:
        return 0.0
    total = 0.0   # float arithmetic, as every byte count: an absurd workload overflows to inf, not an error
    for g, n in groups_in(spec.layer_groups, first, count):
        stored = kv_cache.stored_tokens(g.layer, context, context if step is None else step)
        total += float(n) * (batch * stored) * kv_cache.cache_bytes_per_token(spec, g.layer, e, shards)
        total += float(n) * batch * kv_cache.state_bytes(spec, g.layer, e)   # linear attention: fixed
    return total


def cat_old_bytes(spec: ModelSpec, batch: int, context: int, e: int, first: int, count: int, step: int = 1) -> int:
    """The old K of one layer that a decode step's torch.cat still holds while it writes the new
    cache (`context` tokens before the step, the forward before it of `step` tokens), the largest
    among layers first .. first + count - 1; a linear-attention layer: the state-sized float32
    temporaries of its recurrent step (kv_cache.DECODE_STATE_TEMPS)."""
    return max((batch * kv_cache.stored_tokens(g.layer, context, step) * kv_cache.cache_bytes_per_token(spec, g.layer, e)
                // 2 + batch * kv_cache.DECODE_STATE_TEMPS * kv_cache.recurrent_bytes(g.layer)
                for g, _ in groups_in(spec.layer_groups, first, count)), default=0)


def head_working_set(spec: ModelSpec, t: int, e: int, shards: int = 1) -> float:
    """Normed final hidden state plus the logits (batch x seq x vocab), as many copies as the
    family's head keeps alive at once."""
    return t * e * (spec.hidden + spec.arch.logit_copies(spec) * spec.vocab / shards)


def final_norm_working_set(spec: ModelSpec, t: int, e: int) -> float:
    if not spec.arch.has_final_norm(spec):
        return 0.0
    if spec.norm == "rmsnorm":
        return t * spec.hidden * (e + 2 * FP32)
    return 2.0 * t * spec.hidden * e


def embedding_outputs(spec: ModelSpec, t: int, seq: int, e: int) -> float:
    """Embedding outputs the decoder's forward keeps referenced while its layers run
    (``inputs_embeds``, and OPT's / GPT-2's position embeddings): they count at a peak inside a
    layer on the embedding GPU, not at the LM head (the decoder has returned by then). Both are
    hidden wide: OPT's project_in rebinds ``inputs_embeds`` to its hidden-wide output."""
    return (t + spec.arch.position_rows(t, seq)) * spec.hidden * e



def placed_parts_per_gpu(spec: ModelSpec, place: Placement, t: int, seq: int, e: int) -> list[MemoryParts]:
    """Peak bytes of each GPU of a one-GPU or pipeline run: its weights, the K/V cache of its
    layers, the largest working set of the parts it runs (a GPU other than the head's gets the
    logits back on GPU 0 from accelerate's hook), input ids on GPU 0, and a cuBLAS workspace on
    every GPU that holds or runs anything."""
    logits = t * spec.vocab * e
    mem = []
    first = 0
    for g, n in enumerate(place.layers_per_gpu):
        layer = [layer_working_set(spec, t, e, seq=seq) if n else 0.0]
        head = []
        if n and g == place.embed_gpu:
            layer[0] += embedding_outputs(spec, t, seq, e)
        if g == place.final_norm_gpu:
            layer.append(final_norm_working_set(spec, t, e))
        if g == place.head_gpu:
            head.append(head_working_set(spec, t, e))
        if g == 0 and place.head_gpu != 0:
            head.append(logits)
        act, head_peak, peak = split_peak(layer, head)
        weights = place.weight_bytes_per_gpu[g]
        used = weights > 0 or n > 0 or g == 0
        extra = t * INPUT_ID_BYTES if g == 0 else 0
        kv = kv_cache_bytes(spec, t // seq, seq, e, first, n)
        first += n
        ws = CUBLAS_WORKSPACE_BYTES if used else 0
        mem.append(MemoryParts(weights, kv, act, head_peak, ws, extra, weights + kv + peak + extra + ws))
    return mem


def placed_bytes_per_gpu(spec: ModelSpec, place: Placement, t: int, seq: int, e: int) -> list[float]:
    return [m.total for m in placed_parts_per_gpu(spec, place, t, seq, e)]


def gathered_logits_bytes(spec: ModelSpec, t: int, batch: int, e: int, shards: int) -> float:
    """Logits of a tensor-parallel LM head at their peak on every rank. transformers' plan makes
    ``lm_head`` "colwise_gather_output": each rank computes its vocab shard, DTensor's
    Shard(-1) -> Replicate all-gathers it along dim 0 into a full-size buffer
    (all_gather_into_tensor) and, unless the gathered dim 0 is just the ranks (batch 1), a
    torch.cat rebuilds the last dim into a second full-size tensor while the buffer and the
    shard are alive (torch.distributed._functional_collectives.all_gather_single)."""
    full = t * spec.vocab * e
    if _is_array(batch):   # many workloads at once (see larger)
        import numpy as np
        return full / shards + full + np.where(batch > 1, full, 0.0)
    return full / shards + full + (full if batch > 1 else 0.0)


def replica_parts(spec: ModelSpec, t: int, seq: int, e: int, shards: int) -> MemoryParts:
    """Peak bytes of one GPU of a data (shards 1, `t` tokens of its batch share) or tensor
    parallel run as transformers' tp_plan="auto" places it: decoder projections split
    `shards` ways (q/k/v, gate/up colwise; o, down rowwise), the token embedding and the
    norms replicated (the plan does not list them), an untied LM head split over the vocab
    (a tied one is the replicated table), and the full logits gathered on every rank."""
    if spec.fp8 is None:
        layer_w = spec.decoder_params() / shards
        rest = spec.embedding_params() + spec.head_params() / shards + spec.norm_params()
        weights = (layer_w + rest) * e
    else:   # FP8 linears at 1 byte plus their scales (fp8.py)
        weights = (sum(spec.layer_weight_bytes_each(e)) / shards + (spec.embedding_params() + spec.norm_params()) * e
                   + spec.head_weight_bytes(e) / shards)
    if shards == 1:   # a data-parallel replica, built by from_config on its GPU (allocator.py)
        from .allocator import allocator_overhead_bytes
        weights += allocator_overhead_bytes(spec, e)
    head = (head_working_set(spec, t, e, 1) if shards == 1
            else t * spec.hidden * e + gathered_logits_bytes(spec, t, t // seq, e, shards))
    act, head_peak, peak = split_peak([layer_working_set(spec, t, e, shards, seq) + embedding_outputs(spec, t, seq, e),
                                  final_norm_working_set(spec, t, e)], [head])
    kv = kv_cache_bytes(spec, t // seq, seq, e, 0, spec.layers, shards)
    ids = t * INPUT_ID_BYTES
    return MemoryParts(weights, kv, act, head_peak, CUBLAS_WORKSPACE_BYTES, ids,
                       weights + kv + peak + ids + CUBLAS_WORKSPACE_BYTES)


def replica_bytes(spec: ModelSpec, t: int, seq: int, e: int, shards: int) -> float:
    return replica_parts(spec, t, seq, e, shards).total
