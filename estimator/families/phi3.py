"""Phi-3 (microsoft/Phi-3-*): Llama's layer with two fused projections, qkv_proj (one GEMM,
sliced into q, k, v views) and gate_up_proj (one GEMM, chunked into gate and up views), and
apply_rotary_pos_emb's partial-rotary form (a cat of the rotated and the passed dims, launched
even when everything rotates).

Sliding-window attention (Phi-3-mini's sliding_window 2047) is priced as full causal
attention: exact while seq <= sliding_window, where transformers skips the mask and SDPA runs
its causal kernel; longer sequences get a masked SDPA the estimator does not model."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, optional_text
from ..layer_config import every_layer_sliding
from ..layers import PLAIN, LayerSpec
from ..module_tree import Node, decoder_layers, leaf
from ..op_builders import ATTENTION_PROJECTIONS, activation, ew, gemm
from .base import Family
from .gpt_neox import GptNeox, PartialRotary, rotary_dim, rotary_fraction, rotary_node, rotary_with_pass

if TYPE_CHECKING:
    from ..op_builders import Op
    from ..spec import ModelSpec


class Phi3(Family):
    name = "phi3"
    model_types = ("phi3",)
    aliases = dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                   ffn="intermediate_size", vocab="vocab_size", max_positions="max_position_embeddings")
    host_extras = (24.0, 12.0)   # views, module calls per layer (base.py: how counted)
    tiny_config = dict(hidden_size=64, num_attention_heads=4, vocab_size=256, max_position_embeddings=128,
                       original_max_position_embeddings=128, intermediate_size=128, num_key_value_heads=2,
                       pad_token_id=0, bos_token_id=0, eos_token_id=0)

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        """transformers' tp_plan shards the fused q/k/v and gate/up linears: four a layer."""
        return 4

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        heads = a["heads"]
        kv = optional_size(cfg, "num_key_value_heads", heads)
        divisible("num_attention_heads", heads, "num_key_value_heads", kv)
        head_dim = optional_size(cfg, "head_dim", None)
        if head_dim is None:
            divisible("hidden_size", a["hidden"], "num_attention_heads", heads)
            head_dim = a["hidden"] // heads
        rot = int(head_dim * rotary_fraction(cfg, "partial_rotary_factor", 1.0))
        return dict(kv_heads=kv, head_dim=head_dim, qkv_bias=False, out_bias=False, mlp_bias=False,
                    gated_mlp=True, norm="rmsnorm", activation=optional_text(cfg, "hidden_act", "silu"),
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", False),
                    family_fields=PartialRotary(rotary_dim=rot))

    def default_attention(self, cfg: dict, model_type: str, layers: int) -> list[str]:
        return every_layer_sliding(cfg, layers)   # recorded; priced as full attention (see above)

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        d, rot = spec.head_dim, rotary_dim(spec)
        return ([gemm("qkv_proj", ATTENTION_PROJECTIONS, t, qd + 2 * kvd, spec.hidden, e)]
                + rotary_with_pass("q_rotary", t, qd // d, d, rot, e)
                + rotary_with_pass("k_rotary", t, kvd // d, d, rot, e))

    def mlp_ops(self, spec: ModelSpec, t: int, f: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        # gate_up_proj, act(gate) on a strided half, up * act(gate), down_proj
        mlp = "mlp"
        return ([gemm("gate_up_proj", mlp, t, 2 * f, spec.hidden, e)] + activation("act", mlp, t * f, e, spec.activation)
                + [ew("gate_mul", mlp, t * f, 3 * e), gemm("down_proj", mlp, t, spec.hidden, f, e)])

    pre_layer_ops = GptNeox.pre_layer_ops   # cos/sin tables over rotary_dim, as GPT-NeoX's

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        # fused qkv, three rotary temporaries of q and its cat | post-attention residual, the fused
        # gate_up output, act(gate) and the product
        return (qd + 2 * kvd) + 4 * qd, spec.hidden + 4 * f

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        p = "model."
        return Node("model", children=[
            leaf(p + "embed_tokens", spec.vocab * spec.hidden * d, "embed"),
            # qkv_proj, o_proj, gate_up_proj, down_proj, two norms: 6 leaf modules per layer
            decoder_layers(p + "layers", spec.layers, layer_bytes, 6),
            leaf(p + "norm", spec.norm_params() * d, "norm"),
            rotary_node(p + "rotary_emb", rotary_dim(spec), d)])


PHI3 = Phi3()
