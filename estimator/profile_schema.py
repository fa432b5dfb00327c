"""The calibration profile's schema, declared once: its sections, their types and constraints.

A profile is the JSON ``python -m estimator calibrate`` writes: calibrate/machine.py's header,
then one section per calibration stage. ``ProfileData`` below declares every field of it: the
JSON name, the type, whether it may be absent, the constraint profile_check.py validates, and
how the field travels when calibrations are merged (calibrate/merge.py), when another machine's
host times are laid over a profile (``overlay_host``) and when a calibration is carried to another
device (transfer.py). The board-power section is ``PowerModel``, one entry of the host section
``HostTimes``, one of the generate section ``GenerateTimes``.

Nothing here rewrites the JSON: ``ProfileData.raw`` keeps the parsed dict as it was read, so a
profile saved again, merged or cached stays byte-compatible; the typed fields are views of it.
Times are microseconds, power watts.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, NamedTuple

from .errors import EstimatorError

# Field kinds (how profile_check.py validates a section): a mapping of grids, one grid, a number,
# a string, the power section, the host section, a mapping of numbers; "recorded" fields are kept
# for reference and not validated (the estimator does not rely on them, or reads them leniently).
GRIDS, GRID, NUMBER, STRING, POWER, HOST, NUMBERS, RECORDED = (
    "grids", "grid", "number", "string", "power", "host", "numbers", "recorded")
# Row layouts of the measured grids: coordinates then the time of one call in microseconds.
GRID_ROWS = {"gemm": "[m, n, k, time_us]", "sdpa": "[batch*heads, seq, head_dim, time_us]",
             "bytes": "[bytes, time_us]", "grouped": "[experts, rows_per_expert, n, k, time_us]"}
# How a field is merged over calibration runs of one machine kind (calibrate/merge.py).
BASE, POOLED_MEDIAN, FIRST_MULTI_GPU, MEDIAN_MULTI_GPU, PROVENANCE = (
    "base", "pooled_median", "first_multi_gpu", "median_multi_gpu", "provenance")
# How a field is carried to another device (transfer.py): kept, emptied (links: the target's
# datasheet link is used instead), kept with null as empty, or scaled (the power section).
KEEP, EMPTY, KEEP_OR_EMPTY, SCALE = "keep", "empty", "keep_or_empty", "scale"
# How the board-power levels scale to another device (Transfer.power).
IDLE_LEVEL, LOAD_LEVEL, BOARD_SPECIFIC, TARGET_LIMIT, AS_MEASURED = (
    "idle", "load", "board", "target_limit", "as_measured")


def _section(kind: str, default: Any = None, *, factory: Any = None, layout: str | None = None,
             required: bool = False, minimum: float = 0.0, allow_empty_grids: bool = True,
             gpu_count_keys: bool = False, merge: str = BASE, transfer: str = KEEP,
             overlay: bool = False) -> Any:
    """A ProfileData field with its schema in the metadata (see the constants above)."""
    meta = dict(kind=kind, layout=layout, required=required, minimum=minimum,
                allow_empty_grids=allow_empty_grids, gpu_count_keys=gpu_count_keys, merge=merge,
                transfer=transfer, overlay=overlay)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _level(scaling: str, default: Any = MISSING, minimum: float = 0.0, maximum: float | None = None) -> Any:
    return field(default=default, metadata=dict(scaling=scaling, minimum=minimum, maximum=maximum))


@dataclass(frozen=True)
class PowerModel:
    """The profile's "power" section: board power of one GPU in watts, as
    ``calibrate.measure_power`` writes it from NVML energy counters (energy.py uses it).

    Required: ``idle_w`` (nothing running), ``launch_bound_w`` (tiny kernels back to back: clocks
    up, little work), ``gemm_w`` (a GEMM loop, at the power limit where it binds) and ``memory_w``
    (a copy loop). Optional, None when not measured: ``hot_idle_w`` (idle right after the GEMM
    loop: what a waiting pipeline stage draws), ``mixed_w`` and ``mixed_compute_fraction`` (a
    forward-pass-like mix of GEMM and elementwise kernels, and the GEMM share of its time),
    ``gemm_sustained_tflops`` and ``gemm_burst_tflops`` (GEMM-loop throughput at the power limit
    and before it binds), ``power_limit_w``; recorded for reference: ``gemm_sm_clock_mhz``,
    ``max_sm_clock_mhz`` and ``idle_w_per_gpu`` (the idle draw of every GPU of the machine).
    Required levels must be positive, optional ones >= 0.
    """
    idle_w: float = _level(IDLE_LEVEL)
    launch_bound_w: float = _level(LOAD_LEVEL)
    gemm_w: float = _level(LOAD_LEVEL)
    memory_w: float = _level(LOAD_LEVEL)
    hot_idle_w: float | None = _level(IDLE_LEVEL, None)
    mixed_w: float | None = _level(LOAD_LEVEL, None)
    mixed_compute_fraction: float | None = _level(AS_MEASURED, None, maximum=1.0)
    gemm_sustained_tflops: float | None = _level(BOARD_SPECIFIC, None)
    gemm_burst_tflops: float | None = _level(BOARD_SPECIFIC, None)
    power_limit_w: float | None = _level(TARGET_LIMIT, None)       # a transfer: the target's limit
    gemm_sm_clock_mhz: float | None = _level(BOARD_SPECIFIC, None)
    max_sm_clock_mhz: float | None = _level(AS_MEASURED, None)
    idle_w_per_gpu: tuple[float, ...] = _level(TARGET_LIMIT, ())   # a transfer: the target's idle

    @classmethod
    def from_dict(cls, power: dict | None, source: str) -> PowerModel | None:
        """None for an empty section (nothing measured, e.g. a CPU); a required key missing raises."""
        if not power:
            return None
        missing = [k for k in POWER_REQUIRED if k not in power]
        if missing:
            raise EstimatorError(f"profile {source}: power section lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in power.items() if k in known}
        return cls(**kw | {"idle_w_per_gpu": tuple(power.get("idle_w_per_gpu", ()))})


POWER_LEVELS = tuple(f for f in fields(PowerModel) if f.name != "idle_w_per_gpu")   # one number each
POWER_REQUIRED = tuple(f.name for f in POWER_LEVELS if f.default is MISSING)
POWER_OPTIONAL = tuple(f.name for f in POWER_LEVELS if f.default is not MISSING)


def power_keys(scaling: str) -> tuple[str, ...]:
    """The power section's keys that scale to another device as `scaling` says."""
    return tuple(f.name for f in fields(PowerModel) if f.metadata["scaling"] == scaling)


