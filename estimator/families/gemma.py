"""Gemma 2 (google/gemma-2-*) and Gemma 3 text (google/gemma-3-1b-*, model_type gemma3_text).

What differs from Llama, read from transformers' modeling_gemma2.py / modeling_gemma3.py:
- Gemma's RMSNorm computes in float32 and scales by (1 + weight): to_fp32, pow, mean, +eps,
  rsqrt, mul, weight.float(), 1 + w, mul, type_as (seven kernels in float32), and every layer
  has four of them (input, post-attention, pre-feedforward, post-feedforward);
- the token embedding is scaled by sqrt(hidden) (one more kernel over the embeddings);
- head_dim (256) is not hidden / heads; the 256k vocabulary is tied to the LM head;
- GeGLU MLP with gelu_pytorch_tanh (one kernel);
- Gemma 2 soft-caps attention logits (tanh(x / 50) * 50) and the final logits (/ 30, tanh, * 30).
  SDPA cannot soft-cap, so Gemma2PreTrainedModel sets ``_supports_sdpa = False`` and the model
  runs *eager* attention: repeat_kv copies, QK^T bmm, scale, the three soft-cap kernels, the
  float mask add, a float32 softmax, the cast back and the PV bmm, with seq² score matrices
  alive (memory). Its masks are float (batch, 1, seq, seq) tensors made once per forward;
- Gemma 3 has no soft-capping and runs SDPA, with q/k RMSNorms over head_dim, two rotary tables
  (local base for sliding layers, global for every 6th layer). A sliding layer's mask cannot be
  skipped, so SDPA gets a boolean mask and transformers repeat_kv-copies K and V first.

Sliding and global layers are priced apart (layers.py): Gemma 3's sliding layers past their window
get the boolean mask (repeat_kv copies, masked SDPA: Family.attention_ops), its global layers and
short prompts SDPA with GQA and is_causal. DynamicSlidingWindowLayer keeps a view of the whole
prefill K/V (its memory is the full prompt) and window - 1 tokens after each decode step
(kv_cache.py); Gemma 2's eager decode attention runs its batched matmuls over the keys each
layer attends to (decode_attention_ops).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, optional_text
from ..errors import EstimatorError
from ..layer_config import sliding_pattern
from ..kv_cache import attended_tokens
from ..layers import PLAIN, LayerSpec
from ..module_tree import Node, decoder_layers, leaf
from ..op_builders import FP32, Op, as_float, ew, repeat_kv, rotary
from ..spec import FamilyFields
from .base import Family, qkv_projections
from .llama import LLAMA

if TYPE_CHECKING:
    from ..spec import ModelSpec

ATTN = "attention"


@dataclass(frozen=True)
class GemmaFields(FamilyFields):
    attn_softcap: float | None    # tanh soft-cap of the attention logits (None: none)
    final_softcap: float | None   # tanh soft-cap of the final logits (None: none)
    sliding_window: int           # tokens a sliding layer attends to


def _fields(spec: ModelSpec) -> GemmaFields:
    return spec.fields_of(GemmaFields)


def gemma_rms_norm(name: str, group: str, rows: int, h: int, e: int) -> list[Op]:
    """Gemma2RMSNorm: x.float(), pow, mean, +eps, rsqrt, mul, weight.float(), 1 + w, mul, type_as."""
    n = rows * h
    cast = e != FP32
    ops = [ew(f"{name}.to_fp32", group, n, e + FP32, "cast")] if cast else []
    ops += [ew(f"{name}.pow", group, n, 2 * FP32, "unary"), ew(f"{name}.mean", group, n, FP32, "reduce"),
            ew(f"{name}.add_eps", group, rows, 2 * FP32, "unary"), ew(f"{name}.rsqrt", group, rows, 2 * FP32, "unary"),
            ew(f"{name}.mul", group, n, 2 * FP32, "broadcast")]
    ops += [ew(f"{name}.weight_fp32", group, h, e + FP32, "cast")] if cast else []
    ops += [ew(f"{name}.one_plus_w", group, h, 2 * FP32, "unary"), ew(f"{name}.scale", group, n, 2 * FP32, "broadcast")]
    return ops + ([ew(f"{name}.to_dtype", group, n, FP32 + e, "cast")] if cast else [])


def bmm(name: str, batch: int, m: int, n: int, k: int, e: int) -> Op:
    """A batched matmul of `batch` (m x k) @ (k x n), priced as one GEMM of batch*m rows."""
    return Op(name, ATTN, "gemm", 2.0 * batch * m * n * k, as_float(e * batch * (m * k + n * k + m * n)),
              (batch * m, n, k))


def softcap(name: str, group: str, elems: float, e: int) -> list[Op]:
    """x / cap, tanh, * cap: three eager kernels."""
    return [ew(f"{name}.{k}", group, elems, 2 * e, "unary") for k in ("div", "tanh", "mul")]


class Gemma(Family):
    """Gemma 2 and Gemma 3 text: one family object each, differing in `version`."""
    aliases = dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                   ffn="intermediate_size", vocab="vocab_size", max_positions="max_position_embeddings")

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        """Gemma 3's tp_plan hooks its q/k norms beside the seven linears; Gemma 2's has the seven."""
        return 9 if spec.model_type.startswith("gemma3") else 7

    def __init__(self, version: int) -> None:
        self.version = version
        self.default_window = 4096   # Gemma2Config / Gemma3TextConfig
        self.name = "gemma2" if version == 2 else "gemma3_text"
        self.model_types = ("gemma2",) if version == 2 else ("gemma3_text",)
        self.host_extras = (17.5, 15.0) if version == 2 else (18.9, 17.1)   # views, module calls (base.py)
        self.tiny_config = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                vocab_size=256, max_position_embeddings=128, intermediate_size=128, sliding_window=64)
        # transformers' defaults: Gemma2Config soft-caps 50 / 30, Gemma3TextConfig none
        self.caps = (50.0, 30.0) if version == 2 else (None, None)

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        heads = a["heads"]
        kv = optional_size(cfg, "num_key_value_heads", 4 if self.version == 2 else 4)
        divisible("num_attention_heads", heads, "num_key_value_heads", kv)
        attn_cap = _cap(cfg, "attn_logit_softcapping", self.caps[0])
        if self.version == 3 and attn_cap is not None:
            raise EstimatorError("unsupported Gemma 3 variant: attn_logit_softcapping (forces eager attention)")
        bias = optional_bool(cfg, "attention_bias", False)
        act = optional_text(cfg, "hidden_activation", optional_text(cfg, "hidden_act", "gelu_pytorch_tanh"))
        fields = GemmaFields(attn_softcap=attn_cap, final_softcap=_cap(cfg, "final_logit_softcapping", self.caps[1]),
                             sliding_window=optional_size(cfg, "sliding_window", 4096 if self.version == 2 else 4096))
        return dict(kv_heads=kv, head_dim=optional_size(cfg, "head_dim", 256), qkv_bias=bias, out_bias=bias,
                    mlp_bias=False, gated_mlp=True, norm="rmsnorm", activation=act,
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", True), family_fields=fields)

    def default_attention(self, cfg: dict, model_type: str, layers: int) -> list[str]:
        # Gemma 2 alternates sliding and full layers; Gemma 3 has a full layer every
        # sliding_window_pattern (6) layers
        pattern = 2 if self.version == 2 else optional_size(cfg, "sliding_window_pattern", 6)
        return sliding_pattern(layers, pattern)

    def extra_layer_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        # post-attention and post-feedforward norms; Gemma 3's q_norm and k_norm over head_dim
        return 2 * spec.hidden + (2 * spec.head_dim if self.version == 3 else 0)

    def norm_ops(self, spec: ModelSpec, name: str, group: str, t: int, h: int, e: int) -> list[Op]:
        return gemma_rms_norm(name, group, t, h, e)

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        ops = qkv_projections(spec, t, qd, kvd, e)
        if self.version == 3:
            d = spec.head_dim
            ops += gemma_rms_norm("q_norm", "norms", t * qd // d, d, e) + gemma_rms_norm("k_norm", "norms", t * kvd // d, d, e)
        return ops + rotary("q_rotary", t, qd, e) + rotary("k_rotary", t, kvd, e)

    def attention_ops(self, spec: ModelSpec, batch: int, seq: int, heads: int, kv: int, e: int,
                      cuda: bool = True, layer: LayerSpec = PLAIN, kv_len: int | None = None) -> list[Op]:
        if self.version == 3:   # SDPA: a sliding layer past its window gets the boolean mask (Family's)
            return Family.attention_ops(self, spec, batch, seq, heads, kv, e, cuda, layer, kv_len)
        # Gemma 2's eager attention over kv_len keys (the prompt; a decode step: the cache)
        d, keys = spec.head_dim, seq if kv_len is None else kv_len
        bh, scores = batch * heads, batch * heads * seq * keys
        ops = repeat_kv(ATTN, batch, heads, kv, keys, d, e)
        ops += [bmm("qk", bh, seq, keys, d, e), ew("scale", ATTN, scores, 2 * e, "unary")]
        if _fields(spec).attn_softcap is not None:
            ops += softcap("attn_softcap", ATTN, scores, e)
        ops.append(ew("mask_add", ATTN, scores, 2 * e, "broadcast"))
        ops.append(ew("softmax", ATTN, scores, e + FP32, "unary"))   # float32 out (fused upcast on CUDA)
        if e != FP32:
            ops.append(ew("softmax_to_dtype", ATTN, scores, FP32 + e, "cast"))
        return ops + [bmm("pv", bh, seq, d, keys, e)]

    def decode_attention_ops(self, spec: ModelSpec, layer: LayerSpec, one: list[Op], batch: int, kv_len: int,
                             e: int) -> list[Op]:
        """Gemma 2's eager attention of one query per head over the keys the layer attends to
        (its batched matmuls, soft-cap, mask and softmax at the cache length); Gemma 3: SDPA's."""
        if self.version == 3:
            return Family.decode_attention_ops(self, spec, layer, one, batch, kv_len, e)
        return self.attention_ops(spec, batch, 1, spec.heads, spec.kv_heads, e, layer=layer,
                                  kv_len=attended_tokens(layer, kv_len))

    def mask_bytes(self, spec: ModelSpec, seq: Any) -> Any:
        """Gemma 3: SDPA's boolean masks (Family's); Gemma 2's eager float masks are in attention_live_bytes."""
        return Family.mask_bytes(self, spec, seq) if self.version == 3 else 0.0

    def attention_live_bytes(self, spec: ModelSpec, batch: int, seq: int, heads: int, e: int) -> float:
        if self.version == 3:
            return 0.0
        # eager scores at the softmax: its input (dtype) and float32 output; the float masks
        # (full and sliding, batch x seq x seq each) stay referenced through the layers
        return batch * heads * seq * seq * (e + FP32) + 2.0 * batch * seq * seq * e

    def sublayer_output_ops(self, spec: ModelSpec, name: str, t: int, e: int) -> list[Op]:
        return gemma_rms_norm(name, "norms", t, spec.hidden, e)

    def embedding_ops(self, spec: ModelSpec, batch: int, seq: int, e: int) -> list[Op]:
        ops = [ew("embed_scale", "embeddings", batch * seq * spec.hidden, 2 * e, "unary")]
        if self.version == 2:   # eager masks: boolean (1, 1, s, s) built, torch.where into (b, 1, s, s) floats
            for m in ("full_mask", "sliding_mask"):
                ops += [ew(f"{m}.bool", "embeddings", seq * seq, 1, "binary"),
                        ew(f"{m}.where", "embeddings", batch * seq * seq, 1 + e, "broadcast")]
        else:                   # SDPA: the full mask is skipped (is_causal), the sliding one stays boolean
            ops += [ew("sliding_mask.bool", "embeddings", seq * seq, 1, "binary")]
        return ops

    def pre_layer_ops(self, spec: ModelSpec, seq: int, e: int) -> list[Op]:
        tables = LLAMA.pre_layer_ops(spec, seq, e)
        return tables if self.version == 2 else tables + [
            ew(f"rope_table_local.{i}", "embeddings", seq * spec.head_dim, 2 * FP32) for i in range(6)]

    def logit_copies(self, spec: ModelSpec) -> int:
        # logits / cap is a new tensor while the logits are still referenced (then tanh, * cap):
        # gemma-2-2b in float32 on an H200 peaked one 16.8 GB logits tensor above one copy
        return 2 if _fields(spec).final_softcap is not None else 1

    def head_ops(self, spec: ModelSpec, t: int, vocab: int, e: int) -> list[Op]:
        return softcap("final_softcap", "lm head", t * vocab, e) if _fields(spec).final_softcap is not None else []

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        # q, k, v, three rotary temporaries of q and two repeat_kv copies | residual, act(gate), up, product
        return 4 * qd + 2 * kvd + 2 * qd, spec.hidden + 3 * f

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        p, h = "model.", spec.hidden
        half = (spec.head_dim + 1) // 2 * min(d, 4)
        # embed_tokens also holds the 0-d embed_scale buffer; rotary_emb inv_freq + original_inv_freq
        # (Gemma 3: one pair per layer type)
        embed = Node(p + "embed_tokens", spec.vocab * h * d + min(d, 4), spec.vocab * h * d, None, "embed", 1)
        rotary_bytes = (2 if self.version == 2 else 4) * half
        # q k v o, gate up down, four norms (+ q_norm, k_norm): 11 or 13 leaf modules per layer
        return Node("model", children=[
            embed, decoder_layers(p + "layers", spec.layers, layer_bytes, 11 if self.version == 2 else 13),
            leaf(p + "norm", h * d, "norm"), Node(p + "rotary_emb", rotary_bytes, 0, None, "rotary", 1)])


def _cap(cfg: dict, key: str, default: float | None) -> float | None:
    """A soft-capping value: null disables it, absent takes transformers' default."""
    if key not in cfg:
        return default
    value = cfg[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise EstimatorError(f"{key} must be a positive number or null, got {value!r}")
    return float(value)


GEMMA2 = Gemma(2)
GEMMA3 = Gemma(3)
