"""OLMo 2 (allenai/OLMo-2-*): Llama's attention and MLP with the norms moved, read from
transformers' modeling_olmo2.py:

- no norm before attention or the MLP: the layer norms each sub-layer's *output*
  (post_attention_layernorm, post_feedforward_layernorm) before its residual add;
- q_norm and k_norm are RMSNorms over the whole q / k projection (heads x head_dim wide, not
  per head as Qwen3's), applied before the rotation;
- Olmo2RMSNorm multiplies by the weight in float32 and casts last: to_fp32, pow, mean, +eps,
  rsqrt, mul, weight * x (float32), to(dtype): eight kernels, as LlamaRMSNorm's, with the weight
  product moving float32 bytes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..layers import PLAIN, LayerSpec
from ..config_fields import divisible, optional_bool, optional_size, optional_text
from ..op_builders import ATTENTION_PROJECTIONS, FP32, Op, ew, gemm, rotary
from .llama import Llama

if TYPE_CHECKING:
    from ..spec import ModelSpec

PRE_NORMS = ("input_norm", "post_norm")   # the generic layer's pre-norms: absent in OLMo 2


def olmo_rms_norm(name: str, group: str, t: int, h: int, e: int) -> list[Op]:
    """Olmo2RMSNorm: x.float(), pow, mean, +eps, rsqrt, mul, weight * x in float32, to(dtype)."""
    n, cast = t * h, e != FP32
    ops = [ew(f"{name}.to_fp32", group, n, e + FP32, "cast")] if cast else []
    ops += [ew(f"{name}.pow", group, n, 2 * FP32, "unary"), ew(f"{name}.mean", group, n, FP32, "reduce"),
            ew(f"{name}.add_eps", group, t, 2 * FP32, "unary"), ew(f"{name}.rsqrt", group, t, 2 * FP32, "unary"),
            ew(f"{name}.mul", group, n, 2 * FP32, "broadcast"), ew(f"{name}.weight", group, n, 2 * FP32, "binary")]
    return ops + ([ew(f"{name}.to_dtype", group, n, FP32 + e, "cast")] if cast else [])


class Olmo2(Llama):
    name = "olmo2"
    model_types = ("olmo2",)
    host_extras = (16.0, 15.0)   # views, module calls per layer: a CPU count on transformers 5.24 less one view (base.py)
    tiny_config = dict(hidden_size=64, num_attention_heads=4, vocab_size=256, max_position_embeddings=128,
                       intermediate_size=128, num_key_value_heads=2, pad_token_id=0, eos_token_id=0)
    layer_leaves = 11   # q k v o, q_norm, k_norm, gate up down, two post-norms

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        """q, k, v, o, gate, up, down: Olmo2Config's tp_plan hooks the seven linears (q/k/v with
        colwise_gather_output: the gathers that keep the norms over the whole projection are not
        priced, tensor parallelism is priced as Megatron's sharding)."""
        return 7

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        heads = a["heads"]
        kv = optional_size(cfg, "num_key_value_heads", heads)
        divisible("num_attention_heads", heads, "num_key_value_heads", kv)
        divisible("hidden_size", a["hidden"], "num_attention_heads", heads)   # Olmo2Config has no head_dim
        bias = optional_bool(cfg, "attention_bias", False)
        return dict(kv_heads=kv, head_dim=a["hidden"] // heads, qkv_bias=bias, out_bias=bias, mlp_bias=False,
                    gated_mlp=True, norm="rmsnorm", activation=optional_text(cfg, "hidden_act", "silu"),
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", False))

    def default_attention(self, cfg: dict, model_type: str, layers: int) -> list[str]:
        return ["full"] * layers

    def extra_layer_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        return spec.q_dim + spec.kv_dim   # q_norm and k_norm over the whole projections

    def norm_ops(self, spec: ModelSpec, name: str, group: str, t: int, h: int, e: int) -> list[Op]:
        return [] if name in PRE_NORMS else olmo_rms_norm(name, group, t, h, e)

    def sublayer_output_ops(self, spec: ModelSpec, name: str, t: int, e: int) -> list[Op]:
        return olmo_rms_norm(name, "norms", t, spec.hidden, e)

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        # Under tensor parallelism priced over the shard's width (see tp_sharded_linears).
        g, h, bias = ATTENTION_PROJECTIONS, spec.hidden, spec.qkv_bias
        return ([gemm("q_proj", g, t, qd, h, e, bias)] + olmo_rms_norm("q_norm", "norms", t, qd, e)
                + [gemm("k_proj", g, t, kvd, h, e, bias)] + olmo_rms_norm("k_norm", "norms", t, kvd, e)
                + [gemm("v_proj", g, t, kvd, h, e, bias)]
                + rotary("q_rotary", t, qd, e) + rotary("k_rotary", t, kvd, e))

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        # Llama's, and the q/k projections while their norms build the normed copies (float32
        # temporaries of one of them: two more of its width)
        attn, mlp = super().layer_live_per_token(spec, qd, kvd, f)
        return attn + qd + kvd + 2 * qd, mlp


OLMO2 = Olmo2()
