"""Host time of eager PyTorch, priced per launched operation (issue 25).

Every kernel the estimator lists (ops.py, decode.py) is one dispatch the host pays for, at the
cost its class has on the machine (the profile's ``host_ops`` section, timed by
calibrate/host_ops.py: a linear's dispatch and cuBLAS launch, an elementwise, cast or reduction
kernel, a norm, SDPA, a cat / index / copy). Beside the kernels, each decoder layer makes module
calls and view operations that launch nothing (counted per family from transformers' own code:
``Family.host_extras``, checked against a TorchDispatchMode count of the real model in
tests/test_host_model.py). Their sum is the operations' own cost; what transformers' Python adds
around them (argument handling, attention-interface lookup, output objects) is one machine-wide
factor ``glue``, the median over the families whose tiny models the profile timed (host section)
of measured / priced. So:

    host per layer  = glue x (sum of its operations' costs)            (a family never timed)
    host per layer  = measured                                           (a family the profile timed)

A timed family's ratio measured / priced is its recorded correction: how far the op-level model
misses it (tests/test_host_model.py holds every family's, leaving each out in turn, to 15 %).
The part outside the layers (embeddings, masks, the head, model-level Python) of a family never
timed is the median of the timed families'.

Provenance of an estimate's host time (``HostPrice.source``): "measured" (the profile timed the
family), "op-model" (priced here), "scaled" (no host_ops section: the reference family's time
scaled by kernel counts, the old fallback), "none" (nothing to price it with: zero, and said so).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from .families import REGISTRY, family_named, family_of
from .model import ModelSpec
from .ops import Op, forward_ops
from .profile import GENERATE_SETUP_US, GENERATE_STEP_US, GenerateHost
from .profile_schema import HostTimes

if TYPE_CHECKING:
    from .profile import Profile

REFERENCE_FAMILY = "llama"   # the fallback's reference when a profile has no host_ops section
TINY_DTYPE_BYTES = 2         # host calibration runs its tiny models in float16 on a GPU
# operation class of each elementwise access pattern (op_builders.ew); others are "elementwise"
PATTERN_CLASS = {"cast": "cast", "reduce": "reduce", "strided_cat": "cat", "copy": "copy",
                 "transpose": "copy", "unary": "unary", "half_neg": "unary", "binary": "elementwise",
                 "broadcast": "elementwise", "strided": "elementwise"}
NORM_GROUPS = ("norms", "final norm")   # a fused layer norm is one unnamed-part kernel there
KIND_CLASS = {"gemm": "linear", "sdpa": "sdpa", "grouped_gemm": "linear", "sync": "sync"}
SOURCES = ("measured", "op-model", "scaled", "none")
# generate's host time may also rest on "forward" (the family's forward timed, generate's own
# per-step work the median of the families timed) or "fallback" (no generate timing at all)
GENERATE_SOURCES = SOURCES + ("forward", "fallback")


def _median(values):
    """statistics.median, imported on first use: statistics (with fractions and decimal) is a
    few milliseconds of a one-shot estimate that needs no median (issue 26)."""
    from statistics import median
    return median(values)


@dataclass(frozen=True)
class HostPrice:
    """Host time of a forward pass of one model: per decoder layer and the rest, and where it
    comes from (SOURCES)."""
    times: HostTimes
    source: str

    @property
    def fallback(self) -> bool:
        return self.source != "measured"


def op_class(op: Op) -> str:
    """The host-cost class of one listed kernel (calibrate/host_ops.py's names)."""
    cls = KIND_CLASS.get(op.kind)
    if cls:
        return cls
    if op.group in NORM_GROUPS and "." not in op.name:   # F.layer_norm; RMSNorm is listed part by part
        return "norm"
    if op.name.startswith("embed"):
        return "index"
    return PATTERN_CLASS.get(op.pattern, "elementwise")


def ops_us(ops, costs: dict[str, float]) -> float:
    """Sum of the host costs of `ops` (a class the profile lacks costs as "elementwise")."""
    fallback = costs.get("elementwise", 0.0)
    return sum(costs.get(op_class(op), fallback) for op in ops)


def layer_priced_us(spec: ModelSpec, layer_ops, costs: dict[str, float]) -> float:
    """One decoder layer's operations at the profile's costs: its kernels, and the module calls
    and views of the family's code (Family.host_extras)."""
    views, modules = spec.arch.host_extras
    return ops_us(layer_ops, costs) + views * costs.get("view", 0.0) + modules * costs.get("module", 0.0)


def _priced_per_layer(spec: ModelSpec, batch: int, seq: int, e: int, costs: dict[str, float]) -> float:
    ops = forward_ops(spec, batch, seq, e)
    total = sum(layer_priced_us(spec, g.ops, costs) * g.group.count for g in ops.layers)
    return total / spec.layers


@lru_cache(maxsize=64)
def _tiny_spec(model_type: str) -> ModelSpec:
    """The tiny model host calibration timed for `model_type`, as it ran it (an MoE's tiny model
    runs transformers' eager expert loop: the experts implementation its host keys name)."""
    fam = family_of(model_type)
    if fam is None:
        raise KeyError(model_type)
    spec = ModelSpec.from_hf_config(fam.tiny_config_kwargs(model_type, 2), name=f"tiny {model_type}")
    if spec.arch.host_keys(spec)[0] != model_type:
        spec = spec.arch.with_experts(spec, "eager")
    return spec


def corrections(prof: Profile) -> dict[str, float]:
    """Per timed model type: measured per-layer host time / the op-level price of its tiny model
    (the family's recorded correction; 1.0 would be a perfect op-level model)."""
    return prof.memoized_host(("host-corrections",), _corrections, prof)


def _corrections(prof: Profile) -> dict[str, float]:
    costs = prof.host_op_costs()
    out = {}
    if costs:
        for mt, t in prof.data.host.items():
            if mt not in REGISTRY or t.per_layer_us <= 0:
                continue
            try:
                priced = _priced_per_layer(_tiny_spec(mt), 1, 8, TINY_DTYPE_BYTES, costs)
            except Exception:   # noqa: BLE001 - a tiny config this estimator cannot read: no correction
                continue
            if priced > 0:
                out[mt] = t.per_layer_us / priced
    return out


def glue(prof: Profile, leave_out: tuple[str, ...] = ()) -> float | None:
    """The machine-wide factor on the operations' costs: the median correction over the timed
    model types (those in `leave_out` excluded); None when none was timed."""
    ratios = [r for mt, r in corrections(prof).items() if mt not in leave_out]
    return _median(ratios) if ratios else None


def _median_fixed(prof: Profile, leave_out: tuple[str, ...]) -> float:
    fixed = [t.fixed_us for mt, t in prof.data.host.items() if mt not in leave_out and t.fixed_us > 0]
    return _median(fixed) if fixed else 0.0


def predicted(prof: Profile, spec: ModelSpec, batch: int, seq: int, e: int,
              leave_out: tuple[str, ...] = ()) -> HostTimes | None:
    """The op-level host times of `spec` (None without host_ops costs or a timed family)."""
    costs = prof.host_op_costs()
    g = glue(prof, leave_out) if costs else None
    if g is None:
        return None
    return HostTimes(g * _priced_per_layer(spec, batch, seq, e, costs), _median_fixed(prof, leave_out))


def host_price(prof: Profile, spec: ModelSpec, batch: int, seq: int, e: int) -> HostPrice:
    """The host times of a forward pass of `spec`: measured where the profile timed its family,
    else the op-level model's, else the reference family's scaled by kernels, else none."""
    measured = prof.host_times(*spec.arch.host_keys(spec))
    if measured.per_layer_us or measured.fixed_us:
        return HostPrice(measured, "measured")
    model = predicted(prof, spec, batch, seq, e)
    if model is not None:
        return HostPrice(model, "op-model")
    ref = prof.host_times(REFERENCE_FAMILY, REFERENCE_FAMILY)
    if ref.per_layer_us or ref.fixed_us:
        ref_layer, ref_fixed = _reference_kernels(e)
        ops = forward_ops(spec, batch, seq, e)
        return HostPrice(HostTimes(ref.per_layer_us * ops.kernels_per_layer() / ref_layer,
                                   ref.fixed_us * (len(ops.pre) + len(ops.post)) / ref_fixed), "scaled")
    return HostPrice(HostTimes(0.0, 0.0), "none")


@lru_cache(maxsize=8)
def _reference_kernels(e: int) -> tuple[float, int]:
    """(kernels per layer, kernels outside the layers) of the reference family's tiny model."""
    fam = family_named(REFERENCE_FAMILY)
    spec = ModelSpec.from_hf_config(fam.tiny_config_kwargs(fam.model_types[0], 2), name="reference")
    ops = forward_ops(spec, 1, 8, e)
    return ops.kernels_per_layer(), len(ops.pre) + len(ops.post)


# the note of each fallback source ({what}: "host time" or "generate's host time")
SOURCE_NOTES = {
    "op-model": ("from the op-level host model (its operations at this machine's measured costs, times "
                 "the median correction of the families it timed): the family itself was not timed on "
                 "this profile; the range is widened"),
    "scaled": (f"not calibrated on this profile and no per-operation host costs: the {REFERENCE_FAMILY} "
               "family's, scaled by kernels launched; the range is widened"),
    "forward": ("its decode forward as timed for the family, generate's own per-step work the median of "
                "the families this profile timed generate for; the range is widened"),
    "fallback": ("no generate timing on this profile, its per-step work is a constant measured on other "
                 "machines (profile.GENERATE_STEP_US); the range is widened"),
    "none": ("this profile has no host measurement at all, so host time is counted as ZERO: host-bound "
             "cases will be far too fast; the range is widened"),
}


def source_note(spec: ModelSpec, source: str, what: str = "host time") -> str | None:
    """The estimate's note for a host time that rests on a fallback (None when measured)."""
    text = SOURCE_NOTES.get(source)
    return f"{what} of {spec.model_type}: {text}" if text else None


def generate_price(prof: Profile, spec: ModelSpec, e: int) -> tuple[GenerateHost, str]:
    """generate()'s host time of `spec` and its source: the profile's generate entry of the family
    ("measured"), else from its parts: per decoder layer, the
    forward's host time of the family (measured, else the op-level model's) times the op-level
    ratio of a decode step's layer to a forward's (the cache update, one query: its operations
    priced at this machine's costs); generate's own set-up and per-step work (logits processors,
    stopping criteria, cache bookkeeping, the host read that ends a step) from the profile's
    generate section, the family's entry or the median over the families timed (GenerationMixin
    is family-agnostic), else the GENERATE_* constants on top of the forward's fixed time."""
    gen = prof.data.generate
    model_type, family = spec.arch.host_keys(spec)
    key = model_type if model_type in gen else family
    own = gen.get(key)
    if own is not None:   # an entry the calibration derived from another family's timing is not this one's
        derived = ((prof.raw.get("generate") or {}).get(key) or {}).get("derived_from")
        return GenerateHost(*own, True), "forward" if derived else "measured"
    # the forward at the shape the calibration times and _decode_ratio divides by (1 x DECODE_BASE_TOKENS):
    # an MoE layer's host time follows the experts its tokens hit, so a 1-token forward here would
    # count the decode step's fewer experts twice (the MoE types left out came out 22-33 % low)
    fwd = host_price(prof, spec, 1, DECODE_BASE_TOKENS, e)
    per_layer = fwd.times.per_layer_us * _decode_ratio(prof, spec, e) * decode_glue(prof, e, _routed(spec))
    entries = [g for g in gen.values() if g is not None]
    if entries:
        step = _median(g.step_us for g in entries)
        setup = _median(g.setup_us + g.setup_per_layer_us * spec.layers for g in entries)
        return GenerateHost(setup, 0.0, step, per_layer, True), "forward" if fwd.source == "measured" else fwd.source
    source = "fallback" if fwd.source == "measured" else fwd.source
    return GenerateHost(GENERATE_SETUP_US, 0.0, fwd.times.fixed_us + GENERATE_STEP_US, per_layer, False), source


DECODE_BASE_TOKENS = 8   # the prompt of host calibration's timed forward (calibrate/host.py): the decode ratio's base


def _routed(spec: ModelSpec) -> bool:
    """Whether `spec`'s MLP runs routed experts (the decode glue's kind)."""
    return spec.arch.experts_implementation(spec) is not None


def decode_glue(prof: Profile, e: int, routed: bool = False) -> float:
    """What a decode step's layer costs the host beyond its operations' price, machine-wide, per
    MLP kind (dense, or routed experts): the median over the model types of that kind the profile
    timed both ways of (generate's measured per-layer step) / (the forward's measured per-layer
    host x the op-level decode/forward ratio); over every such type when none is of the kind.

    Timed round-robin (calibrate/host.py, 2026-12-03 loan 6), a dense type's decode-step layer
    costs what its op list says, 0.9-1.1x (median 1.0); the routed-expert types' 1.0-1.25x (median
    1.2): their decode step runs fewer experts than the 8-token forward, and the expert loop's
    Python (a sync per expert, the routing's index tensors) shrinks less than its kernels do.
    Without the per-kind split, the MoE types left out in turn came out 18-20 % low. (The glue of
    1.30 fitted on the earlier profile was the host's drift: its forward and generate() were timed
    minutes and loans apart.) On the shipped H200 profile the glue also carries the level of the
    lent machines' real decode steps (reports/probes/h200-2026-12-03/loan6/make_level.py: the
    generate section x 1.215), so it reads 1.20 (dense) and 1.42 (routed). 1.0 without such types."""
    return prof.memoized_host(("decode-glue", e, routed), _decode_glue, prof, e, routed)


def _decode_glue(prof: Profile, e: int, routed: bool) -> float:
    ratios: dict[bool, list[float]] = {False: [], True: []}
    for mt, g in prof.data.generate.items():
        fwd = prof.data.host.get(mt)
        derived = ((prof.raw.get("generate") or {}).get(mt) or {}).get("derived_from")
        if g is None or fwd is None or derived or fwd.per_layer_us <= 0 or mt not in REGISTRY:
            continue
        try:
            spec = _tiny_spec(mt)
            r = _decode_ratio(prof, spec, e)
        except Exception:   # noqa: BLE001 - a tiny config this estimator cannot read
            continue
        if r > 0:
            ratios[_routed(spec)].append(g.step_per_layer_us / (fwd.per_layer_us * r))
    pick = ratios[routed] or ratios[not routed]
    return _median(pick) if pick else 1.0


def _decode_ratio(prof: Profile, spec: ModelSpec, e: int) -> float:
    """Op-level host price of a decode step's layer over a forward's (1.0 without host_ops),
    once per profile, model and dtype (every generate estimate asks)."""
    return prof.memoized(("decode-ratio", spec, e), _price_decode_ratio, prof, spec, e)


def _price_decode_ratio(prof: Profile, spec: ModelSpec, e: int) -> float:
    costs = prof.host_op_costs()
    if not costs:
        return 1.0
    from .decode import decode_ops   # decode builds on ops: imported here to keep this module light
    fwd = forward_ops(spec, 1, DECODE_BASE_TOKENS, e)
    step = decode_ops(spec, 1, DECODE_BASE_TOKENS + 1, e)
    def per_layer(ops) -> float:
        return sum(layer_priced_us(spec, g.ops, costs) * g.group.count for g in ops.layers) / spec.layers
    base = per_layer(fwd)
    return per_layer(step) / base if base > 0 else 1.0
