"""Build a model from its shipped config with random weights on the GPU(s), and free it again."""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

import torch

from estimator.model import config_path

TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
# Allocated memory may exceed the baseline by this much after a case (cuBLAS workspaces, per GPU).
BASELINE_SLACK_BYTES = 64 * 2**20
# A CPU case is built only when RAM available exceeds its estimated peak by this factor
# (random initialisation and the allocator's slack come on top of the estimate).
HOST_RAM_HEADROOM = 1.25


def _config(name: str):
    """The exact config file the estimator reads for `name` (a zoo name, a folder, or any
    path/to/config.json: the file itself, never <its folder>/config.json)."""
    from transformers import AutoConfig
    return AutoConfig.from_pretrained(str(config_path(name)))


ACTIVATION_FIELDS = ("hidden_act", "hidden_activation", "activation_function")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2])[:300] if lines else type(exc).__name__


def config_problem(name: str) -> str | None:
    """Why transformers would refuse to build `name`'s config (its own loading and validation,
    and its activation table), in one line, or None. Called before anything is measured, so
    the case skips with the reason instead of failing when from_config raises."""
    from transformers.activations import ACT2FN
    path = config_path(name)
    try:
        cfg = _config(name)
        if callable(getattr(cfg, "validate", None)):
            cfg.validate()
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds; each is a refusal
        return f"transformers refuses the config {path}: {type(exc).__name__}: {_first_line(exc)}"
    for key in ACTIVATION_FIELDS:
        act = getattr(cfg, key, None)
        if isinstance(act, str) and act not in ACT2FN:
            return f"transformers refuses the config {path}: {key} {act!r:.60} is not in its ACT2FN"
    return None


def host_ram_problem(needed_bytes: float, available_bytes: int | None) -> str | None:
    """Why a CPU case must not be built (its model and forward pass would not fit in the host
    RAM available now, with HOST_RAM_HEADROOM to spare), or None. Unknown RAM: no objection.
    opt-6.7b in float32 on a small machine otherwise dies in the kernel's OOM killer."""
    if available_bytes is None or needed_bytes * HOST_RAM_HEADROOM <= available_bytes:
        return None
    return (f"out of host memory: needs about {needed_bytes / 1e9:.1f} GB of RAM, "
            f"{available_bytes / 1e9:.1f} GB available")


def build(name: str, dtype: str, device: str, gpus: int = 1, experts: str | None = None) -> torch.nn.Module:
    """Random-weight model on `device` (cuda:0 / cpu); split over `gpus` GPUs like accelerate does.
    `experts`: an MoE model's experts_implementation (grouped_mm | batched_mm | eager), the one
    its estimate prices; None leaves transformers' own choice."""
    from transformers import AutoModelForCausalLM
    cfg = _config(name)
    kw = {}
    if experts is not None:
        cfg._experts_implementation = experts
        kw["experts_implementation"] = experts
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=TORCH_DTYPES[dtype], **kw)
    model.eval()
    if gpus > 1:
        _dispatch(model, dtype, gpus)
    return model


def _dispatch(model: torch.nn.Module, dtype: str, gpus: int) -> None:
    """Pipeline split: accelerate's balanced device map over the first `gpus` GPUs."""
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.utils import get_balanced_memory
    no_split = getattr(model, "_no_split_modules", None) or []
    free = {i: torch.cuda.mem_get_info(i)[1] for i in range(gpus)}  # total bytes: nothing else runs
    max_memory = get_balanced_memory(model, max_memory=free, no_split_module_classes=no_split,
                                     dtype=TORCH_DTYPES[dtype])
    device_map = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=no_split,
                                       dtype=TORCH_DTYPES[dtype])
    dispatch_model(model, device_map=device_map)
    model.bench_device_map = device_map  # kept for the results file


def free(model: torch.nn.Module | None) -> None:
    """Drop accelerate's hooks (they hold references) and every weight, then empty the caches."""
    if model is not None:
        try:
            from accelerate.hooks import remove_hook_from_module
            remove_hook_from_module(model, recurse=True)
        except Exception:  # noqa: BLE001 - no hooks to remove on single-device models
            pass
        for p in list(model.parameters()) + list(model.buffers()):
            p.data = torch.empty(0, device=p.device)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def allocated_bytes(gpus: int) -> list[int]:
    return [torch.cuda.memory_allocated(i) for i in range(gpus)] if torch.cuda.is_available() else []


@contextmanager
def built(name: str, dtype: str, device: str, gpus: int = 1, experts: str | None = None) -> Iterator[torch.nn.Module]:
    """The model for one case; afterwards checks allocated memory is back at its baseline. A
    config transformers refuses skips the case with the reason (config_problem), before building."""
    problem = config_problem(name)
    if problem:
        import pytest
        pytest.skip(problem)
    n = torch.cuda.device_count() if device.startswith("cuda") else 0
    baseline = allocated_bytes(n)
    model = None
    try:
        model = build(name, dtype, device, gpus, experts)
        yield model
    finally:
        free(model)
        del model
        gc.collect()
        after = allocated_bytes(n)
        leaked = [a - b for a, b in zip(after, baseline) if a - b > BASELINE_SLACK_BYTES]
        if leaked:
            raise RuntimeError(f"GPU memory not freed after {name}: {[round(x / 1e9, 3) for x in leaked]} GB above baseline")
