"""The host during a timed region: its speed, measured next to every round, and its garbage
collector, kept out of the timed work (issue 25).

- ``cpu_probe_us``: a fixed pure-Python loop (estimator/calibrate/host_ops.py's ``cpu_probe_us``,
  no torch), timed before every timed round of a case (bench/rounds.py). On the lent H200s that
  loop slowed 1.75x for several seconds at the same moments as the host-bound forwards (correlation
  0.77), so the row's per-round probe times say how fast the host ran Python while the case ran.
- ``gc_off``: the garbage collector collected once, then frozen and disabled over a timed region
  (rounds and the probes between them), and restored after, exceptions too. gc.freeze() +
  gc.disable() during the timed passes cut a host-bound case's p90 from 14.4 to 12.9 ms: a
  collection inside a round is noise, not the model.
"""
from __future__ import annotations


CPU_PROBE_LOOPS = 20_000   # about 1 ms of Python on an idle host


def cpu_probe_us(loops: int = CPU_PROBE_LOOPS) -> float:
    """Microseconds of the torch-free pure-Python probe loop, now."""
    from estimator.calibrate.host_ops import cpu_probe_us as probe   # the module imports torch: only here
    return probe(loops)


def gc_off(collect: bool = True):
    """estimator/calibrate/host_ops.py's gc_off (one implementation for calibration and bench)."""
    from estimator.calibrate.host_ops import gc_off as off   # the module imports torch: only here
    return off(collect)