class HostTimes(NamedTuple):
    """Eager host time of model(input_ids): per decoder layer, and the rest (embeddings, head).
    One entry of the "host" section (a fit over layer counts: the intercept may be negative);
    a key absent from an entry counts as 0. merge.py adds ``samples``, recorded only."""
    per_layer_us: float
    fixed_us: float


class GenerateTimes(NamedTuple):
    """One entry of the "generate" section (calibrate/host.py): generate()'s own host time."""
    setup_us: float
    setup_per_layer_us: float   # optional in the JSON, 0 when absent
    step_us: float
    step_per_layer_us: float


GENERATE_REQUIRED = ("setup_us", "step_us", "step_per_layer_us")   # an entry lacking one is not used


@dataclass(frozen=True)
class ProfileData:
    """A profile's fields, typed (declared in the order profile_check.py validates them).

    Grids are lists of rows ``[coordinates..., time_us]`` as measured. Sections the estimator can
    do without (elementwise, p2p, allreduce, power, host, dispatch, generate) may be absent or
    null: they read as empty. Header fields are recorded for reference."""
    raw: dict = field(repr=False, compare=False)  # the JSON as read, never rewritten
    gemm: dict = _section(GRIDS, factory=dict, layout=GRID_ROWS["gemm"], required=True)   # dtype -> rows
    sdpa: dict = _section(GRIDS, factory=dict, layout=GRID_ROWS["sdpa"], required=True,
                          allow_empty_grids=False)  # an empty grid leaves no head dims to interpolate
    copy: list = _section(GRID, factory=list, layout=GRID_ROWS["bytes"], required=True)
    elementwise: dict = _section(GRIDS, factory=dict, layout=GRID_ROWS["bytes"])   # access pattern -> rows
    # dtype -> rows of the grouped GEMM of MoE experts (calibrate/grouped.py); absent in older profiles
    grouped_gemm: dict = _section(GRIDS, factory=dict, layout=GRID_ROWS["grouped"])
    p2p: list = _section(GRID, factory=list, layout=GRID_ROWS["bytes"], merge=FIRST_MULTI_GPU, transfer=EMPTY)
    allreduce: dict = _section(GRIDS, factory=dict, layout=GRID_ROWS["bytes"], gpu_count_keys=True,
                               merge=FIRST_MULTI_GPU, transfer=EMPTY)   # GPU count (int) -> rows
    elementwise_floor_us: float = _section(NUMBER, 2.0)   # the shortest kernel
    launch_us: float | None = _section(NUMBER)
    kind: str = _section(STRING, "gpu")                    # "gpu" or "cpu"
    device_name: str | None = _section(STRING)             # as the machine reported it
    power: PowerModel | None = _section(POWER, transfer=SCALE)   # None: no energy estimates
    host: dict = _section(HOST, factory=dict, merge=POOLED_MEDIAN, overlay=True)   # model type -> HostTimes
    dispatch: dict = _section(NUMBERS, factory=dict, merge=MEDIAN_MULTI_GPU, transfer=KEEP_OR_EMPTY,
                              overlay=True)   # model type -> accelerate hook host time per module
    generate: dict = _section(RECORDED, factory=dict, overlay=True)   # model type -> GenerateTimes, None if incomplete
    # operation class -> host us per call (calibrate/host_ops.py): the op-level host model's costs
    host_ops: dict = _section(NUMBERS, factory=dict, overlay=True)
    schema_version: int | None = _section(RECORDED)
    gpu_count: int | None = _section(RECORDED)
    driver: str | None = _section(RECORDED)
    torch: str | None = _section(RECORDED)
    transformers: str | None = _section(RECORDED)
    date: str | None = _section(RECORDED)                  # ISO 8601, UTC
    hostname: str | None = _section(RECORDED)
    cpu: str | None = _section(RECORDED)
    duration_s: float | None = _section(RECORDED)
    # calibrate/plan.py's record: the stage plan and its expected seconds, the grids thinned and filled
    calibration: dict | None = _section(RECORDED)
    merged_from: list | None = _section(RECORDED, merge=PROVENANCE)


