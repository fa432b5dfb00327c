"""The breakdown of a pass per operator group: running sums while a pass is summarized
(GroupTotal, group_sums, add_groups) and the frozen GroupSum each group comes to."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cost import OpCost


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
        g = sums.get(c.op.group)
        if g is None:
            g = sums[c.op.group] = GroupTotal()
        g.time += c.gpu_us
        g.flops += c.op.flops
        g.bytes += c.op.bytes
        g.kernels += 1
        g.bound_time[c.bound] = g.bound_time.get(c.bound, 0.0) + c.gpu_us
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
        for k, v in s.bound_time.items():
            g.bound_time[k] = g.bound_time.get(k, 0.0) + v * times


def group_sum(name: str, g: GroupTotal) -> GroupSum:
    bound = max(g.bound_time, key=g.bound_time.get) if g.bound_time else "host"
    return GroupSum(name, g.time, g.flops, g.bytes, g.kernels, bound)
