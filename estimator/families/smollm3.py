"""SmolLM3 (HuggingFaceTB/SmolLM3-*): Llama's layer (modeling_smollm3.py) where every
no_rope_layer_interval-th layer (4) is a NoPE layer: ``use_rope = config.no_rope_layers[i]``
(1: rotate, 0: not), so those layers launch no rotary kernels.

Pricing: the estimator prices one layer kind per model today (layers.layer_groups), so every
layer is priced as a rotary one: an over-count of the ten rotary kernels (q and k) on each NoPE
layer, said in a note on every estimate. The NoPE layers are recorded (SmolFields.nope_layers)
for the per-layer pricing to come. Sliding layers (use_sliding_window, off in SmolLM3-3B) are
the NoPE layers, as SmolLM3Config derives layer_types.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config_fields import optional_bool, optional_size
from ..errors import EstimatorError
from ..layer_config import sliding_window
from ..spec import FamilyFields
from .llama import Llama

if TYPE_CHECKING:
    from ..spec import ModelSpec


@dataclass(frozen=True)
class SmolFields(FamilyFields):
    nope_layers: tuple[int, ...]   # indices of the layers without rotary positions


def rope_flags(cfg: dict, layers: int) -> list[int]:
    """SmolLM3Config.no_rope_layers: 1 where a layer rotates, else every interval-th layer has none."""
    flags = cfg.get("no_rope_layers")
    if flags is None:
        interval = optional_size(cfg, "no_rope_layer_interval", 4)
        return [int((i + 1) % interval != 0) for i in range(layers)]
    if (not isinstance(flags, list) or len(flags) != layers
            or any(f not in (0, 1) or isinstance(f, bool) for f in flags)):
        raise EstimatorError(f"no_rope_layers must be a list of {layers} flags 0 or 1 (one per layer)")
    return flags


class SmolLM3(Llama):
    name = "smollm3"
    model_types = ("smollm3",)
    host_extras = (14.2, 13.0)   # views, module calls per layer: a CPU count on transformers 5.24 less one view (base.py)
    tiny_config = dict(Llama.tiny_config, pad_token_id=0, bos_token_id=0, eos_token_id=0)

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        fields = super().spec_fields(cfg, "llama", a)
        flags = rope_flags(cfg, a["layers"])
        # SmolLM3Config: num_key_value_heads 4 when absent; ties its embeddings by default
        fields.update(tied_embeddings=optional_bool(cfg, "tie_word_embeddings", True),
                      family_fields=SmolFields(nope_layers=tuple(i for i, f in enumerate(flags) if not f)))
        if "num_key_value_heads" not in cfg:   # null: every head, as Llama's
            fields["kv_heads"] = 4
            if a["heads"] % 4:
                raise EstimatorError(f"num_attention_heads {a['heads']} is not divisible by num_key_value_heads 4")
        return fields

    def default_attention(self, cfg: dict, model_type: str, layers: int) -> list[str]:
        if not optional_bool(cfg, "use_sliding_window", False) or sliding_window(cfg) is None:
            return ["full"] * layers
        return ["full" if f else "sliding" for f in rope_flags(cfg, layers)]

    def estimate_notes(self, spec: ModelSpec, tokens: int) -> list[str]:
        nope = spec.fields_of(SmolFields).nope_layers
        if not nope:
            return []
        return [f"{len(nope)} of {spec.layers} layers are NoPE (no rotary positions) but are priced with the "
                f"rotary kernels of the others: 10 kernels over-counted on each (one layer kind per model today)"]


SMOLLM3 = SmolLM3()
