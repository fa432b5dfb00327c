"""OPT (facebook/opt-*): learned positions offset by 2, q scaled before attention, ReLU MLP, and a
decoder that defines its final norm before its layers.

opt-350m norms after each residual add (do_layer_norm_before=false): the layer launches the same
kernels in another order, and the decoder then has no final norm (nor has a pre-LN config with
``_remove_final_layer_norm``); its embeddings are word_embed_proj_dim wide, with project_in and
project_out around the decoder."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, optional_text
from ..layers import PLAIN, LayerSpec
from ..module_tree import Node, decoder_layers, leaf
from ..op_builders import ew, gemm
from ..spec import FamilyFields
from .base import Family, learned_position_ops, qkv_projections

if TYPE_CHECKING:
    from ..op_builders import Op
    from ..spec import ModelSpec


@dataclass(frozen=True)
class OptFields(FamilyFields):
    proj_dim: int        # word_embed_proj_dim: token table and LM head width (== hidden but in opt-350m)
    positions: int       # rows of the learned position table (max_position_embeddings + 2)
    final_norm: bool     # False for the post-LN decoder (do_layer_norm_before=false)


def _fields(spec: ModelSpec) -> OptFields:
    return spec.fields_of(OptFields)


class Opt(Family):
    name = "opt"
    model_types = ("opt",)
    has_tp_plan = False   # OPTConfig has no base_model_tp_plan
    aliases = dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                   ffn="ffn_dim", vocab="vocab_size", max_positions="max_position_embeddings")
    host_extras = (12.0, 11.0)   # views, module calls per layer (base.py: how counted)
    tiny_config = dict(hidden_size=64, num_attention_heads=4, vocab_size=256, max_position_embeddings=128,
                       ffn_dim=128, word_embed_proj_dim=64)
    hidden_path_in = ("proj_in", "pos")   # project_in, then the position embeddings are added
    hidden_path_out = ("proj_out",)
    hf_decoder_attr = "decoder"            # OPTModel.decoder holds embed_tokens, layers, ...

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        bias = optional_bool(cfg, "enable_bias", True)
        final_norm = (optional_bool(cfg, "do_layer_norm_before", True)
                      and not optional_bool(cfg, "_remove_final_layer_norm", False))
        divisible("hidden_size", a["hidden"], "num_attention_heads", a["heads"])
        return dict(kv_heads=a["heads"], head_dim=a["hidden"] // a["heads"], qkv_bias=bias, out_bias=bias,
                    mlp_bias=bias, gated_mlp=False, norm="layernorm",
                    activation=optional_text(cfg, "activation_function", "relu"),
                    family_fields=OptFields(proj_dim=optional_size(cfg, "word_embed_proj_dim", a["hidden"]),
                                            positions=a["max_positions"] + 2,   # OPT offsets positions by 2
                                            final_norm=final_norm),
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", True))

    def has_final_norm(self, spec: ModelSpec) -> bool:
        return _fields(spec).final_norm

    def embed_dim(self, spec: ModelSpec) -> int:
        return _fields(spec).proj_dim

    def embedding_params(self, spec: ModelSpec) -> int:
        """Token table, learned positions, and project_in/out when proj_dim != hidden."""
        f, h = _fields(spec), spec.hidden
        proj = 2 * f.proj_dim * h if f.proj_dim != h else 0
        return spec.vocab * f.proj_dim + f.positions * h + proj

    def embedding_ops(self, spec: ModelSpec, batch: int, seq: int, e: int) -> list[Op]:
        t, h, proj = batch * seq, spec.hidden, _fields(spec).proj_dim
        return learned_position_ops(t, h, e) + ([gemm("project_in", "embeddings", t, h, proj, e)] if proj != h else [])

    def head_input_ops(self, spec: ModelSpec, t: int, e: int) -> list[Op]:
        h, proj = spec.hidden, _fields(spec).proj_dim
        return [gemm("project_out", "lm head", t, proj, h, e)] if proj != h else []

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        return qkv_projections(spec, t, qd, kvd, e) + [ew("q_scale", "attention", t * qd, 2 * e, "unary")]

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        return 2 * qd + 2 * kvd, 2 * f   # q, q*scaling, k, v | fc1 output and relu output

    def position_rows(self, t: int, seq: int) -> int:
        return t   # one position embedding per token

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        h, p, f = spec.hidden, "model.decoder.", _fields(spec)
        kids = [leaf(p + "embed_tokens", spec.vocab * f.proj_dim * d, "embed"),
                leaf(p + "embed_positions", f.positions * h * d, "pos")]
        if f.proj_dim != h:
            kids += [leaf(p + "project_out", h * f.proj_dim * d, "proj_out"),
                     leaf(p + "project_in", f.proj_dim * h * d, "proj_in")]
        if self.has_final_norm(spec):
            kids.append(leaf(p + "final_layer_norm", spec.norm_params() * d, "norm"))
        # q k v out, self_attn_layer_norm, fc1, fc2, final_layer_norm: 8 leaf modules per layer
        kids.append(decoder_layers(p + "layers", spec.layers, layer_bytes, 8))
        return Node("model", children=[Node("model.decoder", children=kids)])


OPT = Opt()
