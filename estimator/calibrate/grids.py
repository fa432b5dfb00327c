"""Point lists of the calibration grids: which shapes and sizes each microbenchmark measures.

Pure data (no torch): GEMM (m, n, k), attention (batch_heads, seq, head_dim), copy sizes, and the
sizes and GPU counts of the collectives. Byte units are binary (MB = MiB, GIB = GiB); the model
side's ``GB = 1e9`` is a different unit.
"""
from __future__ import annotations

MB = 1 << 20
GIB = 1 << 30
COLLECTIVE_SIZES = (1 * MB, 16 * MB, 64 * MB, 256 * MB)
ALLREDUCE_REPS = {1 * MB: 100, 16 * MB: 40, 64 * MB: 15, 256 * MB: 5}  # calls per timed loop


def gemm_points(kind: str, dtype: str, quick: bool = False) -> list[tuple[int, int, int]]:
    """(m, n, k) points of the GEMM grid for a device kind ('gpu'/'cpu') and dtype name."""
    if kind == "cpu":
        ms, nks = ((64, 1024), (128, 2048)) if quick else ((64, 256, 1024), (128, 512, 2048))
        return [(m, n, k) for m in ms for n in nks for k in nks]
    if dtype in ("float32", "tf32"):
        ms, nks = ((1024,), (512, 8192)) if quick else ((1024, 16384), (512, 2048, 8192))
        wide = [(65536, 1024)] if quick else [(65536, 1024), (65536, 4096)]
    elif quick:
        ms, nks, wide = (128, 4096), (256, 2048, 8192), [(65536, 1024)]
    else:
        ms = (128, 1024, 4096, 16384)
        nks = (256, 512, 1024, 2048, 4096, 8192, 16384)
        wide = [(n, k) for n in (32768, 65536, 131072) for k in (512, 1024, 2048, 4096)]
    square = [(m, n, k) for m in ms for n in nks for k in nks]
    return square + [(m, n, k) for m in ms for (n, k) in wide] + small_m_points(kind, dtype, quick)


def small_m_points(kind: str, dtype: str, quick: bool = False) -> list[tuple[int, int, int]]:
    """Decode GEMMs: M = batch rows (1..64) on weights of decoder layers and LM heads. They read
    their whole weight, so they are timed apart from the square grid (an old profile without
    them falls back to weight bytes / copy bandwidth in Profile.gemm_us)."""
    if kind == "cpu" or dtype in ("float32", "tf32"):
        return []
    ms, nks = ((1, 16), (1024, 8192)) if quick else ((1, 4, 16, 64), (512, 2048, 8192))
    heads = [] if quick else [(n, k) for n in (32768, 131072) for k in (1024, 4096)]
    return [(m, n, k) for m in ms for n in nks for k in nks] + [(m, n, k) for m in ms for (n, k) in heads]


# Leading dimensions that are not multiples of 8 elements (e.g. GPT-2's vocabulary of 50257)
# keep cuBLAS off its 16-byte-aligned tensor-core kernels: a separate, smaller grid.
UNALIGNED_POINTS = [(m, n, k) for m in (1024, 16384) for n in (1001, 4097, 50257) for k in (768, 2048)]


def sdpa_points(kind: str, dtype: str, quick: bool = False) -> list[tuple[int, int, int]]:
    """(batch_heads, seq, head_dim) points of the attention grid."""
    if kind == "cpu":
        return [(bh, s, 64) for bh in (4, 16) for s in (64, 256)]
    if dtype == "float32":
        return [(64, 512, 64)] if quick else [(bh, s, 64) for bh in (64, 256) for s in (512, 2048)]
    bhs, seqs = ((16, 256), (128, 1024)) if quick else ((16, 64, 256, 1024),
                                                          (128, 256, 512, 1024, 2048, 4096))
    return [(bh, s, d) for bh in bhs for s in seqs for d in (64, 128)]


def copy_sizes(kind: str, quick: bool = False) -> list[int]:
    """Byte sizes of the copy benchmark."""
    if kind == "cpu":
        return [1 * MB, 8 * MB, 64 * MB] if quick else [1 * MB, 8 * MB, 64 * MB, 256 * MB]
    return [1 * MB, 64 * MB, 512 * MB] if quick else [1 * MB, 8 * MB, 64 * MB, 512 * MB, 2 * GIB]


def allreduce_group_sizes(gpu_count: int) -> list[int]:
    """GPU counts to all-reduce over: powers of two from 2, plus gpu_count itself."""
    sizes = {n for n in (2 ** i for i in range(1, 8)) if n <= gpu_count}
    if gpu_count >= 2:
        sizes.add(gpu_count)
    return sorted(sizes)
