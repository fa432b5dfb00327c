"""Host overhead of eager transformers code, measured on tiny random models of each family.

``time_host_overhead`` times tiny models of two depths on one device: per-layer and fixed wall
time. ``dispatch_overhead_us`` times the same kind of model split over two GPUs by accelerate's
``dispatch_model``, which wraps every top-level module in an ``AlignDevicesHook`` that inspects
and moves its inputs: for small models that host time adds to every layer.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Optional, Sequence

import torch

from ..families import HOST_MODEL_TYPES, family_of, tiny_config_kwargs
from ..families.base import Family
from .host_ops import gc_off
from .timing import Log, free, median, sync

HOST_FAMILIES = HOST_MODEL_TYPES
# A quick calibration (the CPU, tests) times the three reference codes only: tiny MoE models
# alone took minutes on a loaded 2-core CPU.
QUICK_HOST_TYPES = ("llama", "opt", "gpt2")
# Timed calls per tiny model: with the GC frozen and off the median of 24 is as steady as 40 were
# (the spread of a host-bound pass is the host's own speed, measured apart by the CPU probe)
HOST_CALLS = 24
HOST_ROUNDS = 6           # timed rounds of the host stage (one more, untimed, warms up)
FORWARD_PER_ROUND = HOST_CALLS // HOST_ROUNDS   # forward calls per model per round: HOST_CALLS in all
HOST_LAYERS = (2, 12)  # a 10-layer difference: the per-layer time stands well above noise
DISPATCH_LAYERS = 6
GENERATE_STEPS = (2, 10)  # new tokens per generate call: 8 more steps stand well above noise


def tiny_config(model_type: str, layers: int) -> Any:
    """A tiny random transformers config of one model type (its family module holds the sizes)."""
    from transformers import AutoConfig

    return AutoConfig.for_model(**tiny_config_kwargs(model_type, layers))


def tiny_model(family: str, layers: int, device: torch.device) -> torch.nn.Module:
    """A tiny random causal LM of one family on `device` (fp16 on GPU, fp32 on CPU), eval mode."""
    from transformers import AutoModelForCausalLM

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_config(tiny_config(family, layers))
    return model.to(device=device, dtype=dtype).eval()


def time_models(models: Sequence[torch.nn.Module], device: torch.device, warmup: int = 5,
                calls: int = 40, sync_devices: Optional[Sequence[torch.device]] = None) -> list[float]:
    """Median wall time (us) of model(input_ids) per model, each call synchronised.

    Inputs live on `device`; each call waits for every one of `sync_devices` (default: `device`)
    before and after. Calls alternate between the models so that drifts hit all alike.
    """
    waits = list(sync_devices or [device])
    ids = torch.randint(0, 256, (1, 8), device=device)
    times: list[list[float]] = [[] for _ in models]
    with torch.inference_mode(), gc_off():
        for i in range(warmup + calls):
            for model, row in zip(models, times):
                for d in waits:
                    sync(d)
                t0 = time.perf_counter()
                model(ids)
                for d in waits:
                    sync(d)
                if i >= warmup:
                    row.append((time.perf_counter() - t0) * 1e6)
    return [median(row) for row in times]


def preload_host_models(families: Sequence[str] = HOST_FAMILIES) -> None:
    """Import transformers and run each tiny model once on the CPU, so that one-off import and
    set-up costs stay out of the GPU host-overhead timings (errors surface there, not here)."""
    for family in families:
        try:
            with torch.inference_mode():
                tiny_model(family, 1, torch.device("cpu"))(torch.zeros(1, 8, dtype=torch.long))
        except Exception:
            pass


def time_host_overhead(device: torch.device, families: Sequence[str] = HOST_FAMILIES,
                       log: Log = print) -> dict[str, dict[str, Any]]:
    """Per-layer and fixed wall time of tiny models (L=2 vs L=12) per family: eager host overhead
    (``time_host_families`` without generate)."""
    return time_host_families(device, families, (), log)[0]


def time_generate_overhead(device: torch.device, families: Sequence[str] = HOST_FAMILIES,
                           log: Log = print) -> dict[str, dict[str, Any]]:
    """model.generate's own host time per family (``time_host_families``, its generate part)."""
    return time_host_families(device, families, families, log)[1]


