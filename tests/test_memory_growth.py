"""Memory of long sweeps (issue 11: 20,000 distinct estimates grew a process by ~440 MB).

Not a timed test: it measures with tracemalloc how much memory a few hundred distinct estimates
add and how many memo entries they make, then scales to 100,000 estimates. Every cache the
estimator keeps is size-capped, and the lookup memo (the only one growing with every new
workload) stops at MEMO_MAX_ENTRIES, so growth stops once the memo is full: the bound is the
growth per estimate times the estimates it takes to fill the memo.
"""
from __future__ import annotations

import gc
import tracemalloc

from estimator import Workload, estimate, profile
from estimator.device import get_device
from estimator.ops import forward_ops
from estimator.placement import pipeline_placement

SAMPLE = 200
TARGET_ESTIMATES = 100_000
LIMIT_BYTES = 100e6


def _distinct(i: int) -> Workload:
    return Workload(batch=1 + i % 64, seq=2000 - i)   # never seen before in this process


def test_every_cache_is_size_capped():
    for cached in (forward_ops, pipeline_placement, profile.shipped_profile):
        assert cached.cache_info().maxsize is not None
    assert profile.MEMO_MAX_ENTRIES > 0


def test_100k_distinct_estimates_grow_memory_by_less_than_100_mb():
    prof = profile.profile_for(get_device("H100"))
    estimate("facebook/opt-1.3b", "H100")  # loads model, device and profile once
    entries0 = len(prof._memo)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(SAMPLE):
            estimate("facebook/opt-1.3b", "H100", _distinct(i))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    entries_per_estimate = (len(prof._memo) - entries0) / SAMPLE
    assert entries_per_estimate > 0 and len(prof._memo) < profile.MEMO_MAX_ENTRIES  # sample below the cap
    # all growth counted as if it went on until the memo is full (the other caches fill sooner)
    estimates_to_fill = min(TARGET_ESTIMATES, profile.MEMO_MAX_ENTRIES / entries_per_estimate)
    projected = grown / SAMPLE * estimates_to_fill
    assert projected < LIMIT_BYTES, f"{projected / 1e6:.0f} MB for {TARGET_ESTIMATES} estimates"
