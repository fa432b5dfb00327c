"""Which calibration profile the suite estimates with, and the per-user cache behind it.

A GPU nobody shipped a profile for (an RTX A5000, say) would otherwise be estimated from another
GPU's curves scaled by datasheet ratios, 10-28 % off on an H200. So the suite calibrates what it
does not know, once per machine: the profile goes to ``<cache>/llm-perf-estimator/profiles/<key>.json``
(``$XDG_CACHE_HOME``, else ``~/.cache``) and later runs reuse it. The key names the GPU model and
count, the driver, the torch version and the host CPU: any of them moves kernel or host times.

Host time (Python dispatch, launches, accelerate's hooks) moved 20-50 % between machines of the
same GPU kind, so even a GPU with a shipped profile gets its host section measured here (a few
seconds, cached under ``host/<key>.json``) and laid over the shipped one.

``--bench-calibrate``: ``auto`` (cached calibration of this machine, else the shipped profile with
the host measured here, else calibrate now), ``always`` (calibrate now, replace the cache),
``never`` (measure nothing: cache, else shipped, else a transfer from a calibrated device; the CPU
has no transfer and skips). ``--bench-profile PATH`` uses that file as it is.

The CPU case is the exception: it calibrates this CPU at every session start and caches nothing.
A CPU's timings move with whatever else the machine runs (a calibration made while other jobs
loaded a 2-core machine put the host time per layer 5x too high), and a cached bad calibration
would fail every later run; on a GPU machine the suite has the machine to itself.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import sys
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from estimator.device import DeviceSpec
from estimator.errors import EstimatorError
from estimator.model import ModelSpec
from estimator.profile import Profile, load_profile_file, profile_for, shipped_profile

from .report import write_atomic

Log = Callable[[str], None]
CACHE_APP = "llm-perf-estimator"


@dataclass(frozen=True)
class MachineKey:
    """What a cached profile is valid for; any change here moves kernel or host times."""

    gpu: str            # the GPU's own name ("NVIDIA H200"), "cpu" without GPUs
    gpu_count: int
    driver: str | None
    torch: str | None
    cpu: str            # model name and logical cores

    @property
    def key(self) -> str:
        """'nvidia-h200-x4-<hash of every field>': readable, and unique per field combination."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.gpu.lower()).strip("-") or "machine"
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]
        return f"{slug}-x{self.gpu_count}-{digest}"


def cpu_description() -> str:
    """CPU model name and logical core count (/proc/cpuinfo; platform elsewhere)."""
    from .machine import _cpu
    return f"{_cpu() or 'unknown CPU'} ({os.cpu_count()} logical cores)"


def this_machine(gpu_name: str | None, gpu_count: int) -> MachineKey:
    """The key of the machine at hand (torch is read only if already imported)."""
    from estimator.calibrate import nvml
    torch = sys.modules.get("torch")
    version = getattr(torch, "__version__", None)
    if version is None:
        from .machine import _version
        version = _version("torch")
    return MachineKey(gpu_name or "cpu", gpu_count if gpu_name else 0,
                      nvml.driver_version() if gpu_name else None, str(version), cpu_description())


