"""ModelSpec: the generic architecture facts of one model, and FamilyHooks, what its family answers.

A leaf module below the families: they read configs into a ModelSpec and answer the hooks for
it, so both types live here and the families import them without importing model.py (which
reads config.json files through the family registry). Facts only one family has (OPT's
projection width, MoE experts, Gemma's soft-caps) are not fields here: each family keeps them in
its own frozen FamilyFields subclass, ``spec.family_fields``, read with ``spec.fields_of``.
Parameter counts follow the modules transformers builds from the same config.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from . import fp8 as fp8_weights
from .front_door import check_layer_count
from .layers import PLAIN, LayerGroup, LayerSpec, layer_groups, uniform

if TYPE_CHECKING:
    from .module_tree import Node
    from .op_builders import Op


@dataclass(frozen=True)
class FamilyFields:
    """A family's own facts of one model (subclassed per family); this base holds none."""


NO_FAMILY_FIELDS = FamilyFields()
F = TypeVar("F", bound=FamilyFields)


class FamilyHooks(Protocol):
    """What the generic modules ask of a family (families/base.py's Family answers each, with
    defaults that are the Llama layer; the docstrings there say what each one means):

    - model.py:     aliases, spec_fields, layer_kinds (a config.json into a ModelSpec);
    - spec.py:      mlp_params, extra_layer_params, embedding_params, embed_dim, has_final_norm, head_bias;
    - ops.py:       the *_ops hooks (kernels of one forward pass);
    - memory.py:    layer_live_per_token, attention_live_bytes, mask_bytes, logit_copies, position_rows;
    - placement.py: module_tree, hidden_path_in, hidden_path_out;
    - schedule.py:  tp_sharded_linears, rotary_copy_dim; api.py: estimate_notes, has_tp_plan;
    - calibration:  tiny_config_kwargs and the hf_* module names of the transformers model.
    """
    name: str
    model_types: tuple[str, ...]
    aliases: dict[str, str]
    hidden_path_in: tuple[str, ...]
    hidden_path_out: tuple[str, ...]
    hf_decoder_attr: str
    hf_token_embedding: str
    hf_input_modules: tuple[str, ...]
    has_tp_plan: bool

    def spec_fields(self, cfg: dict, model_type: str, a: dict[str, int]) -> dict[str, Any]: ...
    def layer_kinds(self, cfg: dict, model_type: str, layers: int) -> tuple[LayerSpec, ...]: ...
    def mlp_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int: ...
    def extra_layer_params(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> int: ...
    def fp8_linears(self, spec: ModelSpec, layer: LayerSpec = PLAIN) -> list[tuple[str, int, int, int, int, bool]] | None: ...
    def embedding_params(self, spec: ModelSpec) -> int: ...
    def embed_dim(self, spec: ModelSpec) -> int: ...
    def has_final_norm(self, spec: ModelSpec) -> bool: ...
    def head_bias(self, spec: ModelSpec) -> bool: ...
    def qkv_ops(self, spec: ModelSpec, t: int, qd: int, kvd: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]: ...
    def pre_layer_ops(self, spec: ModelSpec, seq: int, e: int) -> list[Op]: ...
    def norm_ops(self, spec: ModelSpec, name: str, group: str, t: int, h: int, e: int) -> list[Op]: ...
    def attention_ops(self, spec: ModelSpec, batch: int, seq: int, heads: int, kv: int, e: int,
                      cuda: bool = True, layer: LayerSpec = PLAIN, kv_len: int | None = None) -> list[Op]: ...
    def decode_attention_ops(self, spec: ModelSpec, layer: LayerSpec, one: list[Op], batch: int, kv_len: int,
                             e: int) -> list[Op]: ...
    def linear_attention_ops(self, spec: ModelSpec, layer: LayerSpec, batch: int, seq: int, e: int,
                             shards: int = 1, decode: bool = False) -> list[Op]: ...
    def attention_out_dim(self, spec: ModelSpec, heads: int) -> int: ...
    def sublayer_output_ops(self, spec: ModelSpec, name: str, t: int, e: int) -> list[Op]: ...
    def mlp_ops(self, spec: ModelSpec, t: int, f: int, e: int, layer: LayerSpec = PLAIN) -> list[Op]: ...
    def embedding_ops(self, spec: ModelSpec, batch: int, seq: int, e: int) -> list[Op]: ...
    def head_input_ops(self, spec: ModelSpec, t: int, e: int) -> list[Op]: ...
    def head_ops(self, spec: ModelSpec, t: int, vocab: int, e: int) -> list[Op]: ...
    def logit_copies(self, spec: ModelSpec) -> int: ...
    def attention_live_bytes(self, spec: ModelSpec, batch: int, seq: int, heads: int, e: int) -> float: ...
    def layer_live_per_token(self, spec: ModelSpec, qd: int, kvd: int, f: int) -> tuple[int, int]: ...
    def position_rows(self, t: int, seq: int) -> int: ...
    def module_tree(self, spec: ModelSpec, d: int, layer_bytes: int) -> Node: ...
    def tp_sharded_linears(self, spec: ModelSpec) -> int: ...
    def rotary_copy_dim(self, spec: ModelSpec) -> int: ...
    def estimate_notes(self, spec: ModelSpec, tokens: int) -> list[str]: ...
    def tiny_config_kwargs(self, model_type: str, layers: int) -> dict[str, Any]: ...
    def with_experts(self, spec: ModelSpec, impl: str | None) -> ModelSpec: ...
    def experts_implementation(self, spec: ModelSpec) -> str | None: ...
    def decode_spec(self, spec: ModelSpec, cuda: bool) -> ModelSpec: ...
    def host_keys(self, spec: ModelSpec) -> tuple[str, str]: ...


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_type: str          # HF model_type (opt, gpt2, llama, mistral, qwen2)
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    max_positions: int
    tied_embeddings: bool
    qkv_bias: bool
    out_bias: bool
    mlp_bias: bool
    gated_mlp: bool
    norm: str                # layernorm | rmsnorm
    activation: str
    dtype: str | None        # the config's torch_dtype, if any
    use_cache: bool          # model(input_ids) keeps K/V of every layer when true
    # the family's knowledge of its eager code (kernels, working sets, module tree): a
    # registered family object, hashed by identity, so a spec stays a cache key
    arch: FamilyHooks = field(repr=False)
    family_fields: FamilyFields = NO_FAMILY_FIELDS   # the family's own facts, typed per family
    config_dtype: str | None = None   # the config's torch_dtype when none priced (float8_e4m3fn, int8, ...)
    # one LayerSpec per decoder layer (layers.py), read by the family; empty: `layers` full
    # attention, dense layers
    layer_kinds: tuple[LayerSpec, ...] = ()
    # FP8 weights of a quantization_config quant_method "fp8" (fp8.py); None: every weight in the dtype
    fp8: fp8_weights.Fp8Weights | None = None

    def __post_init__(self) -> None:
        check_layer_count(self.name, self.layers)   # before one LayerSpec per layer is built
        if not self.layer_kinds:
            object.__setattr__(self, "layer_kinds", uniform(self.layers))
        elif len(self.layer_kinds) != self.layers:
            raise ValueError(f"{self.name}: {len(self.layer_kinds)} layer kinds for {self.layers} layers")

    def __hash__(self) -> int:
        """The fields' hash, computed once per spec: a spec keys the per-model memos of every
        estimate (forward_ops, placements, weight bytes), and hashing its fields walks one
        LayerSpec per layer (~10 % of a new estimate when recomputed at each lookup)."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash(tuple(getattr(self, f.name) for f in fields(self) if f.compare))
            object.__setattr__(self, "_hash", h)
        return h

    @cached_property
    def layer_groups(self) -> tuple[LayerGroup, ...]:
        """Runs of consecutive layers priced alike (layers.layer_groups); EstimatorError for
        layer kinds not modelled yet."""
        return layer_groups(self.layer_kinds, getattr(self.arch, "priced_features", ()))

    @property
    def family(self) -> str:
        """The estimator.families entry of its code (opt | gpt2 | llama ...)."""
        return self.arch.name

    def fields_of(self, kind: type[F]) -> F:
        """`family_fields` as the family's own type `kind` (a TypeError for a spec of another family)."""
        fields = self.family_fields
        if not isinstance(fields, kind):
            raise TypeError(f"{self.name} ({self.family}) has {type(fields).__name__}, not {kind.__name__}")
        return fields

    # ---- parameter counts (elements), as transformers builds the modules -------------------
    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_params(self, layer: LayerSpec | None = None) -> int:
        """Parameters of one decoder layer of kind `layer` (None: the first layer)."""
        layer = self.layer_kinds[0] if layer is None else layer
        return self.attention_params(layer) + self.arch.mlp_params(self, layer) + 2 * self.norm_params() \
            + self.arch.extra_layer_params(self, layer)

    def attention_params(self, layer: LayerSpec = PLAIN) -> int:
        """q, k, v, o projections with their biases (families with other projections, such as
        latent attention, count the difference in extra_layer_params)."""
        h = self.hidden
        attn = h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h
        return attn + (self.q_dim + 2 * self.kv_dim) * self.qkv_bias + h * self.out_bias

    def decoder_params(self) -> int:
        """Parameters of every decoder layer, summed layer kind by layer kind."""
        return sum(g.count * self.layer_params(g.layer) for g in self.layer_groups)

    def layer_params_each(self) -> tuple[int, ...]:
        """Parameters of each decoder layer, in order (accelerate's placement sizes them one by one)."""
        out: list[int] = []
        for g in self.layer_groups:
            out += [self.layer_params(g.layer)] * g.count
        return tuple(out)

    def layer_ffn(self, layer: LayerSpec) -> int:
        """The FFN width of `layer` (its own when the MLP says so, else the spec's)."""
        return layer.mlp.ffn or self.ffn

    def dense_mlp_params(self, ffn: int | None = None) -> int:
        """A dense MLP of width `ffn` (the spec's): gate/up/down (gated) or fc1/fc2, with their biases."""
        h, f = self.hidden, ffn or self.ffn
        mlp = (3 if self.gated_mlp else 2) * h * f
        return mlp + ((2 * f if self.gated_mlp else f) + h) * self.mlp_bias

    def norm_params(self) -> int:
        return self.hidden * (2 if self.norm == "layernorm" else 1)

    def embedding_params(self) -> int:
        """Token table and whatever else the family embeds with (learned positions, OPT's projections)."""
        return self.arch.embedding_params(self)

    def head_params(self) -> int:
        """Untied LM head weight (a tied head shares the token table) and its bias, if any."""
        return (0 if self.tied_embeddings else self.vocab * self.arch.embed_dim(self)) + self.vocab * self.arch.head_bias(self)

    def param_count(self) -> int:
        """Every parameter (a tied head once); memoized per spec: every estimate reports it, and
        counting walks the layer groups."""
        return _param_count(self)

    # ---- weight bytes: `d` bytes per parameter, FP8 linears at 1 byte plus their scales -------
    def layer_weight_bytes_each(self, d: int) -> tuple[int, ...]:
        """Bytes of each decoder layer's parameters, in order (FP8: its converted linears'
        weights and scales instead of `d`-byte weights; fp8.py)."""
        return _layer_weight_bytes_each(self, d)

    def head_weight_bytes(self, d: int) -> int:
        """Bytes of the untied LM head (FP8 only when the skip list does not name it)."""
        nbytes = self.head_params() * d
        if self.fp8 is not None and not self.tied_embeddings and fp8_weights.converted("lm_head", self.fp8.skip):
            v, k = self.vocab, self.arch.embed_dim(self)
            nbytes += fp8_weights.linear_bytes(self.fp8, v, k) - v * k * d
        return nbytes

    def weight_bytes(self, d: int) -> int:
        """Bytes of every parameter (a tied head once): param_count() x d without FP8 weights."""
        if self.fp8 is None:
            return self.param_count() * d
        rest = self.embedding_params() + self.norm_params() * self.arch.has_final_norm(self)
        return rest * d + sum(self.layer_weight_bytes_each(d)) + self.head_weight_bytes(d)


@lru_cache(maxsize=1024)
def _param_count(spec: ModelSpec) -> int:
    return (spec.embedding_params() + spec.decoder_params()
            + spec.norm_params() * spec.arch.has_final_norm(spec) + spec.head_params())


@lru_cache(maxsize=1024)
def _layer_weight_bytes_each(spec: ModelSpec, d: int) -> tuple[int, ...]:
    out: list[int] = []
    for g in spec.layer_groups:
        plain = spec.layer_params(g.layer) * d
        if spec.fp8 is None:
            out += [plain] * g.count
            continue
        linears = spec.arch.fp8_linears(spec, g.layer) or []
        for i in range(g.first, g.first + g.count):
            nbytes = plain
            for name, n, k, experts, rows, bias in linears:
                if fp8_weights.converted(f"model.layers.{i}.{name}", spec.fp8.skip):
                    nbytes += fp8_weights.linear_bytes(spec.fp8, n, k, experts, rows) - max(experts, 1) * n * k * d
                    nbytes += bias * n * (fp8_weights.BIAS_BYTES - d)   # FP8Linear's bias: float32
            out.append(nbytes)
    return tuple(out)
