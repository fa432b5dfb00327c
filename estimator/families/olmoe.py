"""OLMoE (allenai/OLMoE-1B-7B-*): Qwen3-MoE's router and experts (modeling_olmoe.py: softmax in
float32, top-k, optional renormalisation, cast back; 64 experts, top-8, transformers'
experts_implementation as families/moe.py prices it) under OLMo's attention: q_norm and k_norm
are RMSNorms over the whole q / k projection (hidden and kv_heads x head_dim wide, not per head),
before the rotation, and clip_qkv (null in the shipped models) clamps q, k and v in place."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..layers import PLAIN, LayerSpec
from ..errors import EstimatorError
from ..op_builders import ATTENTION_PROJECTIONS, Op, ew, gemm, rms_norm, rotary
from .moe import MoE, MoEFields

if TYPE_CHECKING:
    from ..spec import ModelSpec


@dataclass(frozen=True)
class OlmoeFields(MoEFields):
    clip_qkv: bool = False   # q, k, v clamped in place (three more kernels)


class Olmoe(MoE):
    def __init__(self) -> None:
        super().__init__("olmoe", "olmoe", "num_experts", "intermediate_size", qk_norm=True)
        self.host_extras = (42.0, 16.5)   # views, module calls per layer: a CPU count on transformers 5.24 less one view (base.py)
        self.tiny_config = dict(self.tiny_config, pad_token_id=0, eos_token_id=0)
        del self.tiny_config["moe_intermediate_size"], self.tiny_config["head_dim"]

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        """q, k, v, o and the experts module with its two 3-D weights (OlmoeConfig's tp_plan)."""
        return 7

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        # OlmoeConfig: null / absent num_key_value_heads = every head; no head_dim field
        cfg = {k: v for k, v in cfg.items() if k != "head_dim"}
        if cfg.get("num_key_value_heads") is None:
            cfg["num_key_value_heads"] = a["heads"]
        out = super().spec_fields(cfg, model_type, a)
        clip = cfg.get("clip_qkv")
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip <= 0):
            raise EstimatorError(f"clip_qkv must be a positive number or null, got {clip!r:.60}")
        f = out["family_fields"]
        out["family_fields"] = OlmoeFields(experts=f.experts, top_k=f.top_k, norm_topk=f.norm_topk,
                                           clip_qkv=clip is not None)
        return out

    def extra_layer_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        return spec.q_dim + spec.kv_dim   # q_norm and k_norm over the whole projections

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        g, h, bias = ATTENTION_PROJECTIONS, spec.hidden, spec.qkv_bias
        ops = ([gemm("q_proj", g, t, qd, h, e, bias)] + rms_norm("q_norm", "norms", t, qd, e)
               + [gemm("k_proj", g, t, kvd, h, e, bias)] + rms_norm("k_norm", "norms", t, kvd, e)
               + [gemm("v_proj", g, t, kvd, h, e, bias)])
        if spec.fields_of(OlmoeFields).clip_qkv:
            ops += [ew(f"clip_{x}", "attention projections", t * d, 2 * e, "unary")
                    for x, d in (("q", qd), ("k", kvd), ("v", kvd))]
        return ops + rotary("q_rotary", t, qd, e) + rotary("k_rotary", t, kvd, e)


OLMOE = Olmoe()