SECTIONS = tuple(f for f in fields(ProfileData) if "kind" in f.metadata)
REQUIRED = tuple(f.name for f in SECTIONS if f.metadata["required"])
HEADER = ("schema_version", "kind", "device_name", "gpu_count", "driver", "torch", "transformers",
          "date", "hostname", "cpu", "duration_s")   # calibrate/machine.py's header, in its order


def sections(*, kind: str | None = None, merge: str | None = None, transfer: str | None = None,
             overlay: bool | None = None) -> tuple:
    """The declared sections matching every criterion given."""
    want = dict(kind=kind, merge=merge, transfer=transfer, overlay=overlay)
    return tuple(f for f in SECTIONS if all(v is None or f.metadata[k] == v for k, v in want.items()))


def empty_of(section: Any) -> Any:
    """What an absent section reads as: [] for a grid, {} for a mapping, else its default."""
    return section.default_factory() if section.default_factory is not MISSING else section.default


GENERATE_MAX_US = 1e6   # a host time per call, step or layer above a second is no measurement


def _generate(entry: Any) -> GenerateTimes | None:
    """A generate host entry, or None (the fallback constants apply) where it is incomplete or
    any value is negative, non-finite or absurd (older calibrations stored a negative set-up)."""
    if isinstance(entry, dict) and all(isinstance(entry.get(k), (int, float)) for k in GENERATE_REQUIRED):
        t = GenerateTimes(float(entry["setup_us"]), float(entry.get("setup_per_layer_us", 0.0)),
                          float(entry["step_us"]), float(entry["step_per_layer_us"]))
        if all(0.0 <= v <= GENERATE_MAX_US for v in t):
            return t
    return None


def parse_profile(raw: dict, source: str) -> ProfileData:
    """The typed view of a profile dict. Lenient: profile_check.check_profile validates first
    where the dict comes from a file; only a power section lacking a required level raises."""
    def mapping(name: str) -> dict:
        return raw.get(name) or {}

    values: dict[str, Any] = {f.name: raw.get(f.name, empty_of(f)) for f in SECTIONS}
    values |= {f.name: mapping(f.name) for f in sections(kind=GRIDS)}
    values |= {f.name: raw.get(f.name) or [] for f in sections(kind=GRID)}
    values["allreduce"] = {int(n): rows for n, rows in mapping("allreduce").items() if rows}
    values["power"] = PowerModel.from_dict(raw.get("power"), source)
    # host and generate keep only non-empty entries, so that a lookup by model type falls back to
    # the family where the model type's entry is empty, as an `or` over the dict entries did
    values["host"] = {t: HostTimes(float(h.get("per_layer_us", 0.0)), float(h.get("fixed_us", 0.0)))
                      for t, h in mapping("host").items() if h}
    values["dispatch"] = dict(mapping("dispatch"))
    values["generate"] = {t: _generate(g) for t, g in mapping("generate").items() if g}
    return ProfileData(raw=raw, **values)


def overlay_host(raw: dict, host: dict, dispatch: dict, generate: dict | None = None,
                 host_ops: dict | None = None) -> dict:
    """`raw` with another machine's host sections laid over its own, per model type (types not
    measured there keep these) and per operation class; every other section is the same object
    as in `raw`."""
    laid = {"host": host, "dispatch": dispatch, "generate": generate or {}, "host_ops": host_ops or {}}
    return dict(raw, **{f.name: {**(raw.get(f.name) or {}), **laid[f.name]} for f in sections(overlay=True)
                        if laid[f.name] or f.name in raw})
