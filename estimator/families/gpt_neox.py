"""GPT-NeoX (EleutherAI/pythia-*, gpt-neox-20b): one fused query_key_value projection, rotary
positions on the first `rotary_pct` of each head (the rest passes through and is concatenated
back), LayerNorms, a GELU MLP with biases, an untied ``embed_out`` head, and by default the
parallel residual ``x + attn(ln1(x)) + mlp(ln2(x))``.

The parallel residual launches the same kernels as the sequential one (two adds, two
LayerNorms); only the order and what stays alive differ, so the generic layer list holds."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_text
from ..errors import EstimatorError
from ..layers import PLAIN, LayerSpec
from ..module_tree import Node, decoder_layers, leaf
from ..op_builders import ATTENTION_PROJECTIONS, FP32, ew, gemm, rotary
from ..spec import FamilyFields
from .base import Family

if TYPE_CHECKING:
    from ..op_builders import Op
    from ..spec import ModelSpec

ROTARY_PCT_DEFAULT = 0.25   # GPTNeoXConfig's rotary_pct


@dataclass(frozen=True)
class PartialRotary(FamilyFields):
    """GPT-NeoX's and Phi-3's rotary on the first `rotary_dim` dims of each head."""
    rotary_dim: int


@dataclass(frozen=True)
class NeoxFields(PartialRotary):
    parallel_residual: bool   # x + attn(ln1(x)) + mlp(ln2(x)): the same kernels, another order


def rotary_dim(spec: ModelSpec) -> int:
    return spec.fields_of(PartialRotary).rotary_dim


def rotary_fraction(cfg: dict, key: str, default: float) -> float:
    """partial_rotary_factor from ``rope_parameters`` / ``rope_scaling`` (transformers 5 moves it
    there) or the legacy top-level field `key`, in (0, 1]."""
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    value = rope.get("partial_rotary_factor") if isinstance(rope, dict) else None
    value = cfg.get(key, default) if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise EstimatorError(f"{key} must be a number in (0, 1], got {value!r}")
    return float(value)


def rotary_with_pass(name: str, t: int, heads: int, head_dim: int, rot: int, e: int) -> list[Op]:
    """apply_rotary_pos_emb of GPT-NeoX / Phi-3 on one of q/k: the rotation (5 kernels) over the
    first `rot` dims of each head, then torch.cat((rotated, passed), -1) over the whole head,
    launched even when nothing passes (rot == head_dim)."""
    return rotary(name, t, heads * rot, e) + [ew(f"{name}.cat_pass", "rotary", t * heads * head_dim, 2 * e,
                                                 "strided_cat")]


def rotary_node(name: str, rot: int, d: int) -> Node:
    """rotary_emb: inv_freq and original_inv_freq, float32 buffers of ceil(rot / 2) each, which
    accelerate's compute_module_sizes counts at min(dtype, float32) bytes per element."""
    return Node(name, 2 * ((rot + 1) // 2) * min(d, 4), 0, None, "rotary", 1)


class GptNeox(Family):
    name = "gpt_neox"
    model_types = ("gpt_neox",)
    aliases = dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                   ffn="intermediate_size", vocab="vocab_size", max_positions="max_position_embeddings")
    host_extras = (17.0, 12.0)   # views, module calls per layer (base.py: how counted)
    tiny_config = dict(hidden_size=64, num_attention_heads=4, vocab_size=256, max_position_embeddings=128,
                       intermediate_size=256)
    hidden_path_in = ("drop",)   # emb_dropout

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        """transformers' tp_plan shards the fused q/k/v and gate/up linears: four a layer."""
        return 4

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        divisible("hidden_size", a["hidden"], "num_attention_heads", a["heads"])
        head_dim = a["hidden"] // a["heads"]
        rot = int(head_dim * rotary_fraction(cfg, "rotary_pct", ROTARY_PCT_DEFAULT))
        if rot < 2:
            raise EstimatorError(f"rotary_pct leaves {rot} rotary dims of a {head_dim}-dim head (need 2 or more)")
        bias = optional_bool(cfg, "attention_bias", True)
        return dict(kv_heads=a["heads"], head_dim=head_dim, qkv_bias=bias, out_bias=bias, mlp_bias=True,
                    gated_mlp=False, norm="layernorm", activation=optional_text(cfg, "hidden_act", "gelu"),
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", False),
                    family_fields=NeoxFields(rotary_dim=rot, parallel_residual=optional_bool(
                        cfg, "use_parallel_residual", True)))

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        # one GEMM, then chunk(3) views; q and k each rotated on their first rotary_dim dims
        heads, d, rot = qd // spec.head_dim, spec.head_dim, rotary_dim(spec)
        return ([gemm("qkv_proj", ATTENTION_PROJECTIONS, t, qd + 2 * kvd, spec.hidden, e, spec.qkv_bias)]
                + rotary_with_pass("q_rotary", t, heads, d, rot, e) + rotary_with_pass("k_rotary", t, heads, d, rot, e))

    def pre_layer_ops(self, spec: ModelSpec, seq: int, e: int) -> list[Op]:
        # rotary cos/sin tables over rotary_dim: small kernels once per forward (as Llama's)
        return [ew(f"rope_table.{i}", "embeddings", seq * rotary_dim(spec), 2 * FP32) for i in range(6)]

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        # fused qkv, rotated q and its temporaries, the cat of q | the attention output (kept for
        # the parallel residual's sum, or the post-attention residual), fc1 output and GELU output
        return (qd + 2 * kvd) + 4 * qd, spec.hidden + 2 * f

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        p = "gpt_neox."
        return Node("gpt_neox", children=[
            leaf(p + "embed_in", spec.vocab * spec.hidden * d, "embed"),
            Node(p + "emb_dropout", kind="drop"),   # Dropout: no tensors
            # input/post-attention LayerNorms, query_key_value, dense, dense_h_to_4h, dense_4h_to_h
            decoder_layers(p + "layers", spec.layers, layer_bytes, 6),
            leaf(p + "final_layer_norm", spec.norm_params() * d, "norm"),
            rotary_node(p + "rotary_emb", rotary_dim(spec), d)])


GPT_NEOX = GptNeox()
