"""One exception type for every bad input: its message is one line the CLI prints as is."""
from __future__ import annotations

from typing import Iterable


class EstimatorError(ValueError):
    """Bad input (unknown name, malformed config, impossible workload). Message is one line."""


class UnmodelledConfig(EstimatorError):
    """A well-formed config of something the estimator does not model (a quantized checkpoint):
    the benchmark skips its cases with the message instead of refusing the session."""


def closest(name: str, known: Iterable[str], n: int = 3) -> str:
    """' (closest: a, b)' for an unknown name, or '' when nothing is near."""
    import difflib   # only when a name is not found: a millisecond of every start-up otherwise
    known = list(known)
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.4)
    hits += [k for k in lowered if name.lower() in k and k not in hits][: n - len(hits)]
    return f" (closest: {', '.join(lowered[h] for h in hits)})" if hits else ""
