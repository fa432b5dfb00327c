"""What one process per GPU adds to a forward pass: the host time of transformers' tensor-parallel
hooks and collectives that cross nodes. Inter-node links are data (estimator/devices/links/*.json,
every number with its source); inside a node the calibrated all-reduce grid is used."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from .device import GB
from .errors import EstimatorError

if TYPE_CHECKING:
    from .profile import Profile

LINKS_DIR = Path(__file__).parent / "devices" / "links"
# Host time transformers' tensor-parallel plan adds per sharded nn.Linear (the colwise/rowwise
# forward hooks, DTensor wrapping, the rowwise all_reduce call). ESTIMATE from two 4 x H200 runs
# that disagree: the suite's own tensor-parallel rows (reports/measured/h200x4-main.json, robust
# rounds, re-estimated with the host times measured on that machine) fit 90 us (host-bound
# clm-60m/200m rows within -5..+6 %); the earlier probe on another host
# (reports/probes/h200x4-dist.jsonl) implied ~165 us. Host time moves 1.5-2x between hosts of one
# kind (reports/field_notes.md); the suite's value is kept.
TP_LINEAR_HOST_US = 90.0


@dataclass(frozen=True)
class Link:
    """A network between nodes, per GPU and direction (one NIC per GPU)."""
    name: str
    aliases: tuple[str, ...]
    bandwidth_gb_s: float
    latency_us: float


@lru_cache(maxsize=None)
def links() -> tuple[Link, ...]:
    out = []
    for path in sorted(LINKS_DIR.glob("*.json")):
        raw = json.loads(path.read_text())
        out.append(Link(raw["name"], tuple(raw.get("aliases", ())), float(raw["bandwidth_gb_s"]["value"]),
                        float(raw["latency_us"]["value"])))
    return tuple(out)


def link_names() -> tuple[str, ...]:
    return tuple(link.name for link in links())


def get_link(name: str) -> Link:
    """The inter-node link called `name` (or one of its aliases, any case); EstimatorError if unknown."""
    key = name.lower()
    for link in links():
        if key == link.name.lower() or key in (a.lower() for a in link.aliases):
            return link
    raise EstimatorError(f"unknown network {name!r:.60}: use one of {', '.join(link_names())}")


def tp_layer_host_us(sharded_linears: int) -> float:
    """Host time the tensor-parallel hooks add to one decoder layer."""
    return sharded_linears * TP_LINEAR_HOST_US


def allreduce_us(prof: Profile, nbytes: float, gpus: int, nodes: int, nvlink_gb_s: float, network: str) -> float:
    """An all-reduce over `gpus` spread over `nodes`. One node: the calibrated grid (else a ring
    over the datasheet link). Several: NCCL's hierarchical ring - inside each node as calibrated,
    and between nodes a ring over the network moving 2(n-1)/n of each GPU's share (every GPU has
    its own NIC), with one network latency per ring step; the slower of the two bounds it."""
    per_node = gpus // nodes
    inside = prof.ring_allreduce_us(nbytes, per_node, nvlink_gb_s) if per_node > 1 else 0.0
    if nodes == 1:
        return inside
    link = get_link(network)
    across = (2 * (nodes - 1) / nodes * nbytes / per_node / (link.bandwidth_gb_s * GB) * 1e6
              + 2 * (nodes - 1) * link.latency_us)
    return max(inside, across)


def allgather_us(prof: Profile, nbytes: float, gpus: int, nodes: int, nvlink_gb_s: float, network: str) -> float:
    """An all-gather bringing `nbytes` into every GPU: inside a node over NVLink, the share of
    other nodes over the network (each GPU through its own NIC)."""
    inside = prof.allgather_us(nbytes, nvlink_gb_s)
    if nodes == 1:
        return inside
    link = get_link(network)
    remote = nbytes * (nodes - 1) / nodes
    return max(inside, remote / (link.bandwidth_gb_s * GB) * 1e6 + (nodes - 1) * link.latency_us)


def allreduce_us_many(prof: Profile, nbytes, gpus: int, nodes: int, nvlink_gb_s: float, network: str):
    """allreduce_us of an array of sizes (forward_many.py): the same rule, the same floats."""
    import numpy as np
    per_node = gpus // nodes
    inside = prof.ring_allreduce_us_many(nbytes, per_node, nvlink_gb_s) if per_node > 1 else np.zeros(np.shape(nbytes))
    if nodes == 1:
        return inside
    link = get_link(network)
    across = (2 * (nodes - 1) / nodes * nbytes / per_node / (link.bandwidth_gb_s * GB) * 1e6
              + 2 * (nodes - 1) * link.latency_us)
    return np.where(inside >= across, inside, across)


def allgather_us_many(prof: Profile, nbytes, gpus: int, nodes: int, nvlink_gb_s: float, network: str):
    """allgather_us of an array of sizes (forward_many.py)."""
    import numpy as np
    inside = prof.allgather_us(nbytes, nvlink_gb_s)
    if nodes == 1:
        return inside
    link = get_link(network)
    remote = nbytes * (nodes - 1) / nodes
    across = remote / (link.bandwidth_gb_s * GB) * 1e6 + (nodes - 1) * link.latency_us
    return np.where(inside >= across, inside, across)
