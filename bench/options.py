"""The plugin's options: one table of (flag, ini name, default, validating parser).

Every option is settable on the command line (``--bench-gpus 1,2``) and in the ini file
(``bench_gpus = 1,2``, also ``-o bench_gpus=1,2``); the command line wins. A bad value is a
``pytest.UsageError`` whose single line names the option and the value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import pytest

from estimator.errors import EstimatorError
from estimator.workload import DTYPE_BYTES, PARALLEL_MODES, normalize_dtype, normalize_parallel

from . import metrics

DEFAULT_MODELS = ("facebook/opt-1.3b", "facebook/opt-6.7b", "AICrossSim/clm-60m",
                  "AICrossSim/clm-200m", "AICrossSim/clm-400m", "AICrossSim/clm-1.1b")
DTYPES = ("auto", *DTYPE_BYTES)  # "auto" = the model's own dtype; the rest as the estimator spells them


@dataclass(frozen=True)
class BenchConfig:
    """Parsed, validated options. Bounds are fractions (0.10 = 10 %), one per bound option of
    bench/metrics.py (``bound["runtime"]``, also readable as ``bound_runtime``)."""

    models: tuple[str, ...] = DEFAULT_MODELS
    gpus: tuple[int, ...] = (1, 2, 4, 8)
    batch: tuple[int, ...] = (16,)
    seq: tuple[int, ...] = (1024,)
    dtype: str = "auto"  # "auto" = the model's own dtype
    parallel: tuple[str, ...] = ("pipeline", "data", "tensor")
    rounds: int = 5
    warmup: int = 2
    energy_window_s: float = 1.0
    bound: dict[str, float] = field(default_factory=dict, hash=False)  # option -> bound; unset: default
    new_tokens: int = 0      # > 0: bench/test_generate.py measures model.generate of this many tokens
    experts_implementation: str = ""   # MoE models: transformers' experts_implementation; "" = its default
    host_probe: str = "on"   # on: the model's host time measured in the case (bench/host_probe.py); off: the profile's
    report_dir: Path = Path("reports")
    report_name: str = ""  # "" = the benchmark test decides (bench_recorder.default_name)
    calibrate: str = "auto"  # auto | always | never: see bench/calibration.py
    profile: str = ""  # a profile JSON to estimate with as it is; "" = bench/calibration.py decides
    nnodes: int = 1          # data/tensor cases: machines taking part (torchrun rendezvous)
    node_rank: int = 0       # this machine's rank among them
    rdzv_endpoint: str = ""  # host:port every node's launcher meets at; "" = this machine alone
    dist_timeout_s: float = 300.0  # a data/tensor case whose ranks take longer fails

    def __post_init__(self) -> None:
        defaults = {m.option: m.default_bound for m in metrics.option_owners()}
        object.__setattr__(self, "bound", {**defaults, **self.bound})

    def __getattr__(self, name: str) -> float:
        """``bound_<option>``: that option's bound (the attribute names of the JSON's keys)."""
        bound = self.__dict__.get("bound") or {}
        if name.startswith("bound_") and name[len("bound_"):] in bound:
            return bound[name[len("bound_"):]]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _bounds_of(self, selected: tuple[metrics.Metric, ...]) -> dict[str, float]:
        return {m.key: self.bound[m.option] for m in selected if m.option in self.bound}

    @property
    def bounds(self) -> dict[str, float]:
        """Allowed |relative error| per forward metric, keyed by compare.METRICS."""
        return self._bounds_of(metrics.forward())

    @property
    def generation_bounds(self) -> dict[str, float]:
        """Bounds of a generation row: the generation table's metrics (TTFT, TPOT, peak memory,
        energy per generated token)."""
        return self._bounds_of(metrics.generation_table())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy (lists, str path, plus the bounds dict). Bound options appear as
        ``bound_<option>`` keys: forward metrics' where the bound field is, generation metrics'
        after new_tokens (the key order results JSON files have always had)."""
        kinds = {m.option: m.kind for m in metrics.option_owners()}
        by_kind = {kind: {f"bound_{o}": v for o, v in self.bound.items() if kinds.get(o, metrics.FORWARD) == kind}
                   for kind in (metrics.FORWARD, metrics.GENERATE)}
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "bound":
                data.update(by_kind[metrics.FORWARD])
                continue
            data[f.name] = list(value) if isinstance(value, tuple) else value
            if f.name == "new_tokens":
                data.update(by_kind[metrics.GENERATE])
        data["report_dir"] = str(self.report_dir)
        data["bounds"] = self.bounds
        return data


# -- validating parsers: str -> value, ValueError with the message after "<option>: " --------

