"""Node: one module of the tree accelerate walks for a device map, as each family describes it.

A leaf module: the families build their ``module_tree`` from these, placement.py walks it.
Kinds are the names placement.py looks for: "embed" (token embedding), "layer" (a decoder
layer), "norm" (final norm), "head" (LM head), "rotary" (rotary_emb); a family may name others
(OPT's "pos", "proj_in", "proj_out", GPT-2's "drop") in its ``hidden_path_in`` / ``hidden_path_out``.
"""
from __future__ import annotations


class Node:
    """One module of the tree accelerate walks: size as accelerate counts it (params + buffers,
    tied head 0), param_bytes (what is resident), children (None for unsplittable)."""
    __slots__ = ("name", "size", "param_bytes", "children", "kind", "leaves")

    def __init__(self, name, size=0, param_bytes=0, children=None, kind="", leaves=0):
        self.name, self.kind, self.children = name, kind, children
        if children:
            size = sum(c.size for c in children)
            param_bytes = sum(c.param_bytes for c in children)
            leaves = sum(c.leaves for c in children)
        self.size, self.param_bytes, self.leaves = size, param_bytes, leaves


def leaf(name: str, nbytes: int, kind: str) -> Node:
    """An unsplittable module owning `nbytes` of parameters (a leaf module unless empty)."""
    return Node(name, nbytes, nbytes, None, kind, 1 if nbytes else 0)


def decoder_layers(name: str, count: int, layer_bytes, leaves_per_layer: int) -> Node:
    """The layer list `name`: `count` unsplittable decoder layers of `leaves_per_layer` leaf
    modules, of `layer_bytes` each (an int) or layer by layer (a sequence of `count` ints)."""
    each = [layer_bytes] * count if isinstance(layer_bytes, int) else list(layer_bytes)
    if len(each) != count:
        raise ValueError(f"{name}: {len(each)} layer sizes for {count} layers")
    return Node(name, children=[Node(f"{name}.{i}", b, b, None, "layer", leaves_per_layer)
                                for i, b in enumerate(each)])
