"""Qwen3 (Qwen/Qwen3-*): Llama's layer plus q_norm and k_norm, RMSNorms over each head's
head_dim applied to q and k before the rotation; head_dim is its own field (default 128, not
hidden / heads), attention_bias covers q, k, v and o, and the MLP has no biases."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, optional_text
from ..errors import EstimatorError
from ..layers import PLAIN, LayerSpec
from ..op_builders import ATTENTION_PROJECTIONS, gemm, rms_norm, rotary
from .llama import Llama

if TYPE_CHECKING:
    from ..op_builders import Op
    from ..spec import ModelSpec

HEAD_DIM_DEFAULT = 128   # Qwen3Config.head_dim
KV_HEADS_DEFAULT = 32    # Qwen3Config.num_key_value_heads when absent (null means num_attention_heads)


class Qwen3(Llama):
    name = "qwen3"
    model_types = ("qwen3",)
    host_extras = (16.0, 15.0)   # views, module calls per layer (base.py: how counted)
    tiny_config = dict(hidden_size=64, num_attention_heads=4, vocab_size=256, max_position_embeddings=128,
                       intermediate_size=128, num_key_value_heads=2, head_dim=32)
    layer_leaves = 11   # Llama's nine and q_norm, k_norm

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        """q, k, v, o, gate, up, down and the q/k norms (replicated with a hook each in the tp_plan)."""
        return 9

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        heads = a["heads"]
        kv = optional_size(cfg, "num_key_value_heads", KV_HEADS_DEFAULT if "num_key_value_heads" not in cfg else heads)
        divisible("num_attention_heads", heads, "num_key_value_heads", kv)
        if optional_bool(cfg, "use_sliding_window", False):
            raise EstimatorError("unsupported Qwen3 variant: use_sliding_window=true")
        bias = optional_bool(cfg, "attention_bias", False)
        return dict(kv_heads=kv, head_dim=optional_size(cfg, "head_dim", HEAD_DIM_DEFAULT),
                    qkv_bias=bias, out_bias=bias, mlp_bias=False, gated_mlp=True, norm="rmsnorm",
                    activation=optional_text(cfg, "hidden_act", "silu"),
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", False))

    def extra_layer_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        return 2 * spec.head_dim   # q_norm and k_norm weights

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        g, h, d, bias = ATTENTION_PROJECTIONS, spec.hidden, spec.head_dim, spec.qkv_bias
        # q_norm / k_norm: LlamaRMSNorm's eight kernels over t * heads rows of head_dim
        return ([gemm("q_proj", g, t, qd, h, e, bias)] + rms_norm("q_norm", "norms", t * qd // d, d, e)
                + [gemm("k_proj", g, t, kvd, h, e, bias)] + rms_norm("k_norm", "norms", t * kvd // d, d, e)
                + [gemm("v_proj", g, t, kvd, h, e, bias)]
                + rotary("q_rotary", t, qd, e) + rotary("k_rotary", t, kvd, e))

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        # Llama's, and q_proj's output while q_norm builds the normed q
        attn, mlp = super().layer_live_per_token(spec, qd, kvd, f)
        return attn + qd, mlp


QWEN3 = Qwen3()
