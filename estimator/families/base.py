"""Family: everything the estimator knows of one family of eager transformers models.

A family is one piece of modeling code in transformers (OPT, GPT-2, Llama and the model types
that share Llama's decoder layer). The generic modules ask it what differs between families:

- model.py:     ``aliases`` and ``spec_fields`` read a config.json into a ModelSpec;
- ops.py:       ``qkv_ops`` and ``pre_layer_ops`` add the family's own kernels;
- memory.py:    ``layer_live_per_token`` and ``position_rows`` count its live activations;
- placement.py: ``module_tree`` is the module tree accelerate walks for a device map;
- calibration:  ``tiny_config`` is the tiny random model host overhead is measured on.

Adding a family: a module here with a subclass of Family, registered in ``families/__init__.py``,
and its tests (parameter counts, kernels and placement against transformers and accelerate).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model import ModelSpec
    from ..ops import Op
    from ..placement import Node


class Family:
    name: str = ""                    # the ModelSpec.family value
    model_types: tuple[str, ...] = ()  # HF model_type values this code serves, the reference first
    aliases: dict[str, str] = {}      # our name -> HF config field (positive integers, read in order)
    tiny_config: dict[str, Any] = {}  # kwargs of a tiny random config, all but the layer count

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        """ModelSpec fields beyond the aliased ones `a`, with transformers' defaults for absent
        config fields; raises EstimatorError for a variant the estimator does not model."""
        raise NotImplementedError

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int) -> list[Op]:
        """Kernels from the normed layer input to the q, k, v that enter the cache and attention."""
        raise NotImplementedError

    def pre_layer_ops(self, spec: ModelSpec, seq: int, e: int) -> list[Op]:
        """Kernels the family adds before the first layer, after the embeddings."""
        return []

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        """Live activation elements per token at the busiest moment of attention and of the MLP,
        beyond the layer's input and its normed copy (q/kv head dims and FFN width of one shard)."""
        raise NotImplementedError

    def position_rows(self, t: int, seq: int) -> int:
        """Rows of position embeddings the decoder keeps referenced while its layers run."""
        return 0

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        """The base model (without lm_head) as accelerate sees it, children in definition order,
        with `d`-byte weights and decoder layers of `layer_bytes` each."""
        raise NotImplementedError

    def tiny_config_kwargs(self, model_type: str, layers: int) -> dict[str, Any]:
        """kwargs of ``transformers.AutoConfig.for_model`` for a tiny random model of `layers` layers."""
        return {"model_type": model_type, **self.tiny_config, self.aliases["layers"]: layers}
