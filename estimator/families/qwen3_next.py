"""Qwen3-Next (Qwen/Qwen3-Next-80B-A3B-*; model_type qwen3_next): transformers 5.24's
modeling_qwen3_next.py, as it runs by default. 5.17 (the GPU machines') runs the same kernels:
its delta rules, conv paths and LinearAttentionLayer cache are the same code (compared against
the 5.17 wheel); it repeats q and k to the value heads in the layer, not inside the rule.

Layers (Qwen3NextConfig.layer_types; the published config writes full_attention_interval 4
instead): three of every four are ``linear_attention`` (Gated DeltaNet), the fourth
``full_attention``. Every norm is Qwen3NextRMSNorm: float32 x * rsqrt(mean(x²) + eps) times
(1 + weight.float()), cast back (ten kernels in bfloat16, ``norm_ops``).

Full attention (Qwen3NextAttention): q_proj is 2 x heads x head_dim wide, query and an output
gate per head (torch.chunk; the gate's reshape copies it); q/k RMSNorms over head_dim; rotary over
partial_rotary_factor (0.25) of head_dim, the rotated part concatenated back to the rest; SDPA
(the default); the output multiplied by sigmoid(gate) before o_proj. Its cache: K and V per token.

Gated DeltaNet (Qwen3NextGatedDeltaNet), without flash-linear-attention (``fla``) and
``causal_conv1d``, not installed on the benchmark GPUs: transformers falls back to its torch
code, and THAT is what is priced (``linear_attention_ops``):
- in_proj_qkvz and in_proj_ba; the head regrouping copies q, k, v, z, b, a (reshapes of
  non-contiguous splits); cat(q, k, v) into the conv's channels;
- the causal depthwise conv1d (F.conv1d over a transposed input, so a contiguous copy first) and
  silu; with a cache, the conv state's last conv_kernel columns copied into it (prefill) or
  torch.cat(conv_state, x) and the in-place copy of its tail (decode, causal_conv1d_update);
- beta = sigmoid(b), g = -exp(A_log) * softplus(a + dt_bias) (float32);
- prefill: torch_chunk_gated_delta_rule in float32: q/k repeated to the value heads, l2-normed,
  padded to a multiple of 64 tokens; per chunk of 64 the intra-chunk decay matrices, two batched
  matmuls, two triangular solves; then a PYTHON LOOP OVER ceil(seq / 64) CHUNKS of nine kernels
  each (four small float32 matmuls, the state's decay and update): the kernel count grows with
  seq / 64;
- decode: torch_recurrent_gated_delta_rule, a loop of one token: eleven elementwise kernels, five
  of them over the whole float32 state (value_heads x key_head_dim x value_head_dim per sequence);
- the gated RMSNorm (norm before the silu gate z, float32) and out_proj.
Its cache (LinearAttentionLayer, transformers 5.24): a conv state (batch, conv_dim, conv_kernel)
in the model's dtype and a recurrent state (batch, value_heads, key_head_dim, value_head_dim) in
float32, whatever the context length (kv_cache.state_bytes).

MLP (Qwen3NextSparseMoeBlock): a shared expert (gated MLP of shared_expert_intermediate_size)
scaled by sigmoid(shared_expert_gate(x)), plus the routed experts: Qwen3-MoE's router (softmax in
float32, top-k, renormalised) and transformers' default experts implementation (grouped_mm;
batched_mm in generate's decode steps on a GPU; families/moe_experts.py). Layers in
mlp_only_layers (or off decoder_sparse_step) are dense MLPs of intermediate_size.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, optional_text, size
from ..errors import EstimatorError
from ..layer_config import attention_kinds, layer_specs, sparse_mlp_kinds
from ..layers import PLAIN, LayerSpec, Mlp
from ..module_tree import Node, decoder_layers, leaf
from ..op_builders import FLOAT32_GEMM, FP32, Op, bmm32, ew, gemm, rotary
from .base import dense_mlp, qkv_projections
from .moe import MoE, MoEFields

if TYPE_CHECKING:
    from ..spec import ModelSpec

LINEAR = "linear attention"   # breakdown group of the Gated DeltaNet layers' kernels
P = "linear_attn."            # their names (decode.LINEAR_PREFIX)
MLP = "mlp"
CHUNK = 64                    # torch_chunk_gated_delta_rule's chunk_size


@dataclass(frozen=True)
class Qwen3NextFields(MoEFields):
    shared_ffn: int = 512        # shared_expert_intermediate_size
    rotary_dim: int = 64         # head_dim x partial_rotary_factor


def _f(spec: ModelSpec) -> Qwen3NextFields:
    return spec.fields_of(Qwen3NextFields)


def next_rms_norm(name: str, group: str, rows: int, width: int, e: int) -> list[Op]:
    """Qwen3NextRMSNorm over `rows` rows of `width`: x.float(), pow, mean, + eps, rsqrt, mul,
    weight.float(), 1 + weight, mul, type_as (the casts only when the model is not float32)."""
    n = rows * width
    ops = [ew(f"{name}.to_fp32", group, n, e + FP32, "cast")] if e != FP32 else []
    ops += [ew(f"{name}.pow", group, n, 2 * FP32, "unary"), ew(f"{name}.mean", group, n, FP32, "reduce"),
            ew(f"{name}.add_eps", group, rows, 2 * FP32, "unary"), ew(f"{name}.rsqrt", group, rows, 2 * FP32, "unary"),
            ew(f"{name}.mul", group, n, 3 * FP32, "broadcast")]
    if e != FP32:
        ops.append(ew(f"{name}.weight_fp32", group, width, e + FP32, "cast"))
    ops += [ew(f"{name}.one_plus", group, width, 2 * FP32, "unary"), ew(f"{name}.weight", group, n, 3 * FP32, "broadcast")]
    return ops + ([ew(f"{name}.type_as", group, n, FP32 + e, "cast")] if e != FP32 else [])


class Qwen3Next(MoE):
    # not timed by host calibration (the full plan's budget, calibrate/plan.py): the op-level
    # host model prices its host time with host_extras
    host_timed = False
    priced_features = ("linear", "experts+shared")

    def __init__(self) -> None:
        super().__init__("qwen3_next", "qwen3_next", "num_experts", "moe_intermediate_size", qk_norm=True)
        # views, module calls per layer: a CPU count on transformers 5.24 (tests/test_host_model.py), seq 8 (one
        # chunk: the chunk loop adds 8 views per further 64 tokens on a linear layer, not counted)
        self.host_extras = (82.0, 21.0)
        self.tiny_config = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                vocab_size=256, max_position_embeddings=256, intermediate_size=128,
                                moe_intermediate_size=32, shared_expert_intermediate_size=32, num_experts=4,
                                num_experts_per_tok=2, linear_num_key_heads=2, linear_num_value_heads=4,
                                linear_key_head_dim=16, linear_value_head_dim=16, linear_conv_kernel_dim=4,
                                experts_implementation="eager")

    def tiny_config_kwargs(self, model_type: str, layers: int) -> dict[str, Any]:
        """Every 4th layer and the last one full attention: transformers needs one (a cache of
        linear layers only has no sequence length), and a 2-layer model has both kinds."""
        types = ["full_attention" if (i + 1) % 4 == 0 or i == layers - 1 else "linear_attention" for i in range(layers)]
        return dict(super().tiny_config_kwargs(model_type, layers), layer_types=types)

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        # base_model_tp_plan: q, k, v, q/k norms, o or in_proj_qkvz, in_proj_ba, out_proj (3 of 4
        # layers); the experts module and its two 3-D weights; the shared expert's gate, up, down
        return 9 + 3

    def rotary_copy_dim(self, spec: ModelSpec) -> int:
        return _f(spec).rotary_dim

    # ---- config -------------------------------------------------------------------------------
    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        heads = a["heads"]
        kv = optional_size(cfg, "num_key_value_heads", 2)
        divisible("num_attention_heads", heads, "num_key_value_heads", kv)
        experts = size(cfg, "num_experts")
        top_k = optional_size(cfg, "num_experts_per_tok", 10)
        if top_k > experts:
            raise EstimatorError(f"num_experts_per_tok {top_k} exceeds num_experts {experts}")
        head_dim = optional_size(cfg, "head_dim", 256)
        factor = cfg.get("partial_rotary_factor", (cfg.get("rope_parameters") or {}).get("partial_rotary_factor", 0.25))
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not 0 < factor <= 1:
            raise EstimatorError(f"partial_rotary_factor must be a number in (0, 1], got {factor!r:.60}")
        bias = optional_bool(cfg, "attention_bias", False)
        fields = Qwen3NextFields(experts=experts, top_k=top_k, norm_topk=optional_bool(cfg, "norm_topk_prob", True),
                                 shared_ffn=optional_size(cfg, "shared_expert_intermediate_size", 512),
                                 rotary_dim=int(head_dim * float(factor)))
        return dict(kv_heads=kv, head_dim=head_dim, qkv_bias=bias, out_bias=bias, mlp_bias=False, gated_mlp=True,
                    norm="rmsnorm", activation=optional_text(cfg, "hidden_act", "silu"),
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", False), family_fields=fields)

    def layer_kinds(self, cfg: dict, model_type: str, layers: int) -> tuple[LayerSpec, ...]:
        # Qwen3NextConfig: layer_types, else linear_attention but every full_attention_interval-th layer
        interval = optional_size(cfg, "full_attention_interval", 4)
        default = ["linear" if (i + 1) % interval else "full" for i in range(layers)]
        mlps = [Mlp("experts+shared") if m.kind == "experts" else m
                for m in sparse_mlp_kinds(cfg, layers, "intermediate_size")]
        return layer_specs(attention_kinds(cfg, layers, default), mlps)

    def estimate_notes(self, spec: ModelSpec, tokens: int) -> list[str]:
        notes = super().estimate_notes(spec, tokens)
        linear = [k for k in spec.layer_kinds if k.attention.kind == "linear"]
        if linear:
            from ..kv_cache import state_bytes   # a leaf module
            mib = state_bytes(spec, linear[0], 2) / 2**20
            notes.append(f"{len(linear)} of {spec.layers} layers are Gated DeltaNet linear attention, priced as "
                         "transformers' torch fallback (flash-linear-attention and causal_conv1d are not installed "
                         "on the benchmark GPUs): torch_chunk_gated_delta_rule for the prompt (a Python loop over "
                         f"chunks of {CHUNK} tokens), torch_recurrent_gated_delta_rule per decode step, torch conv1d; "
                         f"each keeps a fixed conv + float32 recurrent state ({mib:.2f} MiB per sequence in bf16), "
                         "no per-token cache")
        return notes

    # ---- parameters ------------------------------------------------------------------------
    def mlp_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        if layer.mlp.kind == "dense":
            return spec.dense_mlp_params(layer.mlp.ffn)
        f, h = _f(spec), spec.hidden
        n = f.experts
        # router, routed experts, the shared expert and its one-output gate
        return n * h + n * 3 * h * spec.layer_ffn(layer) + 3 * h * f.shared_ffn + h

    def extra_layer_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        h = spec.hidden
        if layer.attention.kind != "linear":   # q_proj's gate half (and its bias), q/k norms
            return h * spec.q_dim + spec.q_dim * spec.qkv_bias + 2 * spec.head_dim
        m = layer.attention.linear
        value = m.value_heads * m.value_head_dim
        delta_net = (h * (2 * m.key_heads * m.key_head_dim + 2 * value) + h * 2 * m.value_heads   # in_proj_qkvz, _ba
                     + m.conv_dim * m.conv_kernel + 2 * m.value_heads + m.value_head_dim + value * h)
        return delta_net - spec.attention_params(layer)   # conv1d, dt_bias, A_log, norm, out_proj

    # ---- kernels -----------------------------------------------------------------------------
    def norm_ops(self, spec: ModelSpec, name: str, group: str, t: int, h: int, e: int) -> list[Op]:
        return next_rms_norm(name, group, t, h, e)

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        d, r = spec.head_dim, _f(spec).rotary_dim
        q, k, v = qkv_projections(spec, t, qd, kvd, e)
        q = gemm("q_proj", q.group, t, 2 * qd, spec.hidden, e, spec.qkv_bias)   # query and gate
        ops = [q, ew("gate_reshape", "attention", t * qd, 2 * e, "strided")]
        ops += next_rms_norm("q_norm", "norms", t * qd // d, d, e) + [k] + next_rms_norm("k_norm", "norms", t * kvd // d, d, e)
        ops += [v] + rotary("q_rotary", t, qd // d * r, e) + rotary("k_rotary", t, kvd // d * r, e)
        if r < d:   # the rotated part concatenated back to the rest of the head
            ops += [ew("q_rotary.cat_pass", "rotary", t * qd, 2 * e, "strided_cat"),
                    ew("k_rotary.cat_pass", "rotary", t * kvd, 2 * e, "strided_cat")]
        return ops

    def attention_ops(self, spec: ModelSpec, batch: int, seq: int, heads: int, kv: int, e: int,
                      cuda: bool = True, layer: LayerSpec = PLAIN, kv_len: int | None = None) -> list[Op]:
        ops = super().attention_ops(spec, batch, seq, heads, kv, e, cuda, layer, kv_len)
        n = batch * seq * heads * spec.head_dim   # attn_output * sigmoid(gate)
        return ops + [ew("gate_sigmoid", "attention", n, 2 * e, "unary"), ew("gate_mul", "attention", n, 3 * e)]

    def linear_attention_ops(self, spec: ModelSpec, layer: LayerSpec, batch: int, seq: int, e: int,
                             shards: int = 1, decode: bool = False) -> list[Op]:
        m = layer.attention.linear
        b, t, h = batch, batch * seq, spec.hidden
        kh, vh, dk, dv, cd, kc = m.key_heads, m.value_heads, m.key_head_dim, m.value_head_dim, m.conv_dim, m.conv_kernel
        qkvz = 2 * kh * dk + 2 * vh * dv
        ops = [gemm(P + "in_proj_qkvz", LINEAR, t, qkvz // shards, h, e), gemm(P + "in_proj_ba", LINEAR, t, 2 * vh // shards, h, e)]
        # fix_query_key_value_ordering: reshapes of strided splits copy; then cat(q, k, v)
        ops += [ew(P + f"{x}_reshape", LINEAR, t * n, 2 * e, "strided")
                for x, n in (("q", kh * dk), ("k", kh * dk), ("v", vh * dv), ("z", vh * dv), ("b", vh), ("a", vh))]
        ops.append(ew(P + "qkv_cat", LINEAR, t * cd, 2 * e, "strided_cat"))
        conv = lambda length, elems: Op(P + "conv1d", LINEAR, "elementwise", 2.0 * kc * b * cd * length,  # noqa: E731
                                        float(e * (b * cd * length + elems + cd * kc)), pattern="unary")
        if decode:   # causal_conv1d_update: cat(state, x), the state's in-place update, conv, silu
            ops += [ew(P + "conv_state_cat", LINEAR, b * cd * (kc + 1), 2 * e, "strided_cat"),
                    ew(P + "conv_state_copy", LINEAR, b * cd * kc, 2 * e, "strided"), conv(2, b * cd * (kc + 1))]
        else:
            if spec.use_cache:   # LinearAttentionLayer.update_conv_state: zeros, then the last kc columns
                ops += [ew(P + "conv_state_zeros", LINEAR, b * cd * kc, e, "unary")]
                if seq < kc:
                    ops.append(ew(P + "conv_state_pad", LINEAR, b * cd * kc, 2 * e, "strided"))
                ops.append(ew(P + "conv_state_copy", LINEAR, b * cd * kc, 2 * e, "strided"))
            ops += [ew(P + "conv_input_contiguous", LINEAR, t * cd, 2 * e, "transpose"), conv(seq + kc - 1, t * cd)]
        ops.append(ew(P + "conv_silu", LINEAR, t * cd, 2 * e, "strided"))
        # beta = b.sigmoid(); g = -A_log.float().exp() * softplus(a.float() + dt_bias)
        tv = t * vh
        ops += [ew(P + "beta_sigmoid", LINEAR, tv, 2 * e, "unary")]
        ops += [ew(P + "A_log_fp32", LINEAR, vh, e + FP32, "cast")] if e != FP32 else []
        ops += [ew(P + "A_exp", LINEAR, vh, 2 * FP32, "unary"), ew(P + "A_neg", LINEAR, vh, 2 * FP32, "unary")]
        ops += [ew(P + "a_fp32", LINEAR, tv, e + FP32, "cast")] if e != FP32 else []
        ops += [ew(P + "dt_bias_add", LINEAR, tv, 2 * FP32 + e, "broadcast"), ew(P + "softplus", LINEAR, tv, 2 * FP32, "unary"),
                ew(P + "g_mul", LINEAR, tv, 3 * FP32, "broadcast")]
        ops += (self._recurrent_rule if decode else self._chunk_rule)(m, b, seq, e, spec.use_cache)
        # Qwen3NextRMSNormGated over t x value_heads rows of value_head_dim, then out_proj
        n = tv * dv
        cast = e != FP32
        ops += [ew(P + "norm.to_fp32", LINEAR, n, e + FP32, "cast")] if cast else []
        ops += [ew(P + "norm.pow", LINEAR, n, 2 * FP32, "unary"), ew(P + "norm.mean", LINEAR, n, FP32, "reduce"),
                ew(P + "norm.add_eps", LINEAR, tv, 2 * FP32, "unary"), ew(P + "norm.rsqrt", LINEAR, tv, 2 * FP32, "unary"),
                ew(P + "norm.mul", LINEAR, n, 3 * FP32, "broadcast")]
        ops += [ew(P + "norm.to_dtype", LINEAR, n, FP32 + e, "cast")] if cast else []
        ops += [ew(P + "norm.weight", LINEAR, n, 3 * e, "broadcast")]
        ops += [ew(P + "norm.gate_fp32", LINEAR, n, e + FP32, "cast")] if cast else []
        ops += [ew(P + "norm.gate_silu", LINEAR, n, 2 * FP32, "unary"), ew(P + "norm.gate_mul", LINEAR, n, e + 2 * FP32)]
        ops += [ew(P + "norm.out_dtype", LINEAR, n, FP32 + e, "cast")] if cast else []
        return ops + [gemm(P + "out_proj", LINEAR, t, h // shards, vh * dv, e)]

    @staticmethod
    def _rule_inputs(m, t: int, e: int, to_fp32_copies: bool) -> list[Op]:
        """Both delta rules' start: q and k repeated to the value heads, q, k, v, beta, g to
        float32 (transposed: copies), q and k l2-normed, q scaled."""
        vh, dk, dv = m.value_heads, m.key_head_dim, m.value_head_dim
        ops = ([ew(P + f"{x}_repeat_heads", LINEAR, t * vh * dk, 2 * e, "copy") for x in "qk"]
               if vh != m.key_heads else [])
        if to_fp32_copies or e != FP32:
            ops += [ew(P + f"{x}_to_fp32", LINEAR, t * vh * d, e + FP32, "transpose")
                    for x, d in (("q", dk), ("k", dk), ("v", dv), ("beta", 1))]
        if to_fp32_copies:
            ops.append(ew(P + "g_transpose", LINEAR, t * vh, 2 * FP32, "transpose"))
        for x in "qk":   # l2norm: x * x, sum, + eps, rsqrt, x * inv
            ops += [ew(P + f"{x}_l2.sq", LINEAR, t * vh * dk, 3 * FP32), ew(P + f"{x}_l2.sum", LINEAR, t * vh * dk, FP32, "reduce"),
                    ew(P + f"{x}_l2.add_eps", LINEAR, t * vh, 2 * FP32, "unary"),
                    ew(P + f"{x}_l2.rsqrt", LINEAR, t * vh, 2 * FP32, "unary"),
                    ew(P + f"{x}_l2.mul", LINEAR, t * vh * dk, 3 * FP32, "broadcast")]
        return ops + [ew(P + "q_scale", LINEAR, t * vh * dk, 2 * FP32, "unary")]

    def _chunk_rule(self, m, b: int, seq: int, e: int, cache: bool) -> list[Op]:
        """torch_chunk_gated_delta_rule over `seq` tokens of `b` sequences (no initial state: the
        prompt's forward), chunks of 64 tokens, float32."""
        vh, dk, dv = m.value_heads, m.key_head_dim, m.value_head_dim
        t = b * seq
        n = ceil(seq / CHUNK)
        length = n * CHUNK
        bv, rows = b * vh, b * vh * length   # (batch x heads) and their padded token rows
        pairs = bv * n * CHUNK * CHUNK      # the intra-chunk (64 x 64) matrices
        state = bv * dk * dv
        ops = self._rule_inputs(m, t, e, True)
        for x, d in (("q", dk), ("k", dk), ("v", dv), ("beta", 1), ("g", 1)):   # F.pad to the chunk multiple
            if length > seq:
                ops += [ew(P + f"{x}_pad.fill", LINEAR, rows * d, FP32, "unary"),
                        ew(P + f"{x}_pad.copy", LINEAR, t * vh * d, 2 * FP32, "strided")]
            else:
                ops.append(ew(P + f"{x}_pad", LINEAR, t * vh * d, 2 * FP32, "copy"))
        ops += [ew(P + "v_beta", LINEAR, rows * dv, 3 * FP32, "broadcast"), ew(P + "k_beta", LINEAR, rows * dk, 3 * FP32, "broadcast"),
                ew(P + "mask_ones", LINEAR, CHUNK * CHUNK, 1, "unary"), ew(P + "mask_triu", LINEAR, CHUNK * CHUNK, 2, "unary"),
                ew(P + "decay_cumsum", LINEAR, rows, 2 * FP32, "reduce"),
                ew(P + "pair_decay.sub", LINEAR, pairs, 3 * FP32, "broadcast"),
                ew(P + "pair_decay.mask", LINEAR, pairs, 2 * FP32 + 1, "broadcast"),
                ew(P + "pair_decay.exp", LINEAR, pairs, 2 * FP32, "unary"),
                bmm32(P + "ut_system.bmm", LINEAR, bv * n, CHUNK, CHUNK, dk),
                ew(P + "ut_system.mul", LINEAR, pairs, 3 * FP32),
                bmm32(P + "intra_attn.bmm", LINEAR, bv * n, CHUNK, CHUNK, dk),
                ew(P + "intra_attn.mul", LINEAR, pairs, 3 * FP32),
                ew(P + "decay_exp", LINEAR, rows, 2 * FP32, "unary"),
                ew(P + "decayed_k_beta", LINEAR, rows * dk, 3 * FP32, "broadcast")]
        for x, d in (("v", dv), ("k", dk)):   # linalg.solve_triangular: B copied, batched trsm
            ops += [ew(P + f"solve_{x}.copy", LINEAR, rows * d, 2 * FP32, "copy"),
                    Op(P + f"solve_{x}.trsm", LINEAR, "gemm", float(bv * n * CHUNK * CHUNK * d),
                       float(FP32 * bv * n * (CHUNK * CHUNK + 2 * CHUNK * d)), (rows, d, CHUNK), FLOAT32_GEMM)]
        ops += [ew(P + "state_zeros", LINEAR, state, FP32, "unary"), ew(P + "out_zeros", LINEAR, rows * dv, FP32, "unary"),
                ew(P + "q_decay.exp", LINEAR, rows, 2 * FP32, "unary"), ew(P + "q_decay.mul", LINEAR, rows * dk, 3 * FP32, "broadcast"),
                ew(P + "k_decay.sub", LINEAR, rows, 3 * FP32, "broadcast"), ew(P + "k_decay.exp", LINEAR, rows, 2 * FP32, "unary"),
                ew(P + "k_decay.mul", LINEAR, rows * dk, 3 * FP32, "broadcast"),
                ew(P + "chunk_decay.exp", LINEAR, bv * n, 2 * FP32, "unary")]
        c = bv * CHUNK * dv   # one chunk's output rows
        loop = [bmm32(P + "chunk.k_state", LINEAR, bv, CHUNK, dv, dk), ew(P + "chunk.v_new", LINEAR, c, 3 * FP32),
                bmm32(P + "chunk.q_state", LINEAR, bv, CHUNK, dv, dk), bmm32(P + "chunk.intra_v", LINEAR, bv, CHUNK, dv, CHUNK),
                ew(P + "chunk.out_add", LINEAR, c, 3 * FP32), ew(P + "chunk.out_copy", LINEAR, c, 2 * FP32, "strided"),
                ew(P + "chunk.state_decay", LINEAR, state, 2 * FP32, "broadcast"),
                bmm32(P + "chunk.k_v_new", LINEAR, bv, dk, dv, CHUNK), ew(P + "chunk.state_add", LINEAR, state, 3 * FP32)]
        ops += loop * n   # the Python loop over the chunks: its kernels grow with seq / 64
        ops.append(ew(P + "out_to_dtype", LINEAR, t * vh * dv, FP32 + e, "transpose"))
        if cache:   # update_recurrent_state: zeros_like, then copy_
            ops += [ew(P + "state_cache_zeros", LINEAR, state, FP32, "unary"),
                    ew(P + "state_cache_copy", LINEAR, state, 2 * FP32, "copy")]
        return ops

    def _recurrent_rule(self, m, b: int, seq: int, e: int, cache: bool) -> list[Op]:
        """torch_recurrent_gated_delta_rule for one token per sequence over the cached state."""
        vh, dk, dv = m.value_heads, m.key_head_dim, m.value_head_dim
        bv, state = b * vh, b * vh * dk * dv
        ops = self._rule_inputs(m, b, e, False)
        ops += [ew(P + "out_zeros", LINEAR, bv * dv, FP32, "unary"),
                ew(P + "step.decay_exp", LINEAR, bv, 2 * FP32, "unary"),
                ew(P + "step.state_decay", LINEAR, state, 2 * FP32, "broadcast"),
                ew(P + "step.state_k", LINEAR, state, 2 * FP32, "broadcast"),
                ew(P + "step.kv_mem", LINEAR, state, FP32, "reduce"),
                ew(P + "step.delta_sub", LINEAR, bv * dv, 3 * FP32), ew(P + "step.delta_beta", LINEAR, bv * dv, 3 * FP32, "broadcast"),
                ew(P + "step.outer", LINEAR, state, FP32, "broadcast"), ew(P + "step.state_add", LINEAR, state, 3 * FP32),
                ew(P + "step.state_q", LINEAR, state, 2 * FP32, "broadcast"), ew(P + "step.out_sum", LINEAR, state, FP32, "reduce"),
                ew(P + "step.out_copy", LINEAR, bv * dv, 2 * FP32, "strided")]
        ops += [ew(P + "out_to_dtype", LINEAR, bv * dv, FP32 + e, "cast")] if e != FP32 else []
        return ops + ([ew(P + "state_cache_copy", LINEAR, state, 2 * FP32, "copy")] if cache else [])

    def mlp_ops(self, spec: ModelSpec, t: int, f: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        if layer.mlp.kind == "dense":
            return dense_mlp(spec, t, f, e)
        h = spec.hidden
        shards = max(1, spec.layer_ffn(layer) // f) if f else 1
        ops = dense_mlp(spec, t, _f(spec).shared_ffn // shards, e)   # the shared expert runs first
        ops += super().mlp_ops(spec, t, f, e, layer)                   # router and routed experts
        return ops + [gemm("shared_expert_gate", MLP, t, 1, h, e), ew("shared_gate_sigmoid", MLP, t, 2 * e, "unary"),
                      ew("shared_gate_mul", MLP, t * h, 3 * e, "broadcast"), ew("shared_add", MLP, t * h, 3 * e)]

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        # full attention: Qwen3-MoE's (q, k, v, norms, rotary) + q_proj's double width and the gate;
        # linear attention (e = 2 assumed: a float32 tensor counts twice): in_proj outputs, z, the
        # conv output, then inside the chunked rule (float32) q, k, v, their beta products, the
        # decayed keys, the solved values and keys, the output, and three 64-wide chunk matrices
        attn, mlp = super().layer_live_per_token(spec, qd, kvd, f)
        attn += 3 * qd
        for k in {k.attention.linear for k in spec.layer_kinds if k.attention.kind == "linear"}:
            kh, vh, dk, dv = k.key_heads, k.value_heads, k.key_head_dim, k.value_head_dim
            outer = 2 * kh * dk + 3 * vh * dv + 2 * vh + k.conv_dim
            rule = vh * (5 * dk + 4 * dv + 3 * CHUNK) * (FP32 // 2)
            attn = max(attn, outer + rule)
        return attn, mlp + 3 * _f(spec).shared_ffn + spec.hidden

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        p = "model."
        rotary_bytes = 2 * (_f(spec).rotary_dim // 2) * min(d, 4)
        # a full layer: q k v o, q/k norms; a linear one: in_proj_qkvz, _ba, conv1d, norm, out_proj
        # (and dt_bias, A_log on linear_attn); router, experts, the shared expert's 3 and its gate; 2 norms
        return Node("model", children=[
            leaf(p + "embed_tokens", spec.vocab * spec.hidden * d, "embed"),
            decoder_layers(p + "layers", spec.layers, layer_bytes, 14),
            leaf(p + "norm", spec.norm_params() * d, "norm"),
            Node(p + "rotary_emb", rotary_bytes, 0, None, "rotary", 1)])


QWEN3_NEXT = Qwen3Next()
