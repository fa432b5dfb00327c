"""GPT-2 (openai-community/gpt2*): one fused qkv projection (Conv1D), learned positions, the
eight-kernel gelu_new, and an MLP of n_inner (default 4 x hidden)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, optional_text
from ..layers import PLAIN, LayerSpec
from ..module_tree import Node, decoder_layers, leaf
from ..op_builders import ATTENTION_PROJECTIONS, gemm
from ..spec import FamilyFields
from .base import Family, learned_position_ops

if TYPE_CHECKING:
    from ..op_builders import Op
    from ..spec import ModelSpec


@dataclass(frozen=True)
class Gpt2Fields(FamilyFields):
    positions: int       # rows of the learned position table (n_positions)


class Gpt2(Family):
    name = "gpt2"
    model_types = ("gpt2",)
    has_tp_plan = False   # GPT2Config has no base_model_tp_plan
    aliases = dict(hidden="n_embd", layers="n_layer", heads="n_head", vocab="vocab_size",
                   max_positions="n_positions")
    host_extras = (19.0, 12.0)   # views, module calls per layer (base.py: how counted)
    tiny_config = dict(n_embd=64, n_head=4, vocab_size=256, n_positions=128, bos_token_id=0, eos_token_id=0)
    hidden_path_in = ("pos", "drop")   # wpe added, then dropout
    hf_token_embedding = "wte"
    hf_input_modules = ("wte", "wpe")

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        divisible("n_embd", a["hidden"], "n_head", a["heads"])
        return dict(kv_heads=a["heads"], head_dim=a["hidden"] // a["heads"],
                    ffn=optional_size(cfg, "n_inner", 4 * a["hidden"]), qkv_bias=True, out_bias=True, mlp_bias=True,
                    gated_mlp=False, norm="layernorm",
                    activation=optional_text(cfg, "activation_function", "gelu_new"),
                    family_fields=Gpt2Fields(positions=a["max_positions"]),
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", True))

    def embedding_params(self, spec: ModelSpec) -> int:
        return (spec.vocab + spec.fields_of(Gpt2Fields).positions) * spec.hidden   # wte and wpe

    def embedding_ops(self, spec: ModelSpec, batch: int, seq: int, e: int) -> list[Op]:
        return learned_position_ops(batch * seq, spec.hidden, e)

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        return [gemm("qkv_proj", ATTENTION_PROJECTIONS, t, qd + 2 * kvd, spec.hidden, e, bias=True)]

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        # fused qkv, attention output and its contiguous copy | c_fc output and two gelu_new temporaries
        return (qd + 2 * kvd) + 2 * qd, 3 * f

    def position_rows(self, t: int, seq: int) -> int:
        return seq   # position embeddings of one sequence, broadcast over the batch

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        p = "transformer."
        return Node("transformer", children=[
            leaf(p + "wte", spec.vocab * spec.hidden * d, "embed"),
            leaf(p + "wpe", spec.fields_of(Gpt2Fields).positions * spec.hidden * d, "pos"),
            Node(p + "drop", kind="drop"),   # Dropout: no tensors
            # ln_1, c_attn, attn.c_proj, ln_2, c_fc, mlp.c_proj: 6 leaf modules per layer
            decoder_layers(p + "h", spec.layers, layer_bytes, 6),
            leaf(p + "ln_f", spec.norm_params() * d, "norm")])


GPT2 = Gpt2()
