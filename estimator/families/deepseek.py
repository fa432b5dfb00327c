"""DeepSeek-V3 / Kimi-K2 (model_type deepseek_v3), DeepSeek-V2 / V2-Lite / Coder-V2 (deepseek_v2) and
GLM-4.5 (glm4_moe), as transformers 5.24 runs them.

MLP: layers before ``first_k_dense_replace`` are dense (``intermediate_size``); the others a
DeepseekV3MoE: a float32 sigmoid router with group-limited routing (``n_group`` groups, the best
``topk_group`` kept, scores + e_score_correction_bias), routed experts of
``moe_intermediate_size`` (families/moe_experts.py: grouped_mm by default, eager on request) and
``n_shared_experts`` shared experts as one dense MLP of moe_intermediate_size x n_shared wide,
added to the routed output.

Attention, deepseek_v3: multi-head latent attention (modeling_deepseek_v3.DeepseekV3Attention):
q = q_b(q_a_layernorm(q_a(x))) (or q_proj without q_lora_rank); kv_a_proj_with_mqa gives the
kv_lora_rank latent (RMS-normed) and one shared rotary key of qk_rope_head_dim. The CACHE HOLDS
THE LATENT (kv_lora_rank + qk_rope_head_dim elements per token, one "head"), and every forward,
decode steps included, expands the whole cache through kv_b_proj into per-head K (nope + rope)
and V (v_head_dim) before SDPA: a decode step's attention is a GEMM over the whole context plus
the key assembly copies, then SDPA over heads x (qk_nope + qk_rope).
glm4_moe: Llama's q/k/v (attention_bias), optional q/k RMSNorms (use_qk_norm), rotary over
partial_rotary_factor (0.5) of head_dim.

deepseek_v2 (modeling_deepseek_v2.py) is deepseek_v3's layer with three differences: its router
(DeepseekV2TopkRouter) is a float32 softmax with no correction bias, ``topk_method`` "greedy" (a
plain top-k: V2-Lite) or "group_limited_greedy" (each group's best score, the best ``topk_group``
groups kept, the others masked to 0, then top-k: V2), the top-k weights taken as they are (no
gather, no norm_topk_prob) times routed_scaling_factor; its rotary is complex (apply_rotary_emb:
float32 copy of q_pe / k_pe, complex multiply, cast back) from a torch.polar table; its config
defaults differ (q_lora_rank 1536 when absent, first_k_dense_replace 0, n_shared_experts 2,
mlp_bias for the dense and shared MLPs). The latent cache and the expansion through kv_b_proj
every step (expand_kv) are the same code as deepseek_v3's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, optional_text, size
from ..errors import EstimatorError
from ..layers import DENSE, PLAIN, Attention, LatentAttention, LayerSpec, Mlp
from ..layer_config import layer_specs
from ..module_tree import Node, decoder_layers, leaf
from ..op_builders import ATTENTION_PROJECTIONS, FP32, Op, decode_attention, ew, gemm, rms_norm, rotary
from .base import dense_mlp, llama_linears, qkv_projections
from .moe import MLP, ROUTER, MoE, MoEFields, experts_linears
from .moe_experts import batched_ops, grouped_ops

if TYPE_CHECKING:
    from ..spec import ModelSpec


@dataclass(frozen=True)
class DeepseekFields(MoEFields):
    shared: int = 1              # n_shared_experts (one MLP n_shared x moe_intermediate_size wide)
    groups: int = 1              # n_group
    topk_groups: int = 1         # topk_group
    latent: LatentAttention | None = None   # deepseek_v3's MLA ranks (None: glm4_moe's attention)
    rotary_dim: int = 0          # glm4_moe: rotated width of a head
    qk_norm: bool = False        # glm4_moe: use_qk_norm
    mla_bias: bool = False       # deepseek_v3's attention_bias: q_a_proj, kv_a_proj_with_mqa and o_proj
    group_limited: bool = True   # deepseek_v2: topk_method "group_limited_greedy" (False: "greedy")


def _f(spec: ModelSpec) -> DeepseekFields:
    return spec.fields_of(DeepseekFields)


def latent_attention(cfg: dict) -> LatentAttention:
    """The MLA ranks of a deepseek_v2 / deepseek_v3 config, with their configs' defaults:
    q_lora_rank 1536 when the field is absent, None (q_proj, no q LoRA: V2-Lite) when null."""
    q_lora = optional_size(cfg, "q_lora_rank", None) if "q_lora_rank" in cfg else 1536
    return LatentAttention(kv_lora_rank=optional_size(cfg, "kv_lora_rank", 512),
                           qk_rope_head_dim=optional_size(cfg, "qk_rope_head_dim", 64),
                           qk_nope_head_dim=optional_size(cfg, "qk_nope_head_dim", 128),
                           v_head_dim=optional_size(cfg, "v_head_dim", 128), q_lora_rank=q_lora)


def mla_spec_fields(cfg: dict, heads: int, fields: DeepseekFields, mlp_bias: bool) -> dict[str, Any]:
    """The ModelSpec fields of a latent-attention model: after kv_b_proj every head has its own K
    (nope + rope) and V, so kv_heads = heads and head_dim = qk_nope + qk_rope (SDPA's width)."""
    m = fields.latent
    return dict(kv_heads=heads, head_dim=m.qk_nope_head_dim + m.qk_rope_head_dim, qkv_bias=False, out_bias=False,
                mlp_bias=mlp_bias, gated_mlp=True, norm="rmsnorm", activation=optional_text(cfg, "hidden_act", "silu"),
                tied_embeddings=optional_bool(cfg, "tie_word_embeddings", False), family_fields=fields)


class Deepseek(MoE):
    """deepseek_v3 (`latent` True) and glm4_moe (False): one MoE block, two attentions."""

    first_dense_default = 3   # first_k_dense_replace when the config has none (glm4_moe: 1)

    def __init__(self, name: str, latent: bool, host_extras: tuple[float, float], tiny: dict) -> None:
        self.name, self.model_types, self.latent, self.qk_norm = name, (name,), latent, False
        self.moe_ffn_default = 2048 if latent else 1408   # moe_intermediate_size when the config has none
        if not latent:
            self.first_dense_default = 1
        self.experts_key = "n_routed_experts"
        self.aliases = dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                            ffn="intermediate_size", vocab="vocab_size", max_positions="max_position_embeddings")
        self.host_extras = host_extras
        self.tiny_config = tiny

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        return 7

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        heads = a["heads"]
        experts = size(cfg, "n_routed_experts")
        top_k = optional_size(cfg, "num_experts_per_tok", 8)
        if top_k > experts:
            raise EstimatorError(f"num_experts_per_tok {top_k} exceeds n_routed_experts {experts}")
        groups = optional_size(cfg, "n_group", 8 if self.latent else 1)
        divisible("n_routed_experts", experts, "n_group", groups)
        common = dict(experts=experts, top_k=top_k, norm_topk=optional_bool(cfg, "norm_topk_prob", True),
                      shared=optional_size(cfg, "n_shared_experts", 1),
                      groups=groups, topk_groups=optional_size(cfg, "topk_group", 4 if self.latent else 1))
        bias = optional_bool(cfg, "attention_bias", False)
        if self.latent:
            fields = DeepseekFields(**common, latent=latent_attention(cfg), mla_bias=bias)
            return mla_spec_fields(cfg, heads, fields, mlp_bias=False)
        kv = optional_size(cfg, "num_key_value_heads", 8)
        divisible("num_attention_heads", heads, "num_key_value_heads", kv)
        head_dim = optional_size(cfg, "head_dim", None) or a["hidden"] // heads
        factor = cfg.get("partial_rotary_factor", (cfg.get("rope_parameters") or {}).get("partial_rotary_factor", 0.5))
        fields = DeepseekFields(**common, rotary_dim=int(head_dim * float(factor)),
                                qk_norm=optional_bool(cfg, "use_qk_norm", False))
        return dict(kv_heads=kv, head_dim=head_dim, qkv_bias=bias, out_bias=False, mlp_bias=False, gated_mlp=True,
                    norm="rmsnorm", activation=optional_text(cfg, "hidden_act", "silu"),
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", False), family_fields=fields)

    def layer_kinds(self, cfg: dict, model_type: str, layers: int) -> tuple[LayerSpec, ...]:
        first_dense = optional_size(cfg, "first_k_dense_replace", self.first_dense_default)
        if self.latent:
            attention = Attention("latent", latent=latent_attention(cfg))
        else:
            attention = Attention()
        moe = Mlp("experts+shared", ffn=optional_size(cfg, "moe_intermediate_size", self.moe_ffn_default))
        return layer_specs([attention] * layers, [DENSE if i < first_dense else moe for i in range(layers)])

    # ---- parameters ------------------------------------------------------------------------
    def mlp_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        if layer.mlp.kind == "dense":
            return spec.dense_mlp_params(layer.mlp.ffn)
        fields, h, f = _f(spec), spec.hidden, spec.layer_ffn(layer)
        n = fields.experts   # router, routed and shared experts (deepseek_v2: mlp_bias on the shared MLP)
        return n * h + n * 3 * h * f + spec.dense_mlp_params(f * fields.shared)

    def extra_layer_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        fields = _f(spec)
        if not self.latent:
            return 2 * spec.head_dim if fields.qk_norm else 0
        m, h, heads = fields.latent, spec.hidden, spec.heads
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        q = h * heads * qk if m.q_lora_rank is None else h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * heads * qk
        mla = (q + h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
               + m.kv_lora_rank * heads * (m.qk_nope_head_dim + m.v_head_dim) + heads * m.v_head_dim * h)
        bias = fields.mla_bias * ((m.q_lora_rank or 0) + m.kv_lora_rank + m.qk_rope_head_dim + h)
        return mla + bias - spec.attention_params(layer)

    def fp8_linears(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> list[tuple[str, int, int, int, int, bool]] | None:
        """MLA's q_proj or q_a_proj / q_b_proj, kv_a_proj_with_mqa, kv_b_proj, o_proj (glm4_moe:
        q/k/v/o); a dense MLP, or the experts and the shared_experts MLP."""
        h, f, b = spec.hidden, spec.layer_ffn(layer), spec.mlp_bias
        if self.latent:
            m, heads, mb = _f(spec).latent, spec.heads, _f(spec).mla_bias
            qk = heads * (m.qk_nope_head_dim + m.qk_rope_head_dim)
            q = ([("self_attn.q_proj", qk, h, 0, 1, False)] if m.q_lora_rank is None else
                 [("self_attn.q_a_proj", m.q_lora_rank, h, 0, 1, mb), ("self_attn.q_b_proj", qk, m.q_lora_rank, 0, 1, False)])
            out = q + [("self_attn.kv_a_proj_with_mqa", m.kv_lora_rank + m.qk_rope_head_dim, h, 0, 1, mb),
                       ("self_attn.kv_b_proj", heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank, 0, 1, False),
                       ("self_attn.o_proj", h, heads * m.v_head_dim, 0, 1, mb)]
        else:
            out = llama_linears(spec, layer, mlp=False)
        if layer.mlp.kind == "dense":
            return out + llama_linears(spec, layer, attention=False)
        s = f * _f(spec).shared
        return out + experts_linears(spec, f) + [("mlp.shared_experts.gate_proj", s, h, 0, 1, b),
                                                 ("mlp.shared_experts.up_proj", s, h, 0, 1, b),
                                                 ("mlp.shared_experts.down_proj", h, s, 0, 1, b)]

    # ---- kernels -----------------------------------------------------------------------------
    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        fields, g, h = _f(spec), ATTENTION_PROJECTIONS, spec.hidden
        if not self.latent:
            ops = qkv_projections(spec, t, qd, kvd, e)
            d = spec.head_dim
            if fields.qk_norm:
                ops += rms_norm("q_norm", "norms", t * qd // d, d, e) + rms_norm("k_norm", "norms", t * kvd // d, d, e)
            r = fields.rotary_dim
            return ops + rotary("q_rotary", t, qd // d * r, e) + rotary("k_rotary", t, kvd // d * r, e)
        m = fields.latent
        heads = qd // spec.head_dim
        if m.q_lora_rank is None:
            ops = [gemm("q_proj", g, t, qd, h, e)]
        else:
            ops = ([gemm("q_a_proj", g, t, m.q_lora_rank, h, e)] + rms_norm("q_a_layernorm", "norms", t, m.q_lora_rank, e)
                   + [gemm("q_b_proj", g, t, qd, m.q_lora_rank, e)])
        ops += [gemm("kv_a_proj_with_mqa", g, t, m.kv_lora_rank + m.qk_rope_head_dim, h, e)]
        ops += rms_norm("kv_a_layernorm", "norms", t, m.kv_lora_rank, e)
        return ops + self.mla_rotary_ops(t, heads, m.qk_rope_head_dim, e)

    def mla_rotary_ops(self, t: int, heads: int, rope: int, e: int) -> list[Op]:
        """The rotation of q_rot (`heads` heads) and of the shared k_rot, `rope` wide, over `t` tokens."""
        # rope_interleave (the default): a strided copy of q_rot / k_rot before the rotation
        return ([ew("q_interleave", "rotary", t * heads * rope, 2 * e, "strided"),
                 ew("k_interleave", "rotary", t * rope, 2 * e, "strided")]
                + rotary("q_rotary", t, heads * rope, e) + rotary("k_rotary", t, rope, e))

    def expand_ops(self, spec: ModelSpec, batch: int, queries: int, keys: int, heads: int, e: int) -> list[Op]:
        """MLA after the cache update: cat(q_pass, q_rot) over the step's queries, kv_b_proj over
        every cached token and the per-head key assembly (two copies into new_empty)."""
        m = _f(spec).latent
        q = batch * queries * heads * (m.qk_nope_head_dim + m.qk_rope_head_dim)
        kv = batch * keys
        return [ew("q_cat", "attention", q, 2 * e, "strided_cat"),
                gemm("kv_b_proj", ATTENTION_PROJECTIONS, kv, heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank, e),
                ew("k_nope_copy", "attention", kv * heads * m.qk_nope_head_dim, 2 * e, "strided"),
                ew("k_rot_copy", "attention", kv * heads * m.qk_rope_head_dim, 2 * e, "strided")]

    def attention_ops(self, spec: ModelSpec, batch: int, seq: int, heads: int, kv: int, e: int,
                      cuda: bool = True, layer: LayerSpec = PLAIN, kv_len: int | None = None) -> list[Op]:
        ops = super().attention_ops(spec, batch, seq, heads, kv, e, cuda, layer, kv_len)
        return self.expand_ops(spec, batch, seq, kv_len or seq, heads, e) + ops if self.latent else ops

    def attention_out_dim(self, spec: ModelSpec, heads: int) -> int:
        return heads * _f(spec).latent.v_head_dim if self.latent else heads * spec.head_dim

    def decode_attention_ops(self, spec: ModelSpec, layer: LayerSpec, one: list[Op], batch: int, kv_len: int,
                             e: int) -> list[Op]:
        if not self.latent:
            return super().decode_attention_ops(spec, layer, one, batch, kv_len, e)
        expanded = {op.name for op in self.expand_ops(spec, 1, 1, 1, 1, e)}
        rest = [decode_attention(batch, spec.heads, spec.heads, kv_len, spec.head_dim, e) if op.kind == "sdpa" else op
                for op in one if op.name not in expanded]
        return self.expand_ops(spec, batch, 1, kv_len, spec.heads, e) + rest

    def mlp_ops(self, spec: ModelSpec, t: int, f: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        if layer.mlp.kind == "dense":
            return dense_mlp(spec, t, f, e)
        fields = _f(spec)
        h, n, k = spec.hidden, fields.experts, fields.top_k
        ops = self.router_ops(spec, t, e)
        if fields.experts_impl == "grouped_mm":
            ops += grouped_ops(h, f, n, k, t, e, FP32)
        elif fields.experts_impl == "batched_mm":
            ops += batched_ops(h, f, n, k, t, e, FP32)
        else:
            ops += self.eager_experts(spec, t, f, e, FP32)
        return ops + dense_mlp(spec, t, f * fields.shared, e) + [ew("shared_add", MLP, t * h, 3 * e)]

    def router_ops(self, spec: ModelSpec, t: int, e: int) -> list[Op]:
        """The router of `t` tokens up to the float32 top-k weights and indices."""
        fields = _f(spec)
        h, n, k = spec.hidden, fields.experts, fields.top_k
        # DeepseekV3TopkRouter / Glm4MoeTopkRouter: float32 linear, sigmoid, + bias, group top-2
        # sums, group top-k, group mask (zeros, scatter, expand-reshape), masked_fill, top-k, gather
        ops = [ew("router_in_fp32", ROUTER, t * h, e + FP32, "cast"), gemm("router", ROUTER, t, n, h, FP32),
               ew("router_sigmoid", ROUTER, t * n, 2 * FP32, "unary"), ew("score_bias", ROUTER, t * n, 3 * FP32, "broadcast"),
               ew("group_top2", ROUTER, t * n, FP32, "reduce"), ew("group_sum", ROUTER, t * fields.groups * 2, FP32, "reduce"),
               ew("group_topk", ROUTER, t * fields.groups, FP32, "reduce"),
               ew("group_mask.zeros", ROUTER, t * fields.groups, FP32, "unary"),
               ew("group_mask.scatter", ROUTER, t * fields.topk_groups, 2 * FP32, "binary"),
               ew("score_mask", ROUTER, t * n, 2 * FP32, "copy"), ew("mask_not", ROUTER, t * n, 2, "unary"),
               ew("masked_fill", ROUTER, t * n, 2 * FP32 + 1, "binary"), ew("topk", ROUTER, t * n, FP32, "reduce"),
               ew("gather_weights", ROUTER, t * k, 2 * FP32, "strided")]
        if fields.norm_topk:
            ops += [ew("topk_sum", ROUTER, t * k, FP32, "reduce"), ew("topk_add_eps", ROUTER, t, 2 * FP32, "unary"),
                    ew("topk_div", ROUTER, t * k, 3 * FP32, "broadcast")]
        ops.append(ew("routed_scaling", ROUTER, t * k, 2 * FP32, "unary"))
        return ops

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        p = "model."
        rotary_bytes = 2 * ((spec.head_dim + 1) // 2) * min(d, 4)
        # q (q_proj, or q_a_proj, q_a_layernorm, q_b_proj), kv_a_proj_with_mqa, kv_a_layernorm,
        # kv_b_proj, o_proj; gate, experts, shared gate/up/down; two norms (glm4_moe: q k v o ...)
        leaves = (12 if _f(spec).latent.q_lora_rank is None else 14) if self.latent else 11
        return Node("model", children=[
            leaf(p + "embed_tokens", spec.vocab * spec.hidden * d, "embed"),
            decoder_layers(p + "layers", spec.layers, layer_bytes, leaves),
            leaf(p + "norm", spec.norm_params() * d, "norm"),
            Node(p + "rotary_emb", rotary_bytes, 0, None, "rotary", 1)])


_TINY_MOE = dict(hidden_size=64, num_attention_heads=4, vocab_size=256, max_position_embeddings=128,
                 intermediate_size=128, moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2,
                 n_group=2, topk_group=1, n_shared_experts=1, first_k_dense_replace=1,
                 experts_implementation="eager")
DEEPSEEK_V3 = Deepseek("deepseek_v3", True, (52.0, 22.0),   # views, module calls: CPU counts 50.8-58.0 as random routing varies (seeded test: 50.8 / 21.8), transformers 5.24
                       dict(_TINY_MOE, num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=24, qk_rope_head_dim=8,
                            qk_nope_head_dim=16, v_head_dim=16))
GLM4_MOE = Deepseek("glm4_moe", False, (48.0, 21.0),
                    dict(_TINY_MOE, num_key_value_heads=2, head_dim=16, use_qk_norm=True))


TOPK_METHODS = ("greedy", "group_limited_greedy")   # what DeepseekV2TopkRouter.forward runs


class DeepseekV2(Deepseek):
    """deepseek_v2: deepseek_v3's latent attention, dense first layers and shared experts, with
    DeepseekV2TopkRouter's softmax routing and the complex rotary (module docstring)."""

    first_dense_default = 0

    def __init__(self, host_extras: tuple[float, float], tiny: dict) -> None:
        super().__init__("deepseek_v2", True, host_extras, tiny)
        self.moe_ffn_default = 1407

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        experts = optional_size(cfg, "n_routed_experts", 64)
        top_k = size(cfg, "num_experts_per_tok")   # DeepseekV2Config's default (None) cannot route
        if top_k > experts:
            raise EstimatorError(f"num_experts_per_tok {top_k} exceeds n_routed_experts {experts}")
        method = optional_text(cfg, "topk_method", "greedy")
        if method not in TOPK_METHODS:
            raise EstimatorError(f"topk_method {method!r:.40} is not one DeepseekV2TopkRouter runs: use "
                                 f"{' or '.join(TOPK_METHODS)}")
        limited = method == "group_limited_greedy"
        if limited:   # n_group / topk_group have no default: the router divides by them
            groups, topk_groups = size(cfg, "n_group"), size(cfg, "topk_group")
            divisible("n_routed_experts", experts, "n_group", groups)
            if topk_groups > groups:
                raise EstimatorError(f"topk_group {topk_groups} exceeds n_group {groups}")
        else:
            groups = topk_groups = 1   # greedy ignores them
        # norm_topk_prob is read by the config but never by the router: the weights are not renormalised
        fields = DeepseekFields(experts=experts, top_k=top_k, norm_topk=False,
                                shared=optional_size(cfg, "n_shared_experts", 2), groups=groups,
                                topk_groups=topk_groups, latent=latent_attention(cfg),
                                mla_bias=optional_bool(cfg, "attention_bias", False), group_limited=limited)
        return mla_spec_fields(cfg, a["heads"], fields, mlp_bias=optional_bool(cfg, "mlp_bias", False))

    def router_ops(self, spec: ModelSpec, t: int, e: int) -> list[Op]:
        """DeepseekV2TopkRouter: float32 linear, softmax; group_limited_greedy: each group's max,
        the top topk_group groups, their mask (zeros, scatter, expand-reshape, bool, not),
        masked_fill; top-k of the scores (the weights as they are), times routed_scaling_factor."""
        fields = _f(spec)
        h, n, k, g = spec.hidden, fields.experts, fields.top_k, fields.groups
        ops = [ew("router_in_fp32", ROUTER, t * h, e + FP32, "cast"), gemm("router", ROUTER, t, n, h, FP32),
               ew("router_softmax", ROUTER, t * n, 2 * FP32, "unary")]
        if fields.group_limited:
            ops += [ew("group_max", ROUTER, t * n, FP32, "reduce"), ew("group_topk", ROUTER, t * g, FP32, "reduce"),
                    ew("group_mask.zeros", ROUTER, t * g, FP32, "unary"),
                    ew("group_mask.scatter", ROUTER, t * fields.topk_groups, 2 * FP32, "binary"),
                    ew("score_mask", ROUTER, t * n, 2 * FP32, "copy"), ew("mask_bool", ROUTER, t * n, FP32 + 1, "cast"),
                    ew("mask_not", ROUTER, t * n, 2, "unary"), ew("masked_fill", ROUTER, t * n, 2 * FP32 + 1, "binary")]
        return ops + [ew("topk", ROUTER, t * n, FP32, "reduce"), ew("routed_scaling", ROUTER, t * k, 2 * FP32, "unary")]

    def mla_rotary_ops(self, t: int, heads: int, rope: int, e: int) -> list[Op]:
        """apply_rotary_emb on q_pe and k_pe: .float() (a copy of the strided slice unless already
        float32), view_as_complex, a complex64 multiply by the table broadcast over heads,
        view_as_real, .type_as back (views cost no kernel)."""
        ops: list[Op] = []
        for name, n in (("q_rotary", t * heads * rope), ("k_rotary", t * rope)):
            if e != FP32:
                ops.append(ew(f"{name}.to_fp32", "rotary", n, e + FP32, "cast"))
            ops.append(ew(f"{name}.complex_mul", "rotary", n // 2, 3 * 2 * FP32, "broadcast"))
            if e != FP32:
                ops.append(ew(f"{name}.to_dtype", "rotary", n, FP32 + e, "cast"))
        return ops

    def pre_layer_ops(self, spec: ModelSpec, seq: int, e: int) -> list[Op]:
        """DeepseekV2RotaryEmbedding.forward: positions to float, the outer product with inv_freq,
        ones_like, torch.polar (a complex64 table of seq x qk_rope_head_dim / 2), x attention_scaling."""
        n = seq * _f(spec).latent.qk_rope_head_dim // 2
        return [ew("rope_table.positions", "embeddings", seq, 8 + FP32, "cast"),
                ew("rope_table.freqs", "embeddings", n, 2 * FP32, "broadcast"),
                ew("rope_table.ones", "embeddings", n, FP32, "unary"),
                ew("rope_table.polar", "embeddings", n, 4 * FP32, "binary"),
                ew("rope_table.scale", "embeddings", n, 4 * FP32, "unary")]


# views, module calls: counted on the CPU with transformers 5.24 (tests/test_host_model.py, seeded:
# 50.2 / 20.2; no GPU count yet): two module calls fewer than deepseek_v3's tiny model, whose q
# has no LoRA here (q_proj for q_a_proj + q_a_layernorm + q_b_proj)
DEEPSEEK_V2 = DeepseekV2((50.2, 20.2),
                         dict(_TINY_MOE, num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=8,
                              qk_nope_head_dim=16, v_head_dim=16, topk_method="group_limited_greedy"))
