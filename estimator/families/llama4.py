"""Llama 4 text (meta-llama/Llama-4-Scout-17B-16E, -Maverick-17B-128E; model_type llama4_text, and
the multimodal llama4 configs by their text_config, families/multimodal.py): transformers 5.24's
modeling_llama4.py.

What differs from Llama's layer:
- attention kinds (Llama4TextConfig): ``no_rope_layers`` (1 = rotary, 0 = NoPE; default a NoPE
  layer every no_rope_layer_interval = 4th) and ``layer_types``: rotary layers are chunked
  (attention within chunks of attention_chunk_size = 8192 tokens), NoPE layers full. Chunked
  layers are cached as DynamicSlidingWindowLayer(sliding_window=chunk) (cache_utils) and past the
  chunk get an explicit SDPA mask (kv_cache.py, layers.local_span); SDPA is the default;
- rotary layers with use_qk_norm get a weightless L2 norm of q and k (float32, after rotary);
  NoPE layers with attn_temperature_tuning scale q by log1p(floor((pos + 1) / floor_scale)) *
  attn_scale + 1 (a few position-sized kernels, then q * scale and the cast);
- MLP kinds: ``moe_layers`` (default every interleave_moe_layer_step-th layer) are
  "experts+shared": a router (linear, topk, scores scattered into -inf, sigmoid in float32),
  hidden.repeat(E) scaled by the scores, Llama4TextExperts' two bmm over EVERY expert and every
  token (no routing: off its top-k a token's input is scaled by sigmoid(-inf) = 0, so the work is
  dense, E x tokens rows), the shared expert (a gated MLP of intermediate_size) and the sum over
  experts; the other layers are dense gated MLPs of intermediate_size_mlp.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, size
from ..errors import EstimatorError
from ..layer_config import attention_kinds, layer_specs
from ..layers import PLAIN, Attention, LayerSpec, Mlp
from ..op_builders import FP32, Op, ew, gemm, rms_norm, rotary
from ..spec import FamilyFields
from .base import Family, dense_mlp, plain_tree, qkv_projections
from .gemma import bmm
from .llama import LLAMA

if TYPE_CHECKING:
    from ..module_tree import Node
    from ..spec import ModelSpec

MLP = "mlp"
ROUTER = "router"


@dataclass(frozen=True)
class Llama4Fields(FamilyFields):
    experts: int
    top_k: int
    qk_norm: bool          # use_qk_norm: L2 norm of q and k on rotary layers
    temperature: bool      # attn_temperature_tuning on NoPE layers


def _fields(spec: ModelSpec) -> Llama4Fields:
    return spec.fields_of(Llama4Fields)


def _index_list(cfg: dict, key: str) -> list[int] | None:
    value = cfg.get(key)
    if value is None or value == []:
        return None
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise EstimatorError(f"{key} must be a list of integers, got {value!r:.60}")
    return value


class Llama4(Family):
    name = "llama4_text"
    model_types = ("llama4_text",)
    # not timed by host calibration: the full plan's budget (calibrate/plan.py, 75 s) holds the
    # 17 model types before it; the op-level host model prices its host time (its notes say so)
    host_timed = False
    priced_features = ("chunked", "nope", "experts+shared")
    aliases = dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                   ffn="intermediate_size", vocab="vocab_size", max_positions="max_position_embeddings")
    host_extras = (21.4, 16.4)   # views, module calls per layer: a CPU count on transformers 5.24 less one view (base.py)
    tiny_config = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=256,
                       max_position_embeddings=256, intermediate_size=32, intermediate_size_mlp=64,
                       num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2,
                       attention_chunk_size=16, pad_token_id=0, eos_token_id=0, bos_token_id=0)

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        return 9   # q, k, v, o, the experts' two 3-D weights, the shared expert's gate, up, down

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        heads = a["heads"]
        kv = cfg.get("num_key_value_heads")
        kv = heads if kv is None else size(cfg, "num_key_value_heads")
        divisible("num_attention_heads", heads, "num_key_value_heads", kv)
        experts = optional_size(cfg, "num_local_experts", 16)
        top_k = optional_size(cfg, "num_experts_per_tok", 1)
        if top_k > experts:
            raise EstimatorError(f"num_experts_per_tok {top_k} exceeds num_local_experts {experts}")
        bias = optional_bool(cfg, "attention_bias", False)
        fields = Llama4Fields(experts=experts, top_k=top_k, qk_norm=optional_bool(cfg, "use_qk_norm", True),
                              temperature=optional_bool(cfg, "attn_temperature_tuning", True))
        return dict(kv_heads=kv, head_dim=optional_size(cfg, "head_dim", 128), qkv_bias=bias, out_bias=bias,
                    mlp_bias=False, gated_mlp=True, norm="rmsnorm", activation=cfg.get("hidden_act") or "silu",
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", False), family_fields=fields)

    def layer_kinds(self, cfg: dict, model_type: str, layers: int) -> tuple[LayerSpec, ...]:
        interval = optional_size(cfg, "no_rope_layer_interval", 4)
        rope = _index_list(cfg, "no_rope_layers") or [int((i + 1) % interval != 0) for i in range(layers)]
        if len(rope) != layers:
            raise EstimatorError(f"no_rope_layers must hold {layers} entries (one per layer)")
        chunked = "attention_chunk_size" not in cfg or cfg["attention_chunk_size"] is not None
        cfg = dict(cfg, attention_chunk_size=cfg.get("attention_chunk_size", 8192))
        default = ["chunked" if r and chunked else "full" for r in rope]
        attn = [Attention(x.kind, x.window, x.chunk, rope=bool(r))
                for x, r in zip(attention_kinds(cfg, layers, default), rope)]
        step = optional_size(cfg, "interleave_moe_layer_step", 1)
        moe = _index_list(cfg, "moe_layers")
        moe = set(range(step - 1, layers, step) if moe is None else moe)
        dense = Mlp("dense", ffn=optional_size(cfg, "intermediate_size_mlp", 16384))
        return layer_specs(attn, [Mlp("experts+shared") if i in moe else dense for i in range(layers)])

    def estimate_notes(self, spec: ModelSpec, tokens: int) -> list[str]:
        f = _fields(spec)
        nope = sum(not k.attention.rope for k in spec.layer_kinds)
        notes = [f"{nope} of {spec.layers} layers are NoPE (no rotary)"] if nope else []
        if any(k.mlp.kind == "experts+shared" for k in spec.layer_kinds):
            notes.append(f"Llama 4's experts run every token through all {f.experts} experts (transformers' "
                         f"Llama4TextExperts bmm; off its top-{f.top_k} a token's input is scaled to 0): priced dense")
        return notes

    def mlp_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        if layer.mlp.kind == "dense":
            return spec.dense_mlp_params(layer.mlp.ffn)
        n, h, f = _fields(spec).experts, spec.hidden, spec.ffn
        return n * h + n * 3 * h * f + spec.dense_mlp_params(f)   # router, experts, shared expert

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        ops = qkv_projections(spec, t, qd, kvd, e)
        f, d = _fields(spec), spec.head_dim
        if layer.attention.rope:
            ops += rotary("q_rotary", t, qd, e) + rotary("k_rotary", t, kvd, e)
            if f.qk_norm:   # weightless: the same kernels as an RMSNorm less the weight product
                ops += rms_norm("q_l2norm", "norms", t * qd // d, d, e) + rms_norm("k_l2norm", "norms", t * kvd // d, d, e)
        elif f.temperature:
            ops += [ew(f"temp.{k}", "rotary", t, 2 * FP32, "unary") for k in ("arange", "add", "div", "floor", "log1p",
                                                                             "mul", "add_one")]
            ops += [ew("temp.scale_q", "rotary", t * qd, 2 * e + FP32, "broadcast")]
            if e != FP32:
                ops.append(ew("temp.to_dtype", "rotary", t * qd, FP32 + e, "cast"))
        return ops

    def pre_layer_ops(self, spec: ModelSpec, seq: int, e: int) -> list[Op]:
        return LLAMA.pre_layer_ops(spec, seq, e)

    def embedding_ops(self, spec: ModelSpec, batch: int, seq: int, e: int) -> list[Op]:
        chunk = min((k.attention.chunk for k in spec.layer_kinds if k.attention.kind == "chunked"), default=None)
        return [] if chunk is None or seq < chunk else [ew("chunked_mask.bool", "embeddings", seq * seq, 1, "binary")]

    def mlp_ops(self, spec: ModelSpec, t: int, f: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        if layer.mlp.kind == "dense":
            return dense_mlp(spec, t, f, e)
        fields = _fields(spec)
        h, n = spec.hidden, fields.experts
        ops = [gemm("router", ROUTER, t, n, h, e), ew("topk", ROUTER, t * n, e, "reduce"),
               ew("scores_full", ROUTER, t * n, e, "unary"), ew("scores_scatter", ROUTER, t * fields.top_k, 2 * e, "strided")]
        if e != FP32:
            ops += [ew("scores_to_fp32", ROUTER, t * n, e + FP32, "cast")]
        ops.append(ew("sigmoid", ROUTER, t * n, 2 * FP32, "unary"))
        if e != FP32:
            ops += [ew("scores_to_dtype", ROUTER, t * n, FP32 + e, "cast")]
        ops += [ew("repeat", MLP, n * t * h, 2 * e, "copy"), ew("scale_inputs", MLP, n * t * h, 3 * e, "broadcast"),
                bmm("experts_gate_up", n, t, 2 * f, h, e), ew("act", MLP, n * t * f, 2 * e, "strided"),
                ew("gate_mul", MLP, n * t * f, 3 * e), bmm("experts_down", n, t, h, f, e)]
        ops += dense_mlp(spec, t, f, e)   # the shared expert
        return ops + [Op("sum_experts", MLP, "elementwise", float(n * t * h), float(e * (n * t * h + t * h)),
                         pattern="reduce"), ew("add_shared", MLP, t * h, 3 * e)]

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        # q, k, v, rotary temporaries and the L2-norm float32 copies | router scores and logits,
        # then at Llama4TextExperts' busiest moment (up * act(gate)): the scaled inputs of every
        # expert (routed_in, kept by Llama4TextMoe.forward), their gate_up, act and product, n x
        # (h + 4 f); the down bmm's moment (n x (2 h + 3 f)) and the shared expert's are smaller.
        # (It was n x (3 h + 4 f) + 3 f: 9.6 % over the peak measured on an 8-layer Llama-4-Scout
        # at 8 x 2048 on the 2026-12-03 H200.)
        n = _fields(spec).experts
        return 4 * qd + 2 * kvd + 2 * qd, 3 * n + n * (spec.hidden + 4 * f)

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        # q k v o, router, experts, the shared expert's gate up down, two norms
        return plain_tree(spec, d, layer_bytes, 11)


LLAMA4 = Llama4()
