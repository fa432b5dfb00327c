"""PhiMoE (microsoft/Phi-3.5-MoE-*): Mixtral's layer (modeling_phimoe.py: 16 experts, top-2,
transformers' experts_implementation as families/moe.py prices it) with
- nn.LayerNorm with bias for every norm (one kernel each), q/k/v/o biases (attention_bias) and
  an LM head bias (lm_head_bias);
- the sparsemixer router (eval mode, top-2 by construction): per pick, the max of the scores,
  abs, clamp, sub, div, greater, masked_fill, softmax and a gather; between the picks a scatter
  of -inf into a copy of the scores; then two cats. Its weights stay in the model's dtype (no
  float32 product as Mixtral's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..layers import PLAIN, LayerSpec
from ..config_fields import optional_bool
from ..errors import EstimatorError
from ..op_builders import Op, ew, gemm
from .moe import ROUTER, MoE, MoEFields
from .moe_experts import batched_ops, grouped_ops

if TYPE_CHECKING:
    from ..spec import ModelSpec

MASK_STEPS = (("max", "reduce", 1), ("abs", "unary", 2), ("clamp", "broadcast", 3), ("sub", "broadcast", 3),
              ("div", "binary", 3), ("greater", "unary", 1.5), ("masked_fill", "binary", 2.5))


@dataclass(frozen=True)
class PhiMoEFields(MoEFields):
    lm_head_bias: bool = False


def sparsemixer_ops(t: int, n: int, e: int) -> list[Op]:
    """The sparsemixer's kernels over the (t, n) router scores in eval mode (top-2)."""
    ops: list[Op] = []
    for pick in ("top1", "top2"):
        if pick == "top2":
            ops += [ew("scatter.copy", ROUTER, t * n, 2 * e, "copy"), ew("scatter", ROUTER, t, 2 * e, "strided")]
        ops += [ew(f"{pick}.{name}", ROUTER, t * n, per * e, pattern) for name, pattern, per in MASK_STEPS]
        ops += [ew(f"{pick}.softmax", ROUTER, t * n, 2 * e, "reduce"), ew(f"{pick}.gather", ROUTER, t, 2 * e, "strided")]
    return ops + [ew("cat_weights", ROUTER, 2 * t, 2 * e, "strided_cat"), ew("cat_experts", ROUTER, 2 * t, 16, "strided_cat")]


class PhiMoE(MoE):
    def __init__(self) -> None:
        super().__init__("phimoe", "phimoe", "num_local_experts", "intermediate_size", qk_norm=False)
        self.host_extras = (38.6, 14.1)   # views, module calls per layer: a CPU count on transformers 5.24 less one view (base.py)
        self.tiny_config = dict(self.tiny_config, original_max_position_embeddings=128)

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        out = super().spec_fields(cfg, model_type, a)
        if out["family_fields"].top_k != 2:
            raise EstimatorError(f"unsupported PhiMoE variant: num_experts_per_tok {out['family_fields'].top_k} "
                                 f"(the sparsemixer router always picks 2)")
        f = out["family_fields"]
        bias = optional_bool(cfg, "attention_bias", False)
        fields = PhiMoEFields(experts=f.experts, top_k=f.top_k, norm_topk=f.norm_topk,
                              lm_head_bias=optional_bool(cfg, "lm_head_bias", False))
        return dict(out, qkv_bias=bias, out_bias=bias, norm="layernorm", family_fields=fields)

    def head_bias(self, spec: ModelSpec) -> bool:
        return spec.fields_of(PhiMoEFields).lm_head_bias

    def mlp_ops(self, spec: ModelSpec, t: int, f: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        fields = spec.fields_of(PhiMoEFields)
        h, n, k = spec.hidden, fields.experts, fields.top_k
        ops = [gemm("router", ROUTER, t, n, h, e)] + sparsemixer_ops(t, n, e)
        if fields.experts_impl == "grouped_mm":
            return ops + grouped_ops(h, f, n, k, t, e, e)
        if fields.experts_impl == "batched_mm":
            return ops + batched_ops(h, f, n, k, t, e, e)
        return ops + self.eager_experts(spec, t, f, e, e)


PHIMOE = PhiMoE()
