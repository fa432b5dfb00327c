"""The Llama family (Llama, Mistral, Qwen2: one decoder layer code): RMSNorm, rotary positions,
grouped K/V heads, a gated SiLU MLP; norm and rotary_emb are defined after the layers."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, optional_text
from ..layer_config import every_layer_sliding, sliding_from_layer
from ..layers import PLAIN, LayerSpec
from ..module_tree import Node, decoder_layers, leaf
from ..op_builders import FP32, ew, rotary
from .base import Family, llama_linears, qkv_projections

if TYPE_CHECKING:
    from ..op_builders import Op
    from ..spec import ModelSpec

# transformers' defaults when num_key_value_heads is absent: Llama = heads, Mistral 8, Qwen2 32
KV_HEADS_DEFAULT = {"mistral": 8, "qwen2": 32}


class Llama(Family):
    name = "llama"
    model_types = ("llama", "qwen2", "mistral")
    aliases = dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                   ffn="intermediate_size", vocab="vocab_size", max_positions="max_position_embeddings")
    tiny_config = dict(hidden_size=64, num_attention_heads=4, vocab_size=256, max_position_embeddings=128,
                       intermediate_size=128, num_key_value_heads=2)
    layer_leaves = 9   # q k v o, gate up down, two norms: leaf modules per decoder layer

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        heads = a["heads"]
        kv = optional_size(cfg, "num_key_value_heads", KV_HEADS_DEFAULT.get(model_type, heads))
        divisible("num_attention_heads", heads, "num_key_value_heads", kv)
        head_dim = optional_size(cfg, "head_dim", None)
        if head_dim is None:  # transformers' hidden_size // heads: only a whole number is a real layout
            divisible("hidden_size", a["hidden"], "num_attention_heads", heads)
            head_dim = a["hidden"] // heads
        qwen2 = model_type == "qwen2"   # Qwen2 always has q/k/v biases and no o_proj bias
        attention_bias = optional_bool(cfg, "attention_bias", False)
        return dict(kv_heads=kv, head_dim=head_dim,
                    qkv_bias=True if qwen2 else attention_bias, out_bias=False if qwen2 else attention_bias,
                    mlp_bias=optional_bool(cfg, "mlp_bias", False), gated_mlp=True, norm="rmsnorm",
                    activation=optional_text(cfg, "hidden_act", "silu"),
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", False))

    def default_attention(self, cfg: dict, model_type: str, layers: int) -> list[str]:
        # Mistral: sliding_window on every layer; Qwen2 / Qwen3: from max_window_layers on, with
        # use_sliding_window; Llama: none
        if model_type == "mistral":
            return every_layer_sliding(cfg, layers)
        return sliding_from_layer(cfg, layers) if model_type.startswith("qwen") else ["full"] * layers

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        return qkv_projections(spec, t, qd, kvd, e) + rotary("q_rotary", t, qd, e) + rotary("k_rotary", t, kvd, e)

    def pre_layer_ops(self, spec: ModelSpec, seq: int, e: int) -> list[Op]:
        # rotary cos/sin tables: small kernels once per forward
        return [ew(f"rope_table.{i}", "embeddings", seq * spec.head_dim, 2 * FP32) for i in range(6)]

    def fp8_linears(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> list[tuple[str, int, int, int, int, bool]] | None:
        # Llama / Mistral / Qwen2 and Qwen3 (tests/test_fp8.py); the subclasses with other modules
        # or multipliers (Granite, OLMo 2, SmolLM3) are not checked: refused
        return llama_linears(spec, layer) if self.name in ("llama", "qwen3") else None

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        # q, k, v and three rotary temporaries of q | post-attention residual; act(gate), up, product
        return 4 * qd + 2 * kvd, spec.hidden + 3 * f

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        p = "model."
        # inv_freq and original_inv_freq: float32 buffers of ceil(head_dim / 2) each, which
        # compute_module_sizes counts at min(dtype, float32) bytes per element.
        rotary_bytes = 2 * ((spec.head_dim + 1) // 2) * min(d, 4)
        return Node("model", children=[
            leaf(p + "embed_tokens", spec.vocab * spec.hidden * d, "embed"),
            decoder_layers(p + "layers", spec.layers, layer_bytes, self.layer_leaves),
            leaf(p + "norm", spec.norm_params() * d, "norm"),
            Node(p + "rotary_emb", rotary_bytes, 0, None, "rotary", 1)])


LLAMA = Llama()
