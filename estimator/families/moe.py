"""Mixture-of-experts: Mixtral (mistralai/Mixtral-8x*) and Qwen3-MoE (Qwen/Qwen3-30B-A3B).

Attention is Mistral's (Mixtral) or Qwen3's (q/k RMSNorms over head_dim before rotary); the MLP
is a router and transformers' EAGER expert loop (modeling_mixtral.py / modeling_qwen3_moe.py,
``experts_implementation="eager"``; transformers 5.x defaults to "grouped_mm", so the benchmark
must ask for eager to run what is modelled here):

    router: linear (T x E), softmax in float32, topk, (normalise: sum, div), cast
    zeros_like(out); one_hot(top_k_index, E + 1); sum; greater; nonzero   <- host sync
    for each expert that received tokens:
        == num_experts (a bool on the host: sync); torch.where(mask[e]) (nonzero: sync)
        hidden[token_idx] (index); linear gate_up (T_e x 2f x h); silu; mul; linear down
        weights[token_idx, pos] (index); mul; (Mixtral: cast of the float32 product)
        out.index_add_(token_idx, ...)

Each expert hit waits for the GPU twice, so the loop does not overlap host and GPU: its kernels
are marked "sync" (blocking). The GEMMs run at the routed token counts T_e. ROUTING ASSUMED:
near uniform, T x top_k / E tokens per expert, every expert hit while T x top_k >> E (expected
hits E (1 - (1 - k/E)^T)). That is what random weights give and what the benchmark measures;
trained routers are skewed, which changes the per-expert GEMM shapes (not the FLOPs).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..config_fields import divisible, optional_bool, optional_size, optional_text, size
from ..errors import EstimatorError
from ..layer_config import every_layer_sliding, sparse_mlp_kinds
from ..layers import EXPERTS, LayerSpec, PLAIN
from ..module_tree import Node, decoder_layers, leaf
from ..op_builders import FP32, Op, ew, gemm, rms_norm, rotary
from ..spec import FamilyFields
from .base import Family, dense_mlp, llama_linears, qkv_projections
from .moe_experts import DEFAULT, IMPLEMENTATIONS, batched_ops, grouped_ops, live_per_token
from .llama import LLAMA

if TYPE_CHECKING:
    from ..spec import ModelSpec

MLP = "mlp"
ROUTER = "router"
INDEX_BYTES = 8   # int64 token indices and the one-hot expert mask
EXPERT_KEYS = {"num_local_experts": "num_experts", "num_experts": "num_local_experts"}


@dataclass(frozen=True)
class MoEFields(FamilyFields):
    experts: int        # experts per layer
    top_k: int          # experts each token is routed to
    norm_topk: bool     # the top-k weights renormalised to sum 1
    experts_impl: str = DEFAULT   # transformers' experts_implementation (families/moe_experts.py)


def _fields(spec: ModelSpec) -> MoEFields:
    return spec.fields_of(MoEFields)


def routing_note(spec: ModelSpec, tokens: int) -> str:
    """The routing an estimate of `tokens` tokens assumes, in one line."""
    f = _fields(spec)
    e, k = f.experts, f.top_k
    hits, per = expert_hits(e, k, tokens)
    return (f"MoE routing assumed near uniform (random weights, as the benchmark measures): {tokens} tokens x "
            f"top-{k} over {e} experts = {per:.0f} tokens on each of {hits} experts hit; trained routers are skewed")


def expert_hits(experts: int, top_k: int, tokens: int) -> tuple[int, float]:
    """(experts that receive tokens, tokens each) under uniform routing of `tokens` tokens."""
    hits = max(1, min(experts, round(experts * (1.0 - (1.0 - top_k / experts) ** tokens))))
    return hits, tokens * top_k / hits


def sync_op(name: str, elems: float, nbytes_per: float) -> Op:
    """A small kernel whose result the host reads (nonzero, bool of a tensor): blocks the host."""
    return Op(name, ROUTER, "sync", float(elems), float(elems * nbytes_per), pattern="reduce")


FP8_MOE = ("mixtral", "qwen3_moe")   # MoE families whose FP8 modules the tests check (fp8.py)


def experts_linears(spec: ModelSpec, f: int, path: str = "mlp.experts") -> list[tuple[str, int, int, int, int, bool]]:
    """An experts module as FP8Experts stores it: gate_up_proj (2f x h, at least 2 scale rows)
    and down_proj (h x f), one of each per expert."""
    n = spec.fields_of(MoEFields).experts
    return [(path, 2 * f, spec.hidden, n, 2, False), (path, spec.hidden, f, n, 1, False)]


class MoE(Family):
    """Mixtral (`qk_norm` False) and Qwen3-MoE (True): the same expert loop."""

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        """q, k, v, o and the experts module with its two 3-D weights (+ Qwen3-MoE's q/k norms)."""
        return 9 if self.qk_norm else 7

    def __init__(self, name: str, model_type: str, experts_key: str, ffn_key: str, qk_norm: bool) -> None:
        self.name, self.model_types, self.qk_norm = name, (model_type,), qk_norm
        self.experts_key = experts_key
        self.aliases = dict(hidden="hidden_size", layers="num_hidden_layers", heads="num_attention_heads",
                            ffn=ffn_key, vocab="vocab_size", max_positions="max_position_embeddings")
        self.host_extras = (40.2, 16.2 if qk_norm else 14.2)   # views, module calls (base.py)
        self.tiny_config = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                                max_position_embeddings=128, intermediate_size=128, num_experts_per_tok=2,
                                experts_implementation="eager",   # the loop modelled here, not grouped_mm
                                **{experts_key: 4}, **({"moe_intermediate_size": 32, "head_dim": 16} if qk_norm else {}))

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        heads = a["heads"]
        kv = optional_size(cfg, "num_key_value_heads", 8 if not self.qk_norm else 4)
        divisible("num_attention_heads", heads, "num_key_value_heads", kv)
        # transformers 5.x maps num_experts <-> num_local_experts (attribute_map): accept either
        key = self.experts_key if cfg.get(self.experts_key) is not None else EXPERT_KEYS[self.experts_key]
        experts = size(cfg, key)
        top_k = optional_size(cfg, "num_experts_per_tok", 2 if not self.qk_norm else 8)
        if top_k > experts:
            raise EstimatorError(f"num_experts_per_tok {top_k} exceeds {key} {experts}")
        head_dim = optional_size(cfg, "head_dim", None)
        if head_dim is None:
            divisible("hidden_size", a["hidden"], "num_attention_heads", heads)
            head_dim = a["hidden"] // heads
        bias = optional_bool(cfg, "attention_bias", False) if self.qk_norm else False
        fields = MoEFields(experts=experts, top_k=top_k,
                           norm_topk=optional_bool(cfg, "norm_topk_prob", False) if self.qk_norm else True)
        return dict(kv_heads=kv, head_dim=head_dim, qkv_bias=bias, out_bias=bias, mlp_bias=False, gated_mlp=True,
                    norm="rmsnorm", activation=optional_text(cfg, "hidden_act", "silu"),
                    tied_embeddings=optional_bool(cfg, "tie_word_embeddings", False), family_fields=fields)

    def default_attention(self, cfg: dict, model_type: str, layers: int) -> list[str]:
        # Mixtral: sliding_window on every layer; Qwen3-MoE: only with use_sliding_window
        if self.qk_norm and not optional_bool(cfg, "use_sliding_window", False):
            return ["full"] * layers
        return every_layer_sliding(cfg, layers)

    def layer_mlps(self, cfg: dict, layers: int) -> list:
        # Qwen3-MoE: dense layers in mlp_only_layers and off the decoder_sparse_step
        return sparse_mlp_kinds(cfg, layers, "intermediate_size") if self.qk_norm else [EXPERTS] * layers

    def estimate_notes(self, spec: ModelSpec, tokens: int) -> list[str]:
        return [f"experts priced as transformers' experts_implementation={_fields(spec).experts_impl!r}",
                routing_note(spec, tokens)]

    def with_experts(self, spec: ModelSpec, impl: str | None) -> ModelSpec:
        impl = impl or DEFAULT
        if impl not in IMPLEMENTATIONS:
            raise EstimatorError(f"unknown experts implementation {impl!r}: use one of {', '.join(IMPLEMENTATIONS)}")
        fields = _fields(spec)
        return spec if fields.experts_impl == impl else replace(spec, family_fields=replace(fields, experts_impl=impl))

    def experts_implementation(self, spec: ModelSpec) -> str | None:
        return _fields(spec).experts_impl

    def decode_spec(self, spec: ModelSpec, cuda: bool) -> ModelSpec:
        """generate's decode steps: grouped_mm becomes batched_mm on a GPU
        (GenerationMixin._optimize_model_for_decode)."""
        return self.with_experts(spec, "batched_mm") if cuda and _fields(spec).experts_impl == "grouped_mm" else spec

    def host_keys(self, spec: ModelSpec) -> tuple[str, str]:
        """Host calibration times the eager loop (tiny_config); another implementation has keys
        of its own ("mixtral/grouped_mm"), so where none is measured it gets the op-level host
        model's time (host_model.py), not the eager loop's."""
        impl = _fields(spec).experts_impl
        if impl == "eager":
            return spec.model_type, spec.family
        return f"{spec.model_type}/{impl}", f"{spec.family}/{impl}"

    def mlp_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        if layer.mlp.kind == "dense":   # Qwen3-MoE's mlp_only_layers: a Qwen3MoeMLP of its own width
            return spec.dense_mlp_params(layer.mlp.ffn)
        e = _fields(spec).experts
        return e * spec.hidden + e * 3 * spec.hidden * spec.ffn   # router + gate_up/down of every expert

    def extra_layer_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        return 2 * spec.head_dim if self.qk_norm else 0

    def fp8_linears(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> list[tuple[str, int, int, int, int, bool]] | None:
        """q/k/v/o and the mlp.experts module (FP8Experts: gate_up E x 2f x h, down E x h x f) or a
        dense layer's MLP; Mixtral and Qwen3-MoE only (the other MoE families: not checked)."""
        if self.name not in FP8_MOE:
            return None
        if layer.mlp.kind == "dense":
            return llama_linears(spec, layer)
        return llama_linears(spec, layer, mlp=False) + experts_linears(spec, spec.layer_ffn(layer))

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        ops = qkv_projections(spec, t, qd, kvd, e)
        if self.qk_norm:
            d = spec.head_dim
            ops += rms_norm("q_norm", "norms", t * qd // d, d, e) + rms_norm("k_norm", "norms", t * kvd // d, d, e)
        return ops + rotary("q_rotary", t, qd, e) + rotary("k_rotary", t, kvd, e)

    def pre_layer_ops(self, spec: ModelSpec, seq: int, e: int) -> list[Op]:
        return LLAMA.pre_layer_ops(spec, seq, e)

    def mlp_ops(self, spec: ModelSpec, t: int, f: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        if layer.mlp.kind == "dense":
            return dense_mlp(spec, t, f, e)
        fields = _fields(spec)
        h, n, k = spec.hidden, fields.experts, fields.top_k
        ops = [gemm("router", ROUTER, t, n, h, e)]
        if not self.qk_norm and e != FP32:
            ops.append(ew("router_to_fp32", ROUTER, t * n, e + FP32, "cast"))
        ops += [ew("router_softmax", ROUTER, t * n, e + FP32, "unary"), ew("topk", ROUTER, t * n, FP32, "reduce")]
        if fields.norm_topk:
            ops += [ew("topk_sum", ROUTER, t * k, FP32, "reduce"), ew("topk_div", ROUTER, t * k, 3 * FP32, "broadcast")]
        if self.qk_norm and e != FP32:
            ops.append(ew("weights_to_dtype", ROUTER, t * k, FP32 + e, "cast"))
        w = e if self.qk_norm else FP32   # Mixtral's routing weights stay float32
        if fields.experts_impl == "grouped_mm":
            return ops + grouped_ops(h, f, n, k, t, e, w)
        if fields.experts_impl == "batched_mm":
            return ops + batched_ops(h, f, n, k, t, e, w)
        return ops + self.eager_experts(spec, t, f, e, w)

    def eager_experts(self, spec: ModelSpec, t: int, f: int, e: int, w: int) -> list[Op]:
        """The eager expert loop after the router, routing weights of `w` bytes."""
        fields = _fields(spec)
        h, n, k = spec.hidden, fields.experts, fields.top_k
        mask = t * k * (n + 1)
        ops = [ew("out_zeros", MLP, t * h, e, "unary"), ew("one_hot.zeros", ROUTER, mask, INDEX_BYTES, "unary"),
                ew("one_hot.scatter", ROUTER, t * k, 2 * INDEX_BYTES, "binary"),
                ew("mask_sum", ROUTER, mask, INDEX_BYTES, "reduce"), ew("hit_greater", ROUTER, n + 1, 2 * INDEX_BYTES, "unary"),
                sync_op("hit_nonzero", n + 1, INDEX_BYTES)]
        hits, per = expert_hits(n, k, t)
        rows = max(1, round(per))
        expert = [sync_op("is_padding_expert", 1, 2 * INDEX_BYTES), sync_op("where_nonzero", t * k, INDEX_BYTES),
                  ew("gather_tokens", MLP, rows * h, 2 * e, "strided"), gemm("expert_gate_up", MLP, rows, 2 * f, h, e),
                  ew("act", MLP, rows * f, 2 * e, "strided"), ew("gate_mul", MLP, rows * f, 3 * e),
                  gemm("expert_down", MLP, rows, h, f, e), ew("gather_weights", ROUTER, rows, 2 * w, "strided"),
                  ew("weight_mul", MLP, rows * h, 2 * e + w, "broadcast")]
        if w != e:
            expert.append(ew("to_dtype", MLP, rows * h, w + e, "cast"))
        expert.append(ew("index_add", MLP, rows * h, 3 * e, "strided"))
        return ops + expert * hits

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        # attention as Llama's (+ q/k norm outputs) | output buffer, router logits and float32
        # probabilities, the one-hot mask (int64, top_k x (E + 1) per token), one expert's
        # gathered rows, gate_up, act, product and down output at its routed share of the tokens
        fields = _fields(spec)
        n, k = fields.experts, fields.top_k
        share = k / n
        router = n * (1 + FP32 // 2) + k * (n + 1) * INDEX_BYTES // 2
        attn = 4 * qd + 2 * kvd + (qd + kvd if self.qk_norm else 0)
        if fields.experts_impl != "eager":
            w = 2 if self.qk_norm else FP32
            return attn, spec.hidden + n * (1 + FP32 // 2) + live_per_token(fields.experts_impl, spec.hidden, f, k, 2, w)
        return attn, spec.hidden + router + round(share * (2 * spec.hidden + 4 * f))

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        p = "model."
        rotary_bytes = 2 * ((spec.head_dim + 1) // 2) * min(d, 4)
        # q k v o, router (gate), experts (one module, two 3-D parameters), two norms (+ q/k norms)
        return Node("model", children=[
            leaf(p + "embed_tokens", spec.vocab * spec.hidden * d, "embed"),
            decoder_layers(p + "layers", spec.layers, layer_bytes, 10 if self.qk_norm else 8),
            leaf(p + "norm", spec.norm_params() * d, "norm"),
            Node(p + "rotary_emb", rotary_bytes, 0, None, "rotary", 1)])


MIXTRAL = MoE("mixtral", "mixtral", "num_local_experts", "intermediate_size", qk_norm=False)
QWEN3_MOE = MoE("qwen3_moe", "qwen3_moe", "num_experts", "moe_intermediate_size", qk_norm=True)
