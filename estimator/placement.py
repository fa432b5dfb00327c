"""Where accelerate puts each part of a model when the benchmark splits it over N GPUs (pipeline mode).

The benchmark does, on a GPU machine::

    max_memory = get_balanced_memory(model, max_memory={i: free_i for i in range(N)},
                                     no_split_module_classes=model._no_split_modules, dtype=dtype)
    device_map = infer_auto_device_map(model, max_memory=max_memory,
                                       no_split_module_classes=model._no_split_modules, dtype=dtype)
    dispatch_model(model, device_map=device_map)

`pipeline_placement` reproduces that result arithmetically from a ModelSpec (no torch, no accelerate),
by replaying accelerate 1.15's two functions on a small tree of module sizes:

get_balanced_memory (low_zero=False, every GPU given the same free bytes M)
    total  = bytes of every parameter (a tied LM head counted once, in the embedding) and buffer
             (rotary inv_freq and original_inv_freq: 2 x head_dim/2 floats each sized min(dtype, 4))
    buffer = int(1.25 * max(one decoder layer, int(total / number of leaf modules)))
    GPUs 0..N-2 get min(total // N + buffer, M); the last GPU keeps M.

infer_auto_device_map (greedy walk over model children in module-definition order)
    The walk pops the first pending module; if it fits on the current GPU it goes there whole,
    otherwise it is split into its children (containers: model, model.decoder, the layer list) or,
    when it cannot be split (a decoder layer, an embedding, a norm, lm_head), the walk moves on to
    the next GPU. GPU 0 alone (accelerate's "main device") keeps room for the largest unsplittable
    module still pending (for OPT / Qwen that is the token embedding until it is placed, then a
    decoder layer), the other GPUs are filled up to their limit. A tied lm_head has size 0 there
    and is put on the embedding's GPU when the embedding is placed. Definition order matters:
    OPT's decoder defines final_layer_norm *before* its layers, so it lands on GPU 0 (with the
    embeddings) and the hidden state comes back to GPU 0 after the last layer; Llama-family
    models define norm and rotary_emb after the layers, so both land on the last GPU used.
    Whatever is left after the last GPU would go to "disk": that raises EstimatorError here.

Transfers (`boundaries`) count copies of the hidden state (batch x seq x hidden) between GPUs along
the forward pass: embeddings -> layers in order -> final norm -> LM head, plus one more when the
rotary module is on another GPU than the embeddings (accelerate's hook copies the hidden state it is
called with to that GPU). The rotary cos/sin (2 x batch x seq x head_dim) are then copied once for
every layer on a GPU other than `rotary_gpu` (`rotary_copies`). Not counted: the top-level hook
copies the logits back to the device of input_ids when that is not `head_gpu`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from .device import GB
from .errors import EstimatorError
from .module_tree import Node

if TYPE_CHECKING:
    from .spec import ModelSpec


@dataclass(frozen=True)
class Stage:
    """One step of the forward pass on one GPU, in the order the hidden state goes through them."""
    part: str        # embeddings | rotary | layers | final norm | lm head
    gpu: int
    layers: int = 0  # decoder layers run here (part "layers")


@dataclass(frozen=True)
class Placement:
    layers_per_gpu: tuple[int, ...]         # decoder layers on each GPU, in order (zeros for unused GPUs)
    embed_gpu: int                          # token (and learned position) embeddings
    head_gpu: int                           # LM head (== embed_gpu when tied)
    final_norm_gpu: int                     # -1 when the decoder has no final norm (OPT-350m)
    weight_bytes_per_gpu: tuple[float, ...]  # parameter bytes resident on each GPU (tied weight once)
    boundaries: int                         # hidden-state copies between GPUs in one forward pass
    rotary_gpu: int = -1                    # GPU of rotary_emb in an accelerate split, else -1

    @property
    def gpus(self) -> int:
        return len(self.layers_per_gpu)

    @property
    def gpus_used(self) -> int:
        return sum(1 for b in self.weight_bytes_per_gpu if b > 0)

    def layer_gpu(self, i: int) -> int:
        """GPU of decoder layer i."""
        for gpu, n in enumerate(self.layers_per_gpu):
            if i < n:
                return gpu
            i -= n
        raise IndexError(i)

    @cached_property
    def stages(self) -> tuple[Stage, ...]:
        """Embeddings, the rotary module when it is on another GPU (its hook copies the hidden
        state there, the decoder keeps its own), each GPU's run of layers, final norm, LM head
        (built once per placement: placements are memoized, every pass walks their stages)."""
        stages = [Stage("embeddings", self.embed_gpu)]
        if self.rotary_gpu >= 0 and self.rotary_gpu != self.embed_gpu:
            stages.append(Stage("rotary", self.rotary_gpu))
        stages += [Stage("layers", g, n) for g, n in enumerate(self.layers_per_gpu) if n]
        if self.final_norm_gpu >= 0:
            stages.append(Stage("final norm", self.final_norm_gpu))
        return (*stages, Stage("lm head", self.head_gpu))

    @property
    def rotary_copies(self) -> int:
        """Layers whose GPU differs from rotary_gpu: each copies the rotary cos/sin to itself."""
        if self.rotary_gpu < 0:
            return 0
        return sum(n for g, n in enumerate(self.layers_per_gpu) if g != self.rotary_gpu)


def _tree(spec: ModelSpec, d: int) -> tuple[list[Node], int]:
    """Top-level modules in definition order, and the size of the first decoder layer (accelerate's
    get_balanced_memory buffer is the size of the first no-split module it meets: DeepSeek's and
    GLM's dense first layer, not their MoE layers). The family's module_tree gets one size when
    every layer is alike, else each layer's."""
    each = spec.layer_weight_bytes_each(d)   # FP8 linears: their 1-byte weights and scales (fp8.py)
    layer_bytes = each[0] if len(set(each)) == 1 else each
    head = spec.head_weight_bytes(d)       # 0 when tied: accelerate dedups the shared weight
    body = spec.arch.module_tree(spec, d, layer_bytes)
    return [body, Node("lm_head", head, head, None, "head", 1 if head else 0)], each[0]


def _max_layer(modules: list[Node]) -> tuple[int, list[str]]:
    """accelerate's get_max_layer_size: largest leaf / no-split module, and all names at that size."""
    best, names = 0, []
    todo = list(modules)
    while todo:
        m = todo.pop(0)
        if not m.children:
            if m.size > best:
                best, names = m.size, [m.name]
            elif m.size == best:
                names.append(m.name)
        else:
            todo[:0] = m.children
    return best, names


def _walk(spec: ModelSpec, gpus: int, d: int, mem: float) -> dict:
    top, layer_bytes = _tree(spec, d)
    total = sum(m.size for m in top)
    leaves = sum(m.leaves for m in top)

    # ---- get_balanced_memory -----------------------------------------------------------------
    max_memory = [mem] * gpus
    per_gpu = total // gpus
    buffer = int(1.25 * max(layer_bytes, int(total / max(leaves, 1))))
    per_gpu += buffer
    for i in range(gpus - 1):
        max_memory[i] = min(per_gpu, mem)

    # ---- infer_auto_device_map ---------------------------------------------------------------
    tied = spec.tied_embeddings
    placed: list[tuple[Node, int]] = []
    used = [0] * gpus
    modules = list(top)
    max_size, max_names = _max_layer(modules)
    cur = 0
    while modules:
        m = modules.pop(0)
        prefix = m.name + "."
        max_names = [n for n in max_names if n != m.name and not n.startswith(prefix)]
        if not max_names:
            max_size, max_names = _max_layer(modules)
        if cur == gpus:   # accelerate would offload the rest to disk
            raise EstimatorError(
                f"{spec.name} does not fit in {gpus} GPU(s) of {mem / GB:.3g} GB with "
                f"{d}-byte weights: accelerate would offload {m.name} and later modules to disk")
        cap = max_memory[cur]
        reserved = 0
        if cur == 0:      # main device keeps room for the largest pending layer
            cap -= max_size
            reserved = max_size
        if used[cur] + m.size <= cap:
            used[cur] += m.size
            placed.append((m, cur))
            if tied and _contains_kind(m, "embed"):   # tied lm_head follows the embedding
                for j, other in enumerate(modules):
                    if other.kind == "head":
                        placed.append((modules.pop(j), cur))
                        break
            continue
        if m.children:    # too big: split into children (all splittable nodes here are containers)
            modules[:0] = m.children
            max_size, max_names = _max_layer(modules)
            continue
        used[cur] += reserved
        cur += 1
        modules.insert(0, m)

    dev: dict[str, int] = {}
    layers_per_gpu = [0] * gpus
    weight = [0.0] * gpus
    for m, g in placed:
        weight[g] += m.param_bytes
        stack = [m]
        while stack:
            n = stack.pop()
            if n.children:
                stack.extend(n.children)
            elif n.kind == "layer":
                layers_per_gpu[g] += 1
            elif n.kind:
                dev[n.kind] = g
    return dict(layers_per_gpu=layers_per_gpu, weight=weight, dev=dev)


def _contains_kind(m: Node, kind: str) -> bool:
    return m.kind == kind or any(_contains_kind(c, kind) for c in m.children or ())


@lru_cache(maxsize=1024)
def single_gpu_placement(spec: ModelSpec, dtype_bytes: int) -> Placement:
    """The whole model on GPU 0 without accelerate: nothing crosses GPUs (rotary_gpu -1). Its
    weights as the CUDA caching allocator holds them when built on the GPU (allocator.py).
    Memoized: every one-GPU estimate asks, and counting the weights walks the model."""
    from .allocator import allocator_overhead_bytes
    weights = spec.weight_bytes(dtype_bytes) + allocator_overhead_bytes(spec, dtype_bytes)
    return Placement(layers_per_gpu=(spec.layers,), embed_gpu=0, head_gpu=0,
                     final_norm_gpu=0 if spec.arch.has_final_norm(spec) else -1,
                     weight_bytes_per_gpu=(weights,), boundaries=0)


@lru_cache(maxsize=4096)
def pipeline_placement(spec: ModelSpec, gpus: int, dtype_bytes: int, gpu_memory_bytes: float) -> Placement:
    """accelerate 1.15's balanced device map of `spec` over `gpus` GPUs of `gpu_memory_bytes` free
    bytes each, with weights of `dtype_bytes` bytes. Raises EstimatorError if it does not fit."""
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1:
        raise EstimatorError(f"gpus must be a positive integer, got {gpus!r}")
    if not isinstance(dtype_bytes, int) or isinstance(dtype_bytes, bool) or dtype_bytes < 1:
        raise EstimatorError(f"dtype_bytes must be a positive integer, got {dtype_bytes!r}")
    if not gpu_memory_bytes > 0:
        raise EstimatorError(f"gpu_memory_bytes must be positive, got {gpu_memory_bytes!r}")
    r = _walk(spec, gpus, dtype_bytes, gpu_memory_bytes)
    dev, lpg = r["dev"], r["layers_per_gpu"]
    embed, norm, head = dev["embed"], dev.get("norm", -1), dev["head"]
    rotary = dev.get("rotary", -1)

    # hidden state along the forward pass: token embedding (and the family's modules after it:
    # OPT's project_in and positions, GPT-2's dropout), layers, final norm (+ OPT's project_out), head
    path = [embed] + [dev[k] for k in spec.arch.hidden_path_in if k in dev]
    path += [g for g, n in enumerate(lpg) if n]   # layers fill GPUs in order
    if norm >= 0:
        path.append(norm)
    path += [dev[k] for k in spec.arch.hidden_path_out if k in dev]
    path.append(head)
    boundaries = sum(a != b for a, b in zip(path, path[1:]))
    if rotary >= 0 and rotary != embed:
        boundaries += 1
    return Placement(layers_per_gpu=tuple(lpg), embed_gpu=embed, head_gpu=head, final_norm_gpu=norm,
                     weight_bytes_per_gpu=tuple(r["weight"]), boundaries=boundaries, rotary_gpu=rotary)
