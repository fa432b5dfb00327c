"""Host overhead of accelerate's dispatch hooks, measured on a tiny model split over two GPUs.

A pipeline split (``dispatch_model``) wraps every top-level module in an ``AlignDevicesHook``
that inspects and moves its inputs. For small models that host time adds to every layer.
"""
from __future__ import annotations

import time
from typing import Callable

import torch


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def _time(model: torch.nn.Module, ids: torch.Tensor, calls: int = 40, warmup: int = 5) -> float:
    times = []
    with torch.inference_mode():
        for i in range(warmup + calls):
            torch.cuda.synchronize(0)
            torch.cuda.synchronize(1)
            t0 = time.perf_counter()
            model(ids)
            torch.cuda.synchronize(0)
            torch.cuda.synchronize(1)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e6)
    return _median(times)


def dispatch_overhead_us(family_configs: dict[str, Callable[[int], object]], log=print) -> dict[str, float]:
    """Per hooked module: (time dispatched over 2 GPUs - time on one GPU) / hooked modules."""
    from accelerate import dispatch_model
    from transformers import AutoModelForCausalLM
    if torch.cuda.device_count() < 2:
        return {}
    out = {}
    layers = 6
    for family, make in family_configs.items():
        try:
            model = AutoModelForCausalLM.from_config(make(layers)).to("cuda:0", torch.float16).eval()
            ids = torch.randint(0, 256, (1, 8), device="cuda:0")
            plain = _time(model, ids)
            device_map = {}
            base = model.base_model_prefix
            inner = getattr(model, base)
            if hasattr(inner, "decoder"):  # OPT: model.decoder.{embed_tokens, layers, ...}
                inner, base = inner.decoder, f"{base}.decoder"
            for n, child in inner.named_children():
                if isinstance(child, torch.nn.ModuleList):
                    for i in range(len(child)):
                        device_map[f"{base}.{n}.{i}"] = 0 if i < layers // 2 else 1
                else:
                    device_map[f"{base}.{n}"] = 0 if "emb" in n or n in ("wte", "wpe") else 1
            device_map["lm_head"] = 1
            tied = model.config.tie_word_embeddings
            if tied:
                device_map["lm_head"] = device_map.get(f"{base}.embed_tokens", device_map.get(f"{base}.wte", 0))
            dispatch_model(model, device_map=device_map)
            split = _time(model, ids)
            out[family] = max(0.0, (split - plain) / len(device_map))
            log(f"dispatch hooks {family}: {plain:.0f} us plain, {split:.0f} us split over 2 GPUs, "
                f"{out[family]:.1f} us per hooked module ({len(device_map)} modules)")
        except Exception as exc:  # noqa: BLE001 - calibration must not crash on one family
            log(f"dispatch hooks {family}: failed ({str(exc).splitlines()[0][:120]})")
        finally:
            try:
                from accelerate.hooks import remove_hook_from_module
                remove_hook_from_module(model, recurse=True)
            except Exception:  # noqa: BLE001
                pass
            model = None
            torch.cuda.empty_cache()
    return out
