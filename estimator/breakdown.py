"""The breakdown of a pass per operator group: running sums while a pass is summarized
(GroupTotal, group_sums, add_groups) and the frozen GroupSum each group comes to."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cost import OpCost, OpCostMany


@dataclass(frozen=True)
class GroupSum:
    """One operator group of a pass: kernel time, work, kernel count and the bound taking most
    of its time ("host" for a group without kernels)."""
    group: str
    time_ms: float
    flops: float
    bytes: float
    kernels: int
    bound: str

    def to_dict(self) -> dict:
        return {"group": self.group, "time_ms": self.time_ms, "flops": self.flops, "bytes": self.bytes,
                "kernels": self.kernels, "bound": self.bound}


class GroupTotal:
    """A group's running sums while a pass is summarized (time in us per kernel list, in ms
    per pass)."""
    __slots__ = ("time", "flops", "bytes", "kernels", "bound_time")

    def __init__(self) -> None:
        self.time, self.flops, self.bytes, self.kernels = 0.0, 0.0, 0.0, 0
        self.bound_time: dict[str, float] = {}


def group_sums(costs: list[OpCost]) -> dict[str, GroupTotal]:
    """group -> its gpu us, flops, bytes, kernels and us per bound for one pass over `costs`."""
    sums: dict[str, GroupTotal] = {}
    for c in costs:
        op, t, bound = c.op, c.gpu_us, c.bound
        g = sums.get(op.group)
        if g is None:
            g = sums[op.group] = GroupTotal()
        g.time += t
        g.flops += op.flops
        g.bytes += op.bytes
        g.kernels += 1
        bound_time = g.bound_time
        bound_time[bound] = bound_time.get(bound, 0.0) + t
    return sums


def add_groups(groups: dict[str, GroupTotal], sums: dict[str, GroupTotal], times: int) -> None:
    """Add `times` runs of a kernel list's sums (us) to the pass's totals (ms)."""
    for name, s in sums.items():
        g = groups.get(name)
        if g is None:
            g = groups[name] = GroupTotal()
        g.time += s.time * times / 1e3
        g.flops += s.flops * times
        g.bytes += s.bytes * times
        g.kernels += s.kernels * times
        bound_time = g.bound_time
        for k, v in s.bound_time.items():
            bound_time[k] = bound_time.get(k, 0.0) + v * times


def group_sum(name: str, g: GroupTotal) -> GroupSum:
    bound = max(g.bound_time, key=g.bound_time.get) if g.bound_time else "host"
    return GroupSum(name, g.time, g.flops, g.bytes, g.kernels, bound)


# -- the running sums above for many workloads at once (forward_many.py): arrays over the workloads,
# added in the same order, so the same floats (tests/test_forward_many.py)

def _is_array(x: object) -> bool:
    return hasattr(x, "ndim")


class GroupTotalMany:
    """breakdown.GroupTotal over arrays; `bound_time` per bound code with the rank at which the
    bound first ran (the tie-break of group_sum's max, which takes the first inserted)."""
    __slots__ = ("time", "flops", "bytes", "kernels", "bound_time", "seen", "first")

    def __init__(self) -> None:
        self.time, self.flops, self.bytes, self.kernels = 0.0, 0.0, 0.0, 0
        self.bound_time: dict[int, Any] = {}
        self.seen: dict[int, Any] = {}
        self.first: dict[int, Any] = {}


def group_sums_many(costs: list[OpCostMany]) -> dict[str, GroupTotalMany]:
    """group_sums of kernels priced for many workloads (cost.price_many: a bound code per workload)."""
    import numpy as np
    from .cost import BOUND_NAMES
    sums: dict[str, GroupTotalMany] = {}
    for rank, c in enumerate(costs):
        g = sums.get(c.op.group)
        if g is None:
            g = sums[c.op.group] = GroupTotalMany()
        g.time = g.time + c.gpu_us
        g.flops = g.flops + c.op.flops
        g.bytes = g.bytes + c.op.bytes
        g.kernels += 1
        codes = (c.bound,) if not _is_array(c.bound) else range(len(BOUND_NAMES))   # one bound, or any
        for code in codes:
            mask = c.bound == code
            if not _is_array(mask):
                mask = np.full(np.shape(c.gpu_us), bool(mask))
            elif not mask.any():
                continue
            before = g.seen.get(code)
            g.bound_time[code] = g.bound_time.get(code, 0.0) + np.where(mask, c.gpu_us, 0.0)
            g.seen[code] = mask if before is None else before | mask
            first = g.first.get(code)
            g.first[code] = np.where(mask, rank, np.inf) if first is None else np.where(~before & mask, rank, first)
    return sums


def add_groups_many(groups: dict[str, GroupTotalMany], sums: dict[str, GroupTotalMany], times: int,
                    index: int) -> None:
    """add_groups of many workloads (`index`: the kernel list's place in the pass, which orders
    the bounds as they first ran)."""
    import numpy as np
    for name, s in sums.items():
        g = groups.get(name)
        if g is None:
            g = groups[name] = GroupTotalMany()
        g.time = g.time + s.time * times / 1e3
        g.flops = g.flops + s.flops * times
        g.bytes = g.bytes + s.bytes * times
        g.kernels += s.kernels * times
        for code, v in s.bound_time.items():
            seen = s.seen[code]
            g.bound_time[code] = np.where(seen, g.bound_time.get(code, 0.0) + v * times, g.bound_time.get(code, 0.0))
            rank = index * 1e6 + s.first[code]
            before = g.seen.get(code)
            g.first[code] = rank if before is None else np.where(before, g.first[code], rank)
            g.seen[code] = seen if before is None else before | seen


def group_bounds_many(g: GroupTotalMany) -> Any:
    """group_sum's bound of each workload, as a code: the bound with the most time, on a tie the
    first to run (max over a dict takes the first inserted)."""
    import numpy as np
    best, best_time, best_first = None, None, None
    for code, t in g.bound_time.items():
        seen, first = g.seen[code], g.first[code]
        if best is None:
            best = np.where(seen, code, -1)
            best_time, best_first = np.where(seen, t, -np.inf), np.where(seen, first, np.inf)
            continue
        wins = seen & ((t > best_time) | ((t == best_time) & (first < best_first)))
        best = np.where(wins, code, best)
        best_time = np.where(wins, t, best_time)
        best_first = np.where(wins, first, best_first)
    return best