def time_host_families(device: torch.device, families: Sequence[str] = HOST_FAMILIES,
                       generate_families: Sequence[str] = (), log: Log = print,
                       rounds: int = HOST_ROUNDS) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The host stage: every family's tiny models (L=2 and L=12) timed in one loop, round-robin.

    Forward: model(input_ids), FORWARD_PER_ROUND calls per model per round, each synchronised;
    per-layer = (T(12) - T(2)) / 10 and fixed = T(2) - 2 x per-layer from the medians.
    generate() (the families in `generate_families`): greedy, eos_token_id=None, min_new_tokens =
    max_new_tokens, at both depths x GENERATE_STEPS new tokens, once per round;
    T(L, N) = setup(L) + N x step(L) (``fit_generate_host``).

    Why one loop: the host of a lent machine moves 1.5-2x within seconds. Timed one family after
    another (forward for all, then generate for all), each family's figures were taken at a moment
    of their own: on the 2026-12-03 loan 3 the same family's decode-step layer came out 0.5-1.7x its
    forward layer, and Qwen3's forward 1.36x loan 1's where Llama's was 0.92x. Round-robin, every
    family's forward and generate share the host's moments, so their ratios and the families'
    relative costs are the model's, not the host's. The first round is a warm-up (untimed)."""
    lo, hi = HOST_LAYERS
    n1, n2 = GENERATE_STEPS
    gen_set = set(generate_families)
    models: dict[str, tuple[torch.nn.Module, torch.nn.Module]] = {}
    for family in families:
        try:
            models[family] = (tiny_model(family, lo, device), tiny_model(family, hi, device))
        except Exception as exc:  # a transformers version without this family: skip, keep going
            log(f"  host {family}: failed ({type(exc).__name__}: {exc}), skipped")
    ids = torch.randint(1, 256, (1, 8), device=device)
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    fwd: dict[str, dict[int, list[float]]] = {f: {lo: [], hi: []} for f in models}
    gen: dict[str, dict[tuple[int, int], list[float]]] = {f: {} for f in models if f in gen_set}
    failed: set[str] = set()

    def timed_us(call) -> float:
        sync(device)
        t0 = time.perf_counter()
        call()
        sync(device)
        return (time.perf_counter() - t0) * 1e6

    order = list(models)
    try:
        with torch.inference_mode(), gc_off():
            for r in range(rounds + 1):   # round 0: warm-up
                for family in order[r % len(order):] + order[:r % len(order)] if order else ():
                    if family in failed:
                        continue
                    pair = models[family]
                    try:
                        for _ in range(FORWARD_PER_ROUND):
                            for model, layers in zip(pair, (lo, hi)):
                                t = timed_us(lambda: model(ids))
                                if r:
                                    fwd[family][layers].append(t)
                        if family in gen:
                            for model, layers in zip(pair, (lo, hi)):
                                for n in (n1, n2):
                                    t = timed_us(lambda: model.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw))
                                    if r:
                                        gen[family].setdefault((layers, n), []).append(t)
                    except Exception as exc:  # noqa: BLE001 - one family must not end the stage
                        log(f"  host {family}: failed ({type(exc).__name__}: {exc}), skipped")
                        failed.add(family)
    finally:
        models.clear()
        free(device)
    host: dict[str, dict[str, Any]] = {}
    generate: dict[str, dict[str, Any]] = {}
    for family in order:
        if family in failed:
            continue
        t_lo, t_hi = median(fwd[family][lo]), median(fwd[family][hi])
        per_layer = (t_hi - t_lo) / (hi - lo)
        host[family] = {"per_layer_us": round(per_layer, 3), "fixed_us": round(t_lo - lo * per_layer, 3),
                        "layers_measured": [lo, hi]}
        log(f"host {family}: {per_layer:.1f} us/layer + {t_lo - lo * per_layer:.1f} us fixed")
        if family in gen:
            g = generate[family] = fit_generate_host({k: median(v) for k, v in gen[family].items()})
            log(f"generate {family}: set-up {g['setup_us']:.0f} us, per step "
                f"{g['step_us']:.0f} us + {g['step_per_layer_us']:.1f} us/layer")
    return host, generate


def _line_non_negative(x: tuple[int, int], y: tuple[float, float]) -> tuple[float, float]:
    """(intercept, slope) of the line through two points, neither negative: a noisy pair whose
    line would cross zero (a negative set-up of -1107 us was stored once) gets the closest line
    with that coefficient at 0 (the mean of the points, or a line through the origin)."""
    (x0, x1), (y0, y1) = x, (max(0.0, y[0]), max(0.0, y[1]))
    slope = (y1 - y0) / (x1 - x0)
    icpt = y0 - x0 * slope
    if slope < 0:
        return (y0 + y1) / 2, 0.0
    if icpt < 0:
        return 0.0, (y0 / x0 + y1 / x1) / 2 if x0 and x1 else y1 / max(x1, 1)
    return icpt, slope


def fit_generate_host(t: dict[tuple[int, int], float]) -> dict[str, Any]:
    """The four coefficients from median times T[(layers, steps)] at two depths x two step counts;
    none negative (each line fitted with _line_non_negative)."""
    (lo, hi), (n1, n2) = HOST_LAYERS, GENERATE_STEPS
    step, setup = {}, {}
    for L in (lo, hi):
        setup[L], step[L] = _line_non_negative((n1, n2), (t[(L, n1)], t[(L, n2)]))
    step_us, step_per_layer = _line_non_negative((lo, hi), (step[lo], step[hi]))
    setup_us, setup_per_layer = _line_non_negative((lo, hi), (setup[lo], setup[hi]))
    return {"setup_us": round(setup_us, 3), "setup_per_layer_us": round(setup_per_layer, 3),
            "step_us": round(step_us, 3), "step_per_layer_us": round(step_per_layer, 3),
            "layers_measured": [lo, hi], "steps_measured": [n1, n2]}


def split_device_map(model: torch.nn.Module, layers: int) -> dict[str, int]:
    """accelerate device_map putting the first half of the layers (and embeddings) on GPU 0,
    the rest, the final norm and lm_head on GPU 1 (lm_head with the embeddings when tied). The
    family (of model.config.model_type) names where its modules are."""
    family = family_of(model.config.model_type) or Family()
    device_map: dict[str, int] = {}
    base = model.base_model_prefix
    inner = getattr(model, base)
    if family.hf_decoder_attr:   # OPT: model.decoder.{embed_tokens, layers, ...}
        inner, base = getattr(inner, family.hf_decoder_attr), f"{base}.{family.hf_decoder_attr}"
    for n, child in inner.named_children():
        if isinstance(child, torch.nn.ModuleList):
            for i in range(len(child)):
                device_map[f"{base}.{n}.{i}"] = 0 if i < layers // 2 else 1
        else:
            device_map[f"{base}.{n}"] = 0 if "emb" in n or n in family.hf_input_modules else 1
    device_map["lm_head"] = 1
    if model.config.tie_word_embeddings:
        device_map["lm_head"] = device_map.get(f"{base}.{family.hf_token_embedding}", 0)
    return device_map


def dispatch_overhead_us(families: Sequence[str] = HOST_FAMILIES, log: Log = print) -> dict[str, float]:
    """Per hooked module: (time dispatched over 2 GPUs - time on one GPU) / hooked modules."""
    from accelerate import dispatch_model
    from accelerate.hooks import remove_hook_from_module

    if torch.cuda.device_count() < 2:
        return {}
    gpu0, gpus = torch.device("cuda", 0), [torch.device("cuda", 0), torch.device("cuda", 1)]
    out = {}
    for family in families:
        model = None
        try:
            model = tiny_model(family, DISPATCH_LAYERS, gpu0)
            [plain] = time_models([model], gpu0, sync_devices=gpus)
            device_map = split_device_map(model, DISPATCH_LAYERS)
            dispatch_model(model, device_map=device_map)
            [split] = time_models([model], gpu0, sync_devices=gpus)
            out[family] = max(0.0, (split - plain) / len(device_map))
            log(f"dispatch hooks {family}: {plain:.0f} us plain, {split:.0f} us split over 2 GPUs, "
                f"{out[family]:.1f} us per hooked module ({len(device_map)} modules)")
        except Exception as exc:  # noqa: BLE001 - calibration must not crash on one family
            log(f"dispatch hooks {family}: failed ({(str(exc).splitlines() or [''])[0][:120]})")
        finally:
            if model is not None:
                with contextlib.suppress(Exception):
                    remove_hook_from_module(model, recurse=True)
            model = None
            torch.cuda.empty_cache()
    return out