def cache_root(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/llm-perf-estimator`` (an absolute path only, as the XDG spec says),
    else ``~/.cache/llm-perf-estimator``."""
    base = env.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / CACHE_APP


class ProfileCache:
    """JSON files of one machine key: ``profiles/`` (whole calibrations) and ``host/`` (host
    overlays). A file that is unreadable or made for another key counts as a miss; a cache that
    cannot be written only warns: the run goes on with what it measured."""

    def __init__(self, root: Path, key: MachineKey, log: Log = lambda _: None) -> None:
        self.root, self.key, self.log = Path(root), key, log

    def path(self, kind: str) -> Path:
        return self.root / kind / f"{self.key.key}.json"

    def load(self, kind: str) -> dict[str, Any] | None:
        path = self.path(kind)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or data.get("machine_key") != asdict(self.key):
                raise ValueError("made for another machine key")
        except (OSError, ValueError) as exc:
            self._warn(f"ignoring cached {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            return None
        return data

    def store(self, kind: str, data: dict[str, Any]) -> Path | None:
        path = self.path(kind)
        try:
            write_atomic(path, json.dumps(dict(data, machine_key=asdict(self.key)), indent=1) + "\n")
        except OSError as exc:
            self._warn(f"cannot write the calibration cache {path} ({exc.strerror or exc}); "
                       "continuing with this run's calibration, it will be measured again next time")
            return None
        self.log(f"cached in {path}")
        return path

    def _warn(self, message: str) -> None:
        self.log(message)
        warnings.warn(message, stacklevel=3)


@dataclass(frozen=True)
class Resolved:
    """The session's profile, or why there is none (the cases then skip with that reason)."""

    profile: Profile | None
    reason: str | None = None


def _when(raw: Mapping[str, Any]) -> str:
    return str(raw.get("date") or "undated")[:16].replace("T", " ")


def _on(raw: Mapping[str, Any]) -> str:
    name, count = raw.get("device_name") or "unknown device", raw.get("gpu_count") or 0
    return f"{name} x {count}" if count else str(name)


def _from_cache(raw: dict[str, Any], cache: ProfileCache) -> Profile | None:
    """The cached calibration as a Profile, checked as any profile file is; None if invalid."""
    try:
        prof = load_profile_file(cache.path("profiles"))
    except EstimatorError as exc:
        cache._warn(f"ignoring cached calibration: {exc}")
        return None
    return _labelled(prof, f"cached calibration of {_when(raw)} ({_on(raw)})")


def _labelled(prof: Profile, label: str) -> Profile:
    """The same tables under a human-readable source (no rebuild of the lookup grids)."""
    out = copy.copy(prof)
    out.source = label
    return out


def resolve(mode: str, explicit: str | None, device: DeviceSpec | None, cache: ProfileCache,
            calibrate: Callable[[Log], dict[str, Any]],
            measure_host: Callable[[Log], tuple[dict, dict]], log: Log, needed: Sequence[str] = ()) -> Resolved:
    """The profile to estimate with (see the module doc); `device` None is the CPU case.
    `calibrate` and `measure_host` are the torch measurements, passed in so tests can fake them."""
    if explicit:
        prof = load_profile_file(explicit)
        return Resolved(_labelled(prof, f"profile file {explicit} (calibrated {_when(prof.header)} "
                                        f"on {_on(prof.header)})"))
    cached = cache.load("profiles") if mode != "always" else None
    if cached is not None:
        prof = _from_cache(cached, cache)
        if prof is not None:
            return Resolved(prof)
    shipped = shipped_profile(device.key) if device is not None else None
    if mode == "always" or (mode == "auto" and shipped is None):
        log(f"no calibration of this machine cached ({cache.key.key}): calibrating now")
        raw = calibrate(log)
        cache.store("profiles", raw)
        return Resolved(Profile(raw, f"cached calibration of {_when(raw)} ({_on(raw)})"))
    if shipped is not None:
        return Resolved(_with_host_here(shipped, device, mode, cache, measure_host, log, needed))
    if device is None:
        return Resolved(None, f"no CPU profile cached in {cache.path('profiles')} and "
                              "--bench-calibrate never: run once with auto to calibrate")
    prof = profile_for(device)
    label = prof.source if prof.source.startswith("transfer") else f"transfer: {prof.source}"
    return Resolved(_labelled(prof, label))


def cpu_session_profile(mode: str, calibrate: Callable[[Log], dict[str, Any]], log: Log) -> Resolved:
    """The CPU case's profile: this CPU calibrated now, never cached (see the module doc)."""
    if mode == "never":
        return Resolved(None, "the CPU case calibrates this CPU at session start, which "
                              "--bench-calibrate never forbids (or pass --bench-profile)")
    log("calibrating this CPU for the CPU case (not cached: CPU timings follow the machine's load)")
    raw = calibrate(log)
    return Resolved(Profile(raw, f"calibration of this CPU at session start ({_when(raw)})"))


def _with_host_here(shipped: Profile, device: DeviceSpec, mode: str, cache: ProfileCache,
                    measure_host: Callable[[Log], tuple[dict, dict]], log: Log,
                    needed: Sequence[str] = ()) -> Profile:
    """The shipped profile with the host section measured on this machine (cached), unless
    mode is never and nothing is cached: then the shipped host times, as the label says. A
    cached host section lacking one of the `needed` model types is measured again."""
    label = f"shipped {device.key} (calibrated {_when(shipped.header)[:10]} on {_on(shipped.header)})"
    host = cache.load("host")
    if host is not None and mode != "never" and not set(needed) <= set(host.get("host") or {}):
        host = None   # measured for other models: measure this session's
    if host is None and mode == "never":
        return _labelled(shipped, label + ", its host times")
    if host is None:
        log("measuring this machine's host overhead (the GPU has a shipped profile)")
        measured, dispatch = measure_host(log)
        host = {"date": _now(), "host": measured, "dispatch": dispatch}
        cache.store("host", host)
    return shipped.with_host(host.get("host") or {}, host.get("dispatch") or {},
                             f"{label}, host measured here {_when(host)}")


def _now() -> str:
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# -- the torch side and the pytest glue -----------------------------------------------------------

def full_calibration(device: str, model_types: Sequence[str] = ()) -> Callable[[Log], dict[str, Any]]:
    """``estimator.calibrate.calibrate`` of this machine, all stages, host overhead timed for
    `model_types` (the session's models; about 55-65 s on an H100/H200 machine, 30 s on a
    2-core CPU)."""
    def run(log: Log) -> dict[str, Any]:
        from estimator.calibrate import calibrate
        return calibrate(device=device, quick=False, log=log, model_types=tuple(model_types) or None)
    return run


def host_calibration(model_types: Sequence[str] = ()) -> Callable[[Log], tuple[dict, dict]]:
    """Host overhead of tiny eager models of `model_types` (default: all) on GPU 0 and, with two
    GPUs, accelerate's hook time."""
    def run(log: Log) -> tuple[dict, dict]:
        import torch
        from estimator.calibrate.host import HOST_FAMILIES, dispatch_overhead_us, time_host_overhead
        types = tuple(model_types) or HOST_FAMILIES
        dev = torch.device("cuda", 0)
        with torch.cuda.device(dev):
            host = time_host_overhead(dev, types, log=log)
        return host, dispatch_overhead_us(types, log=log) if torch.cuda.device_count() >= 2 else {}
    return run


def session_model_types(models: Sequence[str]) -> tuple[str, ...]:
    """The model types of the session's models, whose host overhead the calibration times."""
    from bench.cases import modelled
    from estimator.model import load_model
    return tuple(sorted({load_model(m).model_type for m in modelled(models)}))


def progress_log(config: Any) -> Log:
    """One line per calibration stage on the terminal, past pytest's output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def log(message: str) -> None:
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture else nullcontext():
            reporter.write_line(f"bench calibration: {message}")
    return log


def session_profile(config: Any, gpu_name: str | None, gpu_count: int, device: DeviceSpec | None) -> Resolved:
    """The session's profile from the bench options (GPU when `device` is given, else the CPU)."""
    from .plugin import get_bench_config
    cfg = get_bench_config(config)
    log = progress_log(config)
    cache = ProfileCache(cache_root(), this_machine(gpu_name, gpu_count), log)
    types = session_model_types(cfg.models)
    if device is None and not cfg.profile:
        from .cpu_case import calibration   # one thread, the probe timed around it
        return cpu_session_profile(cfg.calibrate, calibration(full_calibration("cpu", types)), log)
    return resolve(cfg.calibrate, cfg.profile or None, device, cache,
                   full_calibration("cuda" if device is not None else "cpu", types), host_calibration(types), log,
                   types)


def host_used(prof: Profile, spec: ModelSpec) -> dict[str, float]:
    """The host times an estimate of `spec` used (this machine's when measured here), looked up
    under the spec's host keys (``spec.arch.host_keys(spec)``: a MoE model's experts
    implementation has keys of its own): a recorded row keeps them, so the CI gate re-estimates
    it with its own machine's host."""
    model_type, family = spec.arch.host_keys(spec)
    per_layer_us, fixed_us = prof.host_times(model_type, family)
    return {"per_layer_us": per_layer_us, "fixed_us": fixed_us,
            "dispatch_hook_us": prof.dispatch_hook_us(model_type, family)}