def _items(raw: str) -> list[str]:
    items = [part.strip() for part in raw.split(",") if part.strip()]
    if not items:
        raise ValueError("empty list")
    return list(dict.fromkeys(items))  # drop repeats, keep order


def _int(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        kind = "a positive integer" if minimum == 1 else "a non-negative integer"
        raise ValueError(f"{text!r} is not {kind}")
    return value


def parse_names(raw: str) -> tuple[str, ...]:
    return tuple(_items(raw))


def parse_positive_ints(raw: str) -> tuple[int, ...]:
    return tuple(_int(item, 1) for item in _items(raw))


def parse_positive_int(raw: str) -> int:
    return _int(raw.strip(), 1)


def parse_non_negative_int(raw: str) -> int:
    return _int(raw.strip(), 0)


def parse_positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{raw.strip()!r} is not a positive number")
    return value


def parse_fraction(raw: str) -> float:
    """A bound: '0.1' or '10%' -> 0.1; must be finite and >= 0."""
    text = raw.strip()
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{text!r} is not a non-negative fraction (e.g. 0.1 or 10%)")
    return value


def parse_dtype(raw: str) -> str:
    """'auto' or a dtype the estimator knows (its aliases too: fp16, bf16, torch.float32, ...)."""
    text = raw.strip().lower()
    if text == "auto":
        return text
    try:
        return normalize_dtype(text)
    except EstimatorError:
        raise ValueError(f"{raw.strip()!r} is not one of {', '.join(DTYPES)}") from None


def parse_parallel(raw: str) -> tuple[str, ...]:
    modes = _items(raw.lower())
    for mode in modes:
        try:
            normalize_parallel(mode)
        except EstimatorError:
            raise ValueError(f"{mode!r} is not one of {', '.join(PARALLEL_MODES)}") from None
    return tuple(modes)


def parse_dir(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("empty path")
    return Path(raw.strip())


def parse_report_name(raw: str) -> str:
    name = raw.strip()
    if any(sep in name for sep in ("/", "\\")) or name in (".", ".."):
        raise ValueError(f"{name!r} is not a plain file name (no directories, no suffix needed)")
    return name


def parse_calibrate(raw: str) -> str:
    mode = raw.strip().lower()
    if mode not in CALIBRATE_MODES:
        raise ValueError(f"{raw.strip()!r} is not one of {', '.join(CALIBRATE_MODES)}")
    return mode


def parse_optional_path(raw: str) -> str:
    return raw.strip()


@dataclass(frozen=True)
class Option:
    flag: str
    field: str
    default: str
    parse: Callable[[str], Any]
    help: str

    @property
    def ini(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def dest(self) -> str:
        return "benchopt_" + self.field


def _options(prefix: str, table: tuple[tuple[str, str, Callable[[str], Any], str], ...]) -> tuple[Option, ...]:
    """Options from (field, default, parser, help) rows; the flag is prefix + field with dashes."""
    return tuple(Option(prefix + field.removeprefix("bound_").replace("_", "-"), field, default, parse, text)
                 for field, default, parse, text in table)


def parse_experts(raw: str) -> str:
    from estimator.workload import EXPERTS_IMPLEMENTATIONS
    value = raw.strip()
    if value and value not in EXPERTS_IMPLEMENTATIONS:
        raise ValueError(f"{value!r} is not one of {', '.join(EXPERTS_IMPLEMENTATIONS)}")
    return value


def parse_on_off(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"{raw!r}: use on or off")
    return value


OPTIONS = _options("--bench-", (
    ("models", ",".join(DEFAULT_MODELS), parse_names, "comma-separated shipped model names or paths to "
                                                          "config.json files (each built from that exact file)"),
    ("gpus", "1,2,4,8", parse_positive_ints, "comma-separated GPU counts"),
    ("batch", "16", parse_positive_ints, "comma-separated batch sizes"),
    ("seq", "1024", parse_positive_ints, "comma-separated sequence lengths"),
    ("dtype", "auto", parse_dtype, f"auto (the model's own dtype), {', '.join(DTYPES[1:-1])} or {DTYPES[-1]}"),
    ("parallel", "pipeline,data,tensor", parse_parallel, f"comma-separated multi-GPU modes from {', '.join(PARALLEL_MODES)}"),
    ("rounds", "5", parse_positive_int, "timed rounds per case"),
    ("warmup", "2", parse_non_negative_int, "untimed warm-up rounds per case"),
    ("energy_window_s", "1.0", parse_positive_float, "minimum seconds of work per energy reading"),
    ("nnodes", "1", parse_positive_int, "data/tensor parallel: machines taking part (torchrun --nnodes)"),
    ("node_rank", "0", parse_non_negative_int, "data/tensor parallel: this machine's rank among --bench-nnodes"),
    ("rdzv_endpoint", "", parse_optional_path, "data/tensor parallel: host:port of the torchrun rendezvous every node uses"),
    ("dist_timeout_s", "300", parse_positive_float, "seconds a data/tensor-parallel case may take before it fails"),
    ("new_tokens", "0", parse_non_negative_int, "generation cases (bench/test_generate.py): model.generate of N "
                                               "new tokens per model, batch and seq on one GPU; 0 = none"),
    ("experts_implementation", "", parse_experts, "MoE models: transformers' experts_implementation the models are "
                                                  "built and estimated with (grouped_mm, batched_mm, eager); "
                                                  "empty = transformers' default (grouped_mm)"),
    ("host_probe", "on", parse_on_off, "on: measure the model's own host time in each GPU case (the same model at "
                                       "a few tokens, interleaved with its rounds) and estimate with it; off: "
                                       "the profile's host times"),
))


def _fraction_text(value: float) -> str:
    """A default bound as the help and ini show it: 0.1 -> '0.10'."""
    text = f"{value:.2f}"
    return text if float(text) == value else repr(value)


def bound_options() -> tuple[Option, ...]:
    """--bound-<option> for each bound option of the metric registry (bench/metrics.py)."""
    return _options("--bound-", tuple(
        (f"bound_{m.option}", _fraction_text(m.default_bound), parse_fraction,
         f"allowed |relative error| of {m.bound_of or m.label.lower()}") for m in metrics.option_owners()))


REPORT_OPTIONS = _options("--bench-", (
    ("report_dir", "reports", parse_dir, "directory of the .rst/.json report (command line: relative to "
                                         "the current directory; ini: relative to the ini file)"),
    ("report_name", "", parse_report_name, "report file name without suffix; empty = chosen by the "
                                           "benchmark test"),
))
CALIBRATE_MODES = ("auto", "always", "never")
CALIBRATION_OPTIONS = _options("--bench-", (
    ("calibrate", "auto", parse_calibrate, "auto: calibrate a GPU without a shipped profile (cached per "
                                           "user and machine) and measure the host; always: calibrate "
                                           "again; never: measure nothing"),
    ("profile", "", parse_optional_path, "profile JSON to estimate with, as it is (command line: relative "
                                         "to the current directory; ini: to the ini file)"),
))


def groups() -> tuple[tuple[str, str, tuple[Option, ...]], ...]:
    """(pytest group, description, options); the bound options as the registry has them now."""
    return (("bench", "LLM forward-pass benchmark", OPTIONS),
            ("bench-calibration", "which calibration profile the estimates use", CALIBRATION_OPTIONS),
            ("bench-bounds", "benchmark error bounds (fractions, 0.1 = 10%)", bound_options()),
            ("bench-report", "benchmark report files", REPORT_OPTIONS))


def add_options(parser: pytest.Parser) -> None:
    for name, description, options in groups():
        group = parser.getgroup(name, description)
        for opt in options:
            shown = opt.default if opt.default else '""'
            group.addoption(opt.flag, dest=opt.dest, default=None, metavar="VALUE",
                            help=f"{opt.help} (default: {shown}; ini: {opt.ini})")
            parser.addini(opt.ini, f"{opt.help} (command line: {opt.flag})",
                          type="string", default=opt.default)


def _as_text(raw: Any) -> str:
    """Ini values from TOML may arrive as lists or numbers."""
    if isinstance(raw, (list, tuple)):
        return ",".join(str(item) for item in raw)
    return str(raw)


def from_pytest_config(config: pytest.Config) -> BenchConfig:
    """Read every option (command line over ini over default) and validate it."""
    values: dict[str, Any] = {}
    from_cli: set[str] = set()
    for _, _, options in groups():
        for opt in options:
            raw = config.getoption(opt.dest, None)
            source = opt.flag
            if raw is None:
                raw, source = config.getini(opt.ini), f"{opt.ini} (ini)"
            else:
                from_cli.add(opt.field)
            try:
                values[opt.field] = opt.parse(_as_text(raw))
            except ValueError as exc:
                raise pytest.UsageError(f"{source}: {exc}") from None
    if "report_dir" in from_cli:
        base = Path(config.invocation_params.dir)
    else:
        base = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
    values["report_dir"] = base / values["report_dir"]  # an absolute path stays as is
    if values["profile"]:
        ini_dir = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
        where = Path(config.invocation_params.dir) if "profile" in from_cli else ini_dir
        values["profile"] = str(where / values["profile"])   # checked by option_checks.check_profile
    bound = {opt.field.removeprefix("bound_"): values.pop(opt.field) for opt in bound_options()}
    return BenchConfig(bound=bound, **values)
