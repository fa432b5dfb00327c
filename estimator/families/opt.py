"""OPT (facebook/opt-*): learned positions offset by 2, q scaled before attention, ReLU MLP, and a
decoder that defines its final norm before its layers.

opt-350m norms after each residual add (do_layer_norm_before=false): the layer launches the same
kernels in another order, and the decoder then has no final norm (nor has a pre-LN config with
``_remove_final_layer_norm``); its embeddings are word_embed_proj_dim wide, with project_in and
project_out around the decoder."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, optional_text
from ..ops import ew, qkv_projections
from ..placement import Node, decoder_layers, leaf
from .base import Family

if TYPE_CHECKING:
    from ..model import ModelSpec
    from ..ops import Op


class Opt(Family):
    name = "opt"
    model_types = ("opt",)
    aliases = dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                   ffn="ffn_dim", vocab="vocab_size", max_positions="max_position_embeddings")
    tiny_config = dict(hidden_size=64, num_attention_heads=4, vocab_size=256, max_position_embeddings=128,
                       ffn_dim=128, word_embed_proj_dim=64)

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        bias = optional_bool(cfg, "enable_bias", True)
        final_norm = (optional_bool(cfg, "do_layer_norm_before", True)
                      and not optional_bool(cfg, "_remove_final_layer_norm", False))
        divisible("hidden_size", a["hidden"], "num_attention_heads", a["heads"])
        return dict(kv_heads=a["heads"], head_dim=a["hidden"] // a["heads"], qkv_bias=bias, out_bias=bias,
                    mlp_bias=bias, gated_mlp=False, norm="layernorm",
                    activation=optional_text(cfg, "activation_function", "relu"),
                    learned_positions=a["max_positions"] + 2,  # OPT offsets positions by 2
                    proj_dim=optional_size(cfg, "word_embed_proj_dim", a["hidden"]),
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", True),
                    extras=() if final_norm else (("final_norm", False),))

    def has_final_norm(self, spec: ModelSpec) -> bool:
        return spec.extra("final_norm", True)

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int) -> list[Op]:
        return qkv_projections(spec, t, qd, kvd, e) + [ew("q_scale", "attention", t * qd, 2 * e, "unary")]

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        return 2 * qd + 2 * kvd, 2 * f   # q, q*scaling, k, v | fc1 output and relu output

    def position_rows(self, t: int, seq: int) -> int:
        return t   # one position embedding per token

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        h, p = spec.hidden, "model.decoder."
        kids = [leaf(p + "embed_tokens", spec.vocab * spec.proj_dim * d, "embed"),
                leaf(p + "embed_positions", spec.learned_positions * h * d, "pos")]
        if spec.proj_dim != h:
            kids += [leaf(p + "project_out", h * spec.proj_dim * d, "proj_out"),
                     leaf(p + "project_in", spec.proj_dim * h * d, "proj_in")]
        if self.has_final_norm(spec):
            kids.append(leaf(p + "final_layer_norm", spec.norm_params() * d, "norm"))
        # q k v out, self_attn_layer_norm, fc1, fc2, final_layer_norm: 8 leaf modules per layer
        kids.append(decoder_layers(p + "layers", spec.layers, layer_bytes, 8))
        return Node("model", children=[Node("model.decoder", children=kids)])


OPT = Opt()
