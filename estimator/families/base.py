"""Family: everything the estimator knows of one family of eager transformers models.

A family is one piece of modeling code in transformers (OPT, GPT-2, Llama and the model types
that share Llama's decoder layer). The generic modules ask it what differs between families
(spec.FamilyHooks lists the hooks and who asks):

- model.py:     ``aliases`` and ``spec_fields`` read a config.json into a ModelSpec, with the
                family's own facts in a frozen FamilyFields subclass (``spec.family_fields``),
                and ``layer_kinds`` its list of layers (``spec.layer_kinds``, layers.py);
- spec.py:      parameter counts of the MLP, extra norms and the embeddings;
- ops.py:       ``qkv_ops`` and ``pre_layer_ops`` add the family's own kernels; the hooks after
                them (norm, attention, MLP, embedding and head kernels) default to Llama's;
- memory.py:    ``layer_live_per_token`` and ``position_rows`` count its live activations;
- placement.py: ``module_tree`` is the module tree accelerate walks for a device map;
- schedule.py:  ``tp_sharded_linears`` and ``rotary_copy_dim``;
- calibration:  ``tiny_config`` is the tiny random model host overhead is measured on, the
                ``hf_*`` names say where its modules are.

Adding a family: a module here with a subclass of Family, registered in ``families/__init__.py``,
and its tests (parameter counts, kernels and placement against transformers and accelerate).
Family modules import only leaf modules (spec, op_builders, module_tree, config_fields, errors,
layers, layer_config).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..layer_config import attention_kinds, layer_specs
from ..kv_cache import attended_tokens
from ..layers import DENSE, PLAIN, local_span, masked_attention
from ..module_tree import Node, decoder_layers, leaf
from ..op_builders import (ATTENTION_PROJECTIONS, FP32, activation, decode_attention, ew, gemm, layer_norm, repeat_kv,
                           rms_norm, sdpa, sdpa_masked, sdpa_math)

if TYPE_CHECKING:
    from ..layers import LayerSpec
    from ..op_builders import Op
    from ..spec import ModelSpec


def qkv_projections(spec: ModelSpec, t: int, qd: int, kvd: int, e: int) -> list[Op]:
    """Separate q, k and v projections of the normed input (q/kv widths `qd`, `kvd` of one shard)."""
    g, h, bias = ATTENTION_PROJECTIONS, spec.hidden, spec.qkv_bias
    return [gemm("q_proj", g, t, qd, h, e, bias), gemm("k_proj", g, t, kvd, h, e, bias),
            gemm("v_proj", g, t, kvd, h, e, bias)]


def dense_mlp(spec: ModelSpec, t: int, f: int, e: int) -> list[Op]:
    """gate/act/up/mul/down (gated) or fc1/act/fc2 over `t` tokens, FFN width `f` of one shard."""
    h, mlp = spec.hidden, "mlp"
    if spec.gated_mlp:
        ops = [gemm("gate_proj", mlp, t, f, h, e, spec.mlp_bias)] + activation("act", mlp, t * f, e, spec.activation)
        ops += [gemm("up_proj", mlp, t, f, h, e, spec.mlp_bias), ew("gate_mul", mlp, t * f, 3 * e)]
    else:
        ops = [gemm("fc1", mlp, t, f, h, e, spec.mlp_bias)] + activation("act", mlp, t * f, e, spec.activation)
    return ops + [gemm("down_proj", mlp, t, h, f, e, spec.mlp_bias)]


def llama_linears(spec: ModelSpec, layer: LayerSpec, attention: bool = True,
                  mlp: bool = True) -> list[tuple[str, int, int, int, int, bool]]:
    """The nn.Linear weights of a Llama-style layer for Family.fp8_linears: self_attn q/k/v/o and
    a dense gated MLP (mlp.gate_proj / up_proj / down_proj of the layer's FFN width)."""
    h, q, kv, f = spec.hidden, spec.q_dim, spec.kv_dim, spec.layer_ffn(layer)
    qkv, o, b = spec.qkv_bias, spec.out_bias, spec.mlp_bias
    out: list[tuple[str, int, int, int, int, bool]] = []
    if attention:
        out += [("self_attn.q_proj", q, h, 0, 1, qkv), ("self_attn.k_proj", kv, h, 0, 1, qkv),
                ("self_attn.v_proj", kv, h, 0, 1, qkv), ("self_attn.o_proj", h, q, 0, 1, o)]
    if mlp:
        out += [("mlp.gate_proj", f, h, 0, 1, b), ("mlp.up_proj", f, h, 0, 1, b), ("mlp.down_proj", h, f, 0, 1, b)]
    return out


def learned_position_ops(t: int, h: int, e: int) -> list[Op]:
    """A learned position table (OPT, GPT-2): its lookup and the add to the token embeddings."""
    return [ew("embed_positions", "embeddings", t * h, 2 * e), ew("add_positions", "embeddings", t * h, 3 * e)]


def plain_tree(spec: ModelSpec, d: int, layer_bytes: int, leaves: int) -> Node:
    """model.embed_tokens, `leaves` leaf modules per decoder layer, model.norm and a rotary_emb with
    inv_freq and original_inv_freq: the base model of gpt-oss and Llama 4 as accelerate walks it."""
    p = "model."
    rotary_bytes = 2 * ((spec.head_dim + 1) // 2) * min(d, 4)
    return Node("model", children=[
        leaf(p + "embed_tokens", spec.vocab * spec.hidden * d, "embed"),
        decoder_layers(p + "layers", spec.layers, layer_bytes, leaves),
        leaf(p + "norm", spec.norm_params() * d, "norm"),
        Node(p + "rotary_emb", rotary_bytes, 0, None, "rotary", 1)])


class Family:
    name: str = ""                    # the ModelSpec.family value
    model_types: tuple[str, ...] = ()  # HF model_type values this code serves, the reference first
    aliases: dict[str, str] = {}      # our name -> HF config field (positive integers, read in order)
    tiny_config: dict[str, Any] = {}  # kwargs of a tiny random config, all but the layer count
    # (views, module calls) one decoder layer makes beside its kernels: operations the host pays
    # for that launch nothing (host_model.py). Counted with a TorchDispatchMode and forward
    # pre-hooks on transformers 5.17's tiny models on an H200 (reports/probes/h200-2026-12-03/
    # probe.json, "tiny" -> layer); tests/test_host_model.py counts them again on the CPU.
    host_extras: tuple[float, float] = (16.0, 13.0)   # the Llama layer
    # module_tree kinds the hidden state passes through, in forward order, between the token
    # embedding and the first layer / between the final norm and the LM head (placement.py)
    hidden_path_in: tuple[str, ...] = ()
    hidden_path_out: tuple[str, ...] = ()
    # the transformers model, for calibration's two-GPU device map (calibrate/host.py): the base
    # model's attribute holding the decoder's modules ("" when they are its children), the token
    # embedding's name, and modules beyond those named "*emb*" that go with the input
    hf_decoder_attr: str = ""
    hf_token_embedding: str = "embed_tokens"
    hf_input_modules: tuple[str, ...] = ()
    default_window: int | None = None   # transformers' sliding_window when the config has none
    # whether transformers ships a tensor-parallel plan (base_model_tp_plan) for the config class:
    # without one, from_pretrained(tp_plan="auto") refuses the model and a tensor-parallel
    # estimate is of a sharding transformers cannot run as is (api.py notes it)
    has_tp_plan: bool = True
    # quantization_config quant_methods transformers dequantizes to the model's dtype on load
    # (gpt-oss's mxfp4 without the triton kernels): priced as unquantized weights
    dequantized_methods: tuple[str, ...] = ()
    # whether host calibration times the family's tiny model (HOST_MODEL_TYPES); off, its host
    # time comes from the op-level host model (host_model.py) with its host_extras
    host_timed: bool = True
    # layers.FEATURES this family's hooks price (chunked attention, sinks, NoPE, shared experts)
    priced_features: tuple[str, ...] = ()

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]:
        """ModelSpec fields beyond the aliased ones `a`, with transformers' defaults for absent
        config fields (the family's own facts under ``family_fields``); raises EstimatorError
        for a variant the estimator does not model."""
        raise NotImplementedError

    def layer_kinds(self, cfg: dict, model_type: str, layers: int) -> tuple[LayerSpec, ...]:
        """One LayerSpec per decoder layer, as the family's config class derives them: by default
        ``layer_types`` when the config has it, else `default_attention`'s kinds, MLPs `layer_mlps`."""
        return layer_specs(attention_kinds(cfg, layers, self.default_attention(cfg, model_type, layers),
                                           self.default_window),
                           self.layer_mlps(cfg, layers))

    def default_attention(self, cfg: dict, model_type: str, layers: int) -> list[str]:
        """Attention kind of each layer when the config has no ``layer_types`` (full attention)."""
        return ["full"] * layers

    def layer_mlps(self, cfg: dict, layers: int) -> list:
        """MLP of each layer (layers.Mlp; dense)."""
        return [DENSE] * layers

    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        """Kernels from the normed layer input to the q, k, v that enter the cache and attention
        in a layer of kind `layer`."""
        raise NotImplementedError

    def pre_layer_ops(self, spec: ModelSpec, seq: int, e: int) -> list[Op]:
        """Kernels the family adds before the first layer, after the embeddings."""
        return []

    # ---- hooks whose defaults are the Llama / OPT / GPT-2 layer (override where the code differs)
    def mlp_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        """Parameters of the MLP of a layer of kind `layer` (a mixture-of-experts block counts
        router and experts; a dense one is its own ffn wide)."""
        return spec.dense_mlp_params(layer.mlp.ffn)

    def extra_layer_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int:
        """Parameters of a layer beyond q/k/v/o, the MLP and two norms (more norms, q/k norms)."""
        return 0

    def fp8_linears(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> list[tuple[str, int, int, int, int, bool]] | None:
        """The weights FP8 quantization converts in a layer of kind `layer` (fp8.py): (module path
        in the layer, out, in, experts (0: an nn.Linear), least scale rows, bias), one per
        nn.Linear and two per experts module (gate_up, down); None: FP8 weights not modelled for
        the family."""
        return None

    def embed_dim(self, spec: ModelSpec) -> int:
        """Width of the token embedding table and of the LM head's input (OPT: word_embed_proj_dim)."""
        return spec.hidden

    def embedding_params(self, spec: ModelSpec) -> int:
        """Parameters of the embeddings: the token table (OPT, GPT-2: and learned positions)."""
        return spec.vocab * spec.hidden

    def norm_ops(self, spec: ModelSpec, name: str, group: str, t: int, h: int, e: int) -> list[Op]:
        """One norm over `t` rows of `h`: LayerNorm's one kernel or LlamaRMSNorm's eight."""
        return (layer_norm if spec.norm == "layernorm" else rms_norm)(name, group, t, h, e)

    def attention_ops(self, spec: ModelSpec, batch: int, seq: int, heads: int, kv: int, e: int,
                      cuda: bool = True, layer: LayerSpec = PLAIN, kv_len: int | None = None) -> list[Op]:
        """Attention from the cached q, k, v to the (batch, heads, seq, head_dim) output: SDPA's
        fused kernel, or on CUDA its math backend for float32 with grouped K/V heads (op_builders.sdpa_math;
        the CPU's flash kernel takes float32)."""
        d = spec.head_dim
        if masked_attention(layer, seq):   # a sliding window past its length: explicit mask, K/V repeated
            return repeat_kv("attention", batch, heads, kv, seq, d, e) + [
                sdpa_masked("attention", batch, heads, seq, seq, d, e)]
        if cuda and e == FP32 and kv < heads:
            return sdpa_math("attention", batch, heads, kv, seq, spec.head_dim, e)
        return [sdpa("attention", batch, heads, kv, seq, spec.head_dim, e)]

    def decode_attention_ops(self, spec: ModelSpec, layer: LayerSpec, one: list[Op], batch: int, kv_len: int,
                             e: int) -> list[Op]:
        """A decode step's attention in a layer of kind `layer` with `kv_len` tokens in the
        context after the update, from the one-token forward's attention kernels `one`: each SDPA
        becomes one query per head over the tokens the layer attends to (decode_attention)."""
        keys, d = attended_tokens(layer, kv_len), spec.head_dim
        if masked_attention(layer, keys):   # the mask is kept: repeat_kv copies the window, no GQA in SDPA
            return (repeat_kv("attention", batch, spec.heads, spec.kv_heads, keys, d, e)
                    + [decode_attention(batch, spec.heads, spec.heads, keys, d, e) if op.kind == "sdpa" else op
                       for op in one])
        return [decode_attention(batch, spec.heads, spec.kv_heads, keys, d, e) if op.kind == "sdpa"
                else op for op in one]

    def linear_attention_ops(self, spec: ModelSpec, layer: LayerSpec, batch: int, seq: int, e: int,
                             shards: int = 1, decode: bool = False) -> list[Op]:
        """The token mixer of a linear-attention layer (layers.py kind "linear") from the normed
        input to its output before the residual add, over `batch` x `seq` tokens; `decode`: a
        generate step of one token per sequence over the cached state (decode.py). Its kernels
        are named ``linear_attn.*``. Families without such layers never get here (priced_as)."""
        raise NotImplementedError(f"{self.name} has no linear-attention layers")

    def attention_out_dim(self, spec: ModelSpec, heads: int) -> int:
        """Width of the attention output of `heads` heads that o_proj reads (heads x head_dim)."""
        return heads * spec.head_dim

    def sublayer_output_ops(self, spec: ModelSpec, name: str, t: int, e: int) -> list[Op]:
        """Kernels on a sub-layer's output before its residual add (Gemma's post-norms)."""
        return []

    def logit_copies(self, spec: ModelSpec) -> int:
        """Logits-sized tensors alive at once at the LM head's peak (memory.py)."""
        return 1

    def mlp_ops(self, spec: ModelSpec, t: int, f: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]:
        """The MLP of a layer of kind `layer` from the normed input to its output (before the
        residual add); `f` is that layer's FFN width of one shard."""
        return dense_mlp(spec, t, f, e)

    def embedding_ops(self, spec: ModelSpec, batch: int, seq: int, e: int) -> list[Op]:
        """Kernels after the token embedding (learned positions, OPT's project_in; Gemma: the
        sqrt(hidden) scale, its eager masks)."""
        return []

    def head_input_ops(self, spec: ModelSpec, t: int, e: int) -> list[Op]:
        """Kernels between the final norm and the LM head (OPT's project_out)."""
        return []

    def head_ops(self, spec: ModelSpec, t: int, vocab: int, e: int) -> list[Op]:
        """Kernels on the logits after the LM head (Gemma 2's final soft-capping)."""
        return []

    def head_bias(self, spec: ModelSpec) -> bool:
        """Whether the LM head has a bias (PhiMoE's lm_head_bias)."""
        return False

    def has_final_norm(self, spec: ModelSpec) -> bool:
        """Whether the decoder norms its output after the last layer (OPT-350m's post-LN does not)."""
        return True

    def attention_live_bytes(self, spec: ModelSpec, batch: int, seq: int, heads: int, e: int) -> float:
        """Bytes alive at attention's busiest moment that grow with seq² (eager score matrices)."""
        return 0.0

    def mask_bytes(self, spec: ModelSpec, seq: Any) -> Any:
        """The boolean attention masks transformers builds for SDPA and keeps referenced through the
        layer loop (the decoder's mask mapping): one bool mask per local span (sliding window, chunk)
        that the prompt reaches (layers.masked_attention), the causal one skipped (is_causal); its
        storage is (1, 1, seq, seq), expanded over the batch. Counted on the CPU with transformers
        5.24 (tests/test_sliding_cache.py: one mask tensor shared by Gemma 3's and Mistral's sliding
        layers, by Llama 4's chunked ones, in forward and generate alike); on an
        H200, Mistral's and Gemma 3 1B's generate at 1 x 8192 had held 67 and 137 MB more than
        estimated without it. `seq` may be a numpy array (forward_many). Eager
        families count their float masks in attention_live_bytes instead."""
        total = 0.0
        for span in sorted({local_span(g.layer) for g in spec.layer_groups} - {None}):
            layer = next(g.layer for g in spec.layer_groups if local_span(g.layer) == span)
            if layer.attention.sinks:   # eager attention (gpt-oss): no SDPA mask
                continue
            if hasattr(seq, "ndim"):
                import numpy as np
                total = total + np.where(seq >= span, seq * seq * 1.0, 0.0)
            elif masked_attention(layer, seq):
                total += float(seq) * seq
        return total

    def estimate_notes(self, spec: ModelSpec, tokens: int) -> list[str]:
        """Assumptions an estimate of `tokens` tokens per GPU rests on (MoE: the routing)."""
        return []

    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]:
        """Live activation elements per token at the busiest moment of attention and of the MLP,
        beyond the layer's input and its normed copy (q/kv head dims and FFN width of one shard)."""
        raise NotImplementedError

    def position_rows(self, t: int, seq: int) -> int:
        """Rows of position embeddings the decoder keeps referenced while its layers run."""
        return 0

    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node:
        """The base model (without lm_head) as accelerate sees it, children in definition order,
        with `d`-byte weights and decoder layers of `layer_bytes` each."""
        raise NotImplementedError

    def tp_sharded_linears(self, spec: ModelSpec) -> int:
        """Linear modules of one decoder layer that tensor parallelism shards (each gets a hook:
        schedule.py prices their host time): q, k, v, o and gate, up, down (gated MLP) or fc1,
        fc2; families whose tp_plan hooks other modules override it (from transformers'
        base_model_tp_plan)."""
        return 7 if spec.gated_mlp else 6

    def rotary_copy_dim(self, spec: ModelSpec) -> int:
        """Last dimension of the rotary cos/sin that accelerate's hook copies to every layer on
        another GPU than rotary_emb (schedule.py). Today 128 for every family."""
        return 128

    def with_experts(self, spec: ModelSpec, impl: str | None) -> ModelSpec:
        """The spec priced with transformers' experts implementation `impl` (MoE families); the
        others have no experts and ignore it."""
        return spec

    def experts_implementation(self, spec: ModelSpec) -> str | None:
        """The experts implementation the spec is priced with (None: not an MoE family)."""
        return None

    def decode_spec(self, spec: ModelSpec, cuda: bool) -> ModelSpec:
        """The spec generate's decode steps run (MoE on a GPU: batched_mm instead of grouped_mm)."""
        return spec

    def host_keys(self, spec: ModelSpec) -> tuple[str, str]:
        """(model type, family) keys of the profile's host times for this spec."""
        return spec.model_type, spec.family

    def tiny_config_kwargs(self, model_type: str, layers: int) -> dict[str, Any]:
        """kwargs of ``transformers.AutoConfig.for_model`` for a tiny random model of `layers` layers."""
        return {"model_type": model_type, **self.tiny_config, self.aliases["layers"]: layers}
