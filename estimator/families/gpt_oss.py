"""gpt-oss (openai/gpt-oss-20b, -120b): transformers 5.24's modeling_gpt_oss.py.

What differs from Mixtral's layer (families/moe.py):
- attention has q/k/v/o biases (attention_bias, true) and one learned *sink* logit per head.
  GptOssPreTrainedModel sets ``_supports_sdpa = False``: the default is *eager* attention
  (eager_attention_forward): repeat_kv copies, QK^T bmm, scale, the float mask add, the sinks
  expanded and concatenated to the scores (a copy of the score matrix, one more column), the row
  max, the subtraction, a softmax in the model's dtype, the slice dropping the sink column (a
  view) and the PV bmm; the seq² score matrices are alive at once (memory);
- layers alternate 128-token sliding windows and full attention (layer_types; the config class
  writes sliding for even layers); the sliding layers' cache is DynamicSlidingWindowLayer's
  (kv_cache.py). Eager attention over a window is priced over every key with the mask (as
  Gemma 2's), which is what the eager code computes;
- the router is a linear layer *with bias*, topk over the logits, softmax over the top-k values
  (no float32); routing weights stay in the model's dtype;
- experts have biases (gate_up and down) and a clamped SwiGLU: gate[::2].clamp(max=limit),
  up[1::2].clamp(-limit, limit), gate * sigmoid(gate * alpha), (up + 1) * glu. The experts
  implementation is transformers' default (grouped_mm, families/moe_experts.py) with the
  biases gathered per routed row and added in place after each grouped GEMM;
- MXFP4: the published checkpoints carry quantization_config quant_method "mxfp4". Without the
  triton kernels (the ``kernels`` package's triton_kernels, not installed on the benchmark GPUs)
  transformers' Mxfp4HfQuantizer dequantizes the experts to bfloat16 when it loads them, so the
  model runs (and is priced) as a bfloat16 one: weight memory is the bf16 parameter count, not
  the ~4.25 bits of the checkpoint's experts. Every estimate of such a config says so.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, size
from ..errors import EstimatorError
from ..kv_cache import attended_tokens
from ..layer_config import attention_kinds, layer_specs
from ..layers import EXPERTS, PLAIN, LayerSpec
from ..op_builders import FP32, ODD_ROW_SOFTMAX, Op, ew, gemm, repeat_kv, rotary
from .base import plain_tree, qkv_projections
from .gemma import bmm
from .moe import ROUTER, MoE, MoEFields, expert_hits
from .moe_experts import batched_ops, grouped_ops

if TYPE_CHECKING:
    from ..module_tree import Node
    from ..spec import ModelSpec

ATTN = "attention"
MLP = "mlp"
WINDOW = 128   # GptOssConfig.sliding_window
GATE_STEPS = (("clamp_gate", 2), ("clamp_up", 2), ("gate_alpha", 2), ("sigmoid", 2), ("glu_mul", 3),
              ("up_plus_one", 2), ("gated_mul", 3))


@dataclass(frozen=True)
class GptOssFields(MoEFields):
    mxfp4: bool = False   # an mxfp4 checkpoint, dequantized to bfloat16 on load


def _fields(spec: ModelSpec) -> GptOssFields:
    return spec.fields_of(GptOssFields)


def clamped_swiglu(rows: float, f: int, e: int) -> list[Op]:
    """GptOssExperts._apply_gate over `rows` routed rows of 2f (strided gate/up halves)."""
    return [ew(f"gate.{name}", MLP, rows * f, per * e, "strided" if name.startswith("clamp") else "binary")
            for name, per in GATE_STEPS]


def _with_biases(ops: list[Op], rows: float, f: int, h: int, e: int) -> list[Op]:
    """An experts path's kernels with the gated activation replaced by the clamped SwiGLU and
    each expert GEMM followed by its bias gather and in-place add."""
    out: list[Op] = []
    for op in ops:
        if op.name == "act":
            out += clamped_swiglu(rows, f, e)
            continue
        if op.name == "gate_mul":
            continue
        out.append(op)
        for gemm_name, width in (("experts_gate_up", 2 * f), ("bmm_gate_up", 2 * f),
                                 ("experts_down", h), ("bmm_down", h)):
            if op.name == gemm_name:
                out += [ew(f"{gemm_name}.bias_gather", MLP, rows * width, 2 * e, "strided"),
                        ew(f"{gemm_name}.bias_add", MLP, rows * width, 3 * e)]
    return out


class GptOss(MoE):
    dequantized_methods = ("mxfp4",)
    # not timed by host calibration: the full plan's budget (calibrate/plan.py, 75 s) holds the
    # 17 model types before it; the op-level host model prices its host time (its notes say so)
    host_timed = False
    priced_features = ("sinks",)
    default_window = WINDOW

    def __init__(self) -> None:
        super().__init__("gpt_oss", "gpt_oss", "num_local_experts", "intermediate_size", qk_norm=False)
        self.host_extras = (63.0, 11.0)   # views, module calls per layer: CPU counts 60.9-64.6 as random routing varies, transformers 5.24
        self.tiny_config = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                vocab_size=256, max_position_embeddings=256, intermediate_size=64,
                                num_local_experts=4, num_experts_per_tok=2, sliding_window=16,
                                experts_implementation="eager")

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        return 7

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        heads = a["heads"]
        kv = cfg.get("num_key_value_heads")
        kv = heads if kv is None else size(cfg, "num_key_value_heads")
        divisible("num_attention_heads", heads, "num_key_value_heads", kv)
        experts = size(cfg, "num_local_experts") if cfg.get("num_local_experts") is not None else 128
        top_k = optional_size(cfg, "num_experts_per_tok", 4)
        if top_k > experts:
            raise EstimatorError(f"num_experts_per_tok {top_k} exceeds num_local_experts {experts}")
        head_dim = optional_size(cfg, "head_dim", None) or a["hidden"] // heads
        q = cfg.get("quantization_config")
        mxfp4 = isinstance(q, dict) and q.get("quant_method") == "mxfp4"
        bias = optional_bool(cfg, "attention_bias", True)
        fields = GptOssFields(experts=experts, top_k=top_k, norm_topk=True, mxfp4=mxfp4)
        return dict(kv_heads=kv, head_dim=head_dim, qkv_bias=bias, out_bias=bias, mlp_bias=True, gated_mlp=True,
                    norm="rmsnorm", activation="silu",
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", False), family_fields=fields)

    def layer_kinds(self, cfg: dict, model_type: str, layers: int) -> tuple[LayerSpec, ...]:
        default = ["sliding" if (i + 1) % 2 else "full" for i in range(layers)]
        kinds = [replace(a, sinks=True) for a in attention_kinds(cfg, layers, default, WINDOW)]
        return layer_specs(kinds, [EXPERTS] * layers)

    def estimate_notes(self, spec: ModelSpec, tokens: int) -> list[str]:
        notes = super().estimate_notes(spec, tokens)
        notes.append("gpt-oss runs eager attention with its learned sinks (transformers has no SDPA path for it): "
                     "score matrices priced and held as seq x seq per head; their softmax over rows of keys + 1 "
                     "(unvectorized) is priced at 5.4x the calibrated reduction, a factor from one H200 kernel "
                     "profile (cost.ODD_ROW_SOFTMAX_FACTOR), not from this machine's calibration")
        if _fields(spec).mxfp4:
            notes.append("mxfp4 checkpoint priced as bfloat16 weights: without the triton kernels (not installed on "
                         "the benchmark GPUs) transformers dequantizes the experts to bfloat16 on load; weight "
                         "memory is that of the bf16 model, not of the ~4.25-bit experts on disk")
        return notes

    def mlp_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        n, h, f = _fields(spec).experts, spec.hidden, spec.ffn
        return n * h + n + n * (h * 2 * f + 2 * f + f * h + h)   # router (+ bias), experts with biases

    def extra_layer_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        return spec.heads   # the sinks: one logit per head

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        return qkv_projections(spec, t, qd, kvd, e) + rotary("q_rotary", t, qd, e) + rotary("k_rotary", t, kvd, e)

    def attention_ops(self, spec: ModelSpec, batch: int, seq: int, heads: int, kv: int, e: int,
                      cuda: bool = True, layer: LayerSpec = PLAIN, kv_len: int | None = None) -> list[Op]:
        d, keys = spec.head_dim, seq if kv_len is None else kv_len
        bh, scores = batch * heads, batch * heads * seq * keys
        sinks = batch * heads * seq * (keys + 1)
        ops = repeat_kv(ATTN, batch, heads, kv, keys, d, e)
        # Rows of keys + 1 (the sink column) are odd: the softmax runs unvectorized and the
        # probabilities' slice [..., :-1] reaches pv with a row stride of keys + 1, so cuBLAS takes
        # an unaligned kernel (priced on the unaligned grid at k = keys + 1). The cat of the
        # expanded sinks runs as a generic strided kernel, not CatArrayBatchedCopy. Kernel profile
        # of gpt-oss-20b at 8 x 2048 on an H200 (reports/probes/h200-2026-12-03/loan5): per layer
        # softmax 11.7 ms, pv 3.4 ms (cutlass sm75 kernel), the sinks cat about 5 ms.
        ops += [bmm("qk", bh, seq, keys, d, e), ew("scale", ATTN, scores, 2 * e, "unary"),
                ew("mask_add", ATTN, scores, 2 * e, "broadcast"),
                ew("sinks_cat", ATTN, sinks, 2 * e, "strided"), ew("row_max", ATTN, sinks, e, "reduce"),
                ew("sub_max", ATTN, sinks, 3 * e, "broadcast"), ew("softmax", ATTN, sinks, 2 * e, ODD_ROW_SOFTMAX)]
        return ops + [bmm("pv", bh, seq, d, keys + 1, e)]

    def decode_attention_ops(self, spec: ModelSpec, layer: LayerSpec, one: list[Op], batch: int, kv_len: int,
                             e: int) -> list[Op]:
        return self.attention_ops(spec, batch, 1, spec.heads, spec.kv_heads, e, layer=layer,
                                  kv_len=attended_tokens(layer, kv_len))

    def attention_live_bytes(self, spec: ModelSpec, batch: int, seq: int, heads: int, e: int) -> float:
        # scores, scores with the sink column, their max-shifted copy and the probabilities;
        # the float masks (full and sliding, batch x seq x seq each) referenced through the layers
        return 3.0 * batch * heads * seq * seq * e + 2.0 * batch * seq * seq * e

    def embedding_ops(self, spec: ModelSpec, batch: int, seq: int, e: int) -> list[Op]:
        ops = []
        for m in ("full_mask", "sliding_mask"):   # eager masks: boolean built, then float
            ops += [ew(f"{m}.bool", "embeddings", seq * seq, 1, "binary"),
                    ew(f"{m}.where", "embeddings", batch * seq * seq, 1 + e, "broadcast")]
        return ops

    def mlp_ops(self, spec: ModelSpec, t: int, f: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        fields = _fields(spec)
        h, n, k = spec.hidden, fields.experts, fields.top_k
        ops = [gemm("router", ROUTER, t, n, h, e, True), ew("topk", ROUTER, t * n, e, "reduce"),
               ew("topk_softmax", ROUTER, t * k, 2 * e, "reduce")]
        if fields.experts_impl == "grouped_mm":
            return ops + _with_biases(grouped_ops(h, f, n, k, t, e, e), t * k, f, h, e)
        if fields.experts_impl == "batched_mm":
            return ops + _with_biases(batched_ops(h, f, n, k, t, e, e), t * k, f, h, e)
        return ops + self.eager_gpt_oss(spec, t, f, e)

    def eager_gpt_oss(self, spec: ModelSpec, t: int, f: int, e: int) -> list[Op]:
        """GptOssExperts.forward's loop: the eager experts of moe.py, with biases and the clamped SwiGLU."""
        ops = self.eager_experts(spec, t, f, e, e)
        fields = _fields(spec)
        _, per = expert_hits(fields.experts, fields.top_k, t)
        rows = max(1, round(per))
        out: list[Op] = []
        for op in ops:
            if op.name == "act":
                out += clamped_swiglu(rows, f, e)
            elif op.name != "gate_mul":
                out.append(op)
                if op.name in ("expert_gate_up", "expert_down"):
                    out.append(ew(f"{op.name}.bias_add", MLP, rows * (2 * f if op.name == "expert_gate_up" else spec.hidden),
                                  3 * e, "broadcast"))
        return out

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        attn, mlp = super().layer_live_per_token(spec, qd, kvd, f)
        return attn, mlp + _fields(spec).top_k * 2 * f   # the gathered gate_up biases of each routed row

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        # q k v o (the sinks are a parameter of self_attn), router, experts, two norms
        return plain_tree(spec, d, layer_bytes, 8)


GPT_OSS = GptOss()
