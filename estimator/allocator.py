"""Weights as PyTorch's CUDA caching allocator holds them.

``AutoModelForCausalLM.from_config`` under ``torch.device("cuda")`` allocates every parameter in
turn. The caching allocator (c10/cuda/CUDACachingAllocator.cpp) rounds each request to 512
bytes; a request above 1 MiB (kSmallSize) is served from the large pool: a new segment of 20 MiB
(kLargeBuffer) for requests under 10 MiB (kMinLargeAlloc), else the request rounded up to 2 MiB
(kRoundLarge); a free block is split only if more than 1 MiB would remain, so a block whose
remainder is 1 MiB or less is handed out whole and counted whole by ``memory_allocated``. For
models whose weight matrices do not pack into those segments the bench measured 9-37 MB more than
the parameters' bytes (AICrossSim/clm-200m / -400m / -1.1b on the 2026-12-03 H200s: 8.8, 11.8 and
35.7 MB above the 1 MB every model showed; this simulation gives 11.1, 12.3 and 35.1 MB, and 0.0
for OPT, which measured 0.0).

``weight_tensor_bytes`` lists a model's large weight tensors in the order transformers creates
them (the token embedding, each layer's projection matrices as the forward runs them, the untied
LM head), for the families whose lists equal transformers' own (tests/test_allocator.py); other
families get no allowance (None).
"""
from __future__ import annotations

import bisect
from functools import lru_cache
from typing import Sequence

from .model import ModelSpec

MIB = 1 << 20
MIN_BLOCK = 512              # kMinBlockSize
SMALL_SIZE = MIB             # kSmallSize: larger requests use the large pool
SMALL_BUFFER = 2 * MIB       # kSmallBuffer
LARGE_BUFFER = 20 * MIB      # kLargeBuffer: the segment of a request under MIN_LARGE_ALLOC
MIN_LARGE_ALLOC = 10 * MIB   # kMinLargeAlloc
ROUND_LARGE = 2 * MIB        # kRoundLarge
# families whose weight list below equals transformers' (tests/test_allocator.py): rotary
# decoders whose weight matrices are exactly their projection GEMMs, no learned positions
FAMILIES = frozenset({"llama", "qwen3", "granite", "smollm3", "olmo2"})   # not phi3: o_proj is created before qkv_proj


def caching_allocator_bytes(sizes: Sequence[float]) -> int:
    """Bytes ``torch.cuda.memory_allocated`` counts after allocating tensors of `sizes` bytes in
    order on a fresh device (best-fit free block, split rules of the caching allocator)."""
    free: dict[bool, list[int]] = {True: [], False: []}   # small pool?, sorted free block sizes
    total = 0
    for n in sizes:
        size = max(MIN_BLOCK, -(-int(n) // MIN_BLOCK) * MIN_BLOCK)
        small = size <= SMALL_SIZE
        blocks = free[small]
        i = bisect.bisect_left(blocks, size)
        if i < len(blocks):
            block = blocks.pop(i)
        elif small:
            block = SMALL_BUFFER
        else:
            block = LARGE_BUFFER if size < MIN_LARGE_ALLOC else -(-size // ROUND_LARGE) * ROUND_LARGE
        rest = block - size
        if rest >= MIN_BLOCK if small else rest > SMALL_SIZE:
            bisect.insort(blocks, rest)
            total += size
        else:
            total += block
    return total


def weight_tensor_bytes(spec: ModelSpec, e: int) -> list[int] | None:
    """The model's weight tensors above 1 MiB, in creation order (None: a family not listed)."""
    if spec.arch.name not in FAMILIES or getattr(spec, "fp8", None) is not None:
        return None   # FP8 weights: 1-byte tensors and scales, not listed
    from .ops import forward_ops   # ops builds on the model description: imported when asked
    ops = forward_ops(spec, 1, 1, e)
    out = [spec.vocab * spec.hidden * e]
    for g in ops.layers:
        mats = [op.shape[1] * op.shape[2] * e for op in g.ops
                if op.kind == "gemm" and op.group in ("attention projections", "mlp")]
        if any(op.kind == "grouped_gemm" for op in g.ops):   # experts: 3-d tensors of their own
            return None
        out += mats * g.group.count
    if not spec.tied_embeddings:
        out.append(spec.vocab * spec.hidden * e)
    return [n for n in out if n > SMALL_SIZE]


@lru_cache(maxsize=256)
def allocator_overhead_bytes(spec: ModelSpec, e: int) -> int:
    """What the caching allocator holds beyond the weights' own bytes (0 for families not listed)."""
    sizes = weight_tensor_bytes(spec, e)
    return caching_allocator_bytes(sizes) - sum(sizes) if sizes else 0
