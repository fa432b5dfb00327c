"""Peak allocated bytes per GPU, as torch.cuda.max_memory_allocated reports them.

peak = weights on that GPU + K/V cache of its layers (model(input_ids) keeps a DynamicCache)
     + the largest working set of live activations while one of its modules runs
     + the cuBLAS workspace.
Working sets are counted from the eager code: which tensors are alive at the busiest moment of a
layer (all in bytes per token, T tokens, e bytes per element, h hidden, f FFN, q/kv head dims).
"""
from __future__ import annotations

from .model import ModelSpec

CUBLAS_WORKSPACE_BYTES = 32 * 2**20  # torch's default CUBLAS_WORKSPACE_CONFIG :4096:8 (8 x 4 MiB)
FP32 = 4


def layer_working_set(spec: ModelSpec, t: int, e: int, shards: int = 1) -> float:
    """Live activation bytes at the busiest moment inside one decoder layer."""
    h, f = spec.hidden, spec.ffn // shards
    qd = spec.heads // shards * spec.head_dim
    kvd = max(1, spec.kv_heads // shards) * spec.head_dim
    base = 2 * h  # the layer's input (held by the model's loop, also the residual) + normed input
    if spec.family == "llama":
        attn = base + 4 * qd + 2 * kvd          # q, k, v and three rotary temporaries of q
        mlp = base + h + 3 * f                  # + post-attention residual; act(gate), up, product
    elif spec.family == "opt":
        attn = base + 2 * qd + 2 * kvd          # q, q*scaling, k, v
        mlp = base + 2 * f                      # fc1 output and relu output
    else:  # gpt2
        attn = base + (qd + 2 * kvd) + 2 * qd   # fused qkv, attention output and its contiguous copy
        mlp = base + 3 * f                      # c_fc output and two gelu_new temporaries
    norm = h + (FP32 + FP32) * h / e if spec.norm == "rmsnorm" else 0  # fp32 copy + pow in RMSNorm
    return t * e * max(attn, mlp, norm)


def kv_cache_bytes(spec: ModelSpec, t: int, e: int, layers: int, shards: int = 1) -> float:
    if not spec.use_cache:
        return 0.0
    kvd = max(1, spec.kv_heads // shards) * spec.head_dim
    return 2.0 * layers * t * kvd * e


def head_working_set(spec: ModelSpec, t: int, e: int, shards: int = 1) -> float:
    """Normed final hidden state plus the logits (batch x seq x vocab)."""
    return t * e * (spec.hidden + spec.vocab / shards)


def final_norm_working_set(spec: ModelSpec, t: int, e: int) -> float:
    if spec.norm == "rmsnorm":
        return t * spec.hidden * (e + 2 * FP32)
    return 2.0 * t * spec.hidden * e


def embedding_outputs(spec: ModelSpec, t: int, seq: int, e: int) -> float:
    """Embedding outputs the decoder's forward keeps referenced while its layers run
    (``inputs_embeds``, and OPT's / GPT-2's position embeddings): they count at a peak inside a
    layer on the embedding GPU, not at the LM head (the decoder has returned by then)."""
    positions = {"opt": t, "gpt2": seq}.get(spec.family, 0)
    return (t + positions) * spec.proj_dim * e
