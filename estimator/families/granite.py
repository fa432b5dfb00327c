"""Granite (ibm-granite/granite-3.*): Llama's layer with four multipliers, read from
transformers' modeling_granite.py. Three of them are eager kernels, launched even at 1.0:

- embedding_multiplier: ``inputs_embeds * m`` after the token embedding (one kernel);
- residual_multiplier: ``residual + out * m`` on both sub-layers (one kernel before each add);
- logits_scaling: ``logits / s`` after the LM head (one kernel over the logits, a second
  logits-sized tensor alive while the first is still referenced);
- attention_multiplier is SDPA's ``scale`` argument: no kernel of its own.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..op_builders import Op, ew
from .llama import Llama

if TYPE_CHECKING:
    from ..spec import ModelSpec


class Granite(Llama):
    name = "granite"
    model_types = ("granite",)

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        return super().spec_fields(cfg, "llama", a)   # GraniteConfig: Llama's fields and defaults

    def default_attention(self, cfg: dict, model_type: str, layers: int) -> list[str]:
        return ["full"] * layers

    def embedding_ops(self, spec: ModelSpec, batch: int, seq: int, e: int) -> list[Op]:
        return [ew("embedding_multiplier", "embeddings", batch * seq * spec.hidden, 2 * e, "unary")]

    def sublayer_output_ops(self, spec: ModelSpec, name: str, t: int, e: int) -> list[Op]:
        return [ew(f"{name.removeprefix('post_')}.residual_multiplier", "residuals", t * spec.hidden, 2 * e, "unary")]

    def head_ops(self, spec: ModelSpec, t: int, vocab: int, e: int) -> list[Op]:
        return [ew("logits_scaling", "lm head", t * vocab, 2 * e, "unary")]

    def logit_copies(self, spec: ModelSpec) -> int:
        return 2


GRANITE = Granite()
