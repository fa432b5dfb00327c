"""Workload: what one forward pass processes and how it is spread over GPUs."""
from __future__ import annotations

from dataclasses import dataclass

from .distributed import get_link, link_names
from .errors import EstimatorError
from .front_door import MAX_GPUS, check_bool, check_choice, check_int, shown

DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
DTYPE_ALIASES = {"fp16": "float16", "half": "float16", "bf16": "bfloat16",
                 "fp32": "float32", "float": "float32"}
PARALLEL_MODES = ("pipeline", "data", "tensor")
EXPERTS_IMPLEMENTATIONS = ("grouped_mm", "batched_mm", "eager")   # transformers 5.x (integrations/moe.py)


def normalize_dtype(dtype: str) -> str:
    """'fp16', 'torch.bfloat16', 'float32', ... -> the canonical dtype name; EstimatorError if unknown."""
    d = str(dtype).replace("torch.", "").lower()
    d = DTYPE_ALIASES.get(d, d)
    if d not in DTYPE_BYTES:
        raise EstimatorError(f"unknown dtype {shown(dtype)}: use one of {', '.join(DTYPE_BYTES)}")
    return d


def normalize_parallel(mode: str) -> str:
    """A parallel mode as given, checked against PARALLEL_MODES; EstimatorError if unknown."""
    return check_choice(mode, "parallel mode", PARALLEL_MODES)


@dataclass(frozen=True)
class Workload:
    """batch x seq tokens through model(input_ids), logits for every position.

    ``parallel`` only matters for gpus > 1: pipeline = layers split over GPUs, run one after
    another (accelerate's balanced device map); data = batch split over full replicas;
    tensor = every layer sharded Megatron-style, two all-reduces per layer.
    """

    batch: int = 16
    seq: int = 1024
    dtype: str = "float16"
    gpus: int = 1
    parallel: str = "pipeline"
    tf32: bool = False  # torch.backends.cuda.matmul.allow_tf32; torch's default is off
    nodes: int = 1      # machines the GPUs are spread over (data / tensor parallel), gpus / nodes each
    network: str = "InfiniBand NDR 400 Gb/s"  # link between nodes (estimator/devices/links/)
    new_tokens: int = 0  # > 0: model.generate (greedy, no early stop): prefill, then new_tokens - 1 decode steps
    use_cache: bool = True  # False: model(input_ids, use_cache=False), no K/V cache kept (plain forward only)
    # MoE models: transformers' experts_implementation (grouped_mm | batched_mm | eager); None =
    # what transformers picks itself (grouped_mm; generate's decode steps on a GPU: batched_mm)
    experts_implementation: str | None = None

    def __post_init__(self) -> None:
        for field in ("batch", "seq", "nodes"):
            check_int(getattr(self, field), field)
        check_int(self.gpus, "gpus", maximum=MAX_GPUS)
        check_int(self.new_tokens, "new_tokens", minimum=0)
        check_bool(self.tf32, "tf32")
        check_bool(self.use_cache, "use_cache")
        if not isinstance(self.dtype, str):
            raise EstimatorError(f"dtype must be one of {', '.join(DTYPE_BYTES)}; got {shown(self.dtype)}")
        check_choice(self.parallel, "parallel mode", PARALLEL_MODES)
        if not isinstance(self.network, str):
            raise EstimatorError(f"network must be the name of an inter-node link ({', '.join(link_names())}); "
                                 f"got {shown(self.network)}")
        get_link(self.network)   # unknown names refused even on one node: the typo is the same
        if self.new_tokens and not self.use_cache:
            raise EstimatorError("new_tokens with use_cache=False is not modelled: generate decodes with the KV cache")
        if self.experts_implementation is not None:
            check_choice(self.experts_implementation, "experts implementation", EXPERTS_IMPLEMENTATIONS)
        object.__setattr__(self, "dtype", normalize_dtype(self.dtype))
        if self.gpus % self.nodes:
            raise EstimatorError(f"gpus ({self.gpus}) must split evenly over nodes ({self.nodes})")

    @property
    def gpus_per_node(self) -> int:
        return self.gpus // self.nodes

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]
