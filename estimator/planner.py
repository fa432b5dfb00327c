"""The deployment planner: what should I rent to serve a model at a latency and throughput target?

    from estimator import plan
    p = plan("meta-llama/Llama-3.1-70B", input_tokens=2000, output_tokens=500, ttft_ms=1000, tpot_ms=50)
    p.meeting()[0].device, p.meeting()[0].usd_per_million_tokens

What is searched, for each model x device x dtype (default: the model's own, bfloat16, float16):

- GPU counts (default 1, 2, 4, 8), each split into LAYOUTS of `stages` x `replicas`: one replica is
  ``model.generate`` on one GPU or a pipeline over `stages` GPUs (accelerate's device map), the
  only multi-GPU generation the estimator models (tensor / data parallel generation is refused).
  Data parallel is priced as `replicas` independent copies of that replica, each serving its own
  requests: throughput multiplies by `replicas`, TTFT, TPOT and memory per GPU are the replica's.
  That assumes requests spread evenly and no shared cost between the copies (a load balancer's
  own latency is not counted).
- Batch = requests in flight per replica, all started together (``generate`` of `batch` prompts of
  `input_tokens`, `output_tokens` new tokens each; static batching: TTFT is the prefill of the whole
  batch). `concurrency` N is the least number of requests the deployment holds at once: each
  replica's batch starts at ceil(N / replicas), then doubles (powers of two) up to `max_batch`.
  Costs assume every batch is kept full. More replicas than needed are not searched: once a
  replica count meets every target, larger ones (same cost per token, more GPUs rented) are
  skipped, and so are larger ones that would fail the same way at the same batch.

Pruning (a few estimates per layout, not one per batch): weights alone (parameters x dtype bytes /
stages) above the device's usable memory rule a stage count out with no estimate; peak memory,
TTFT and TPOT all grow with the batch, so the doubling stops at the first batch that does not fit
or misses a latency target, and a layout whose first batch misses one fails there. Every figure
is the estimate's (point value; its 10-90 % range beside it); cost per million generated tokens =
usd_per_gpu_hour x gpus / (3600 x throughput) x 1e6, throughput counting generated tokens of all
replicas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from .api import Estimate, estimate
from .device import GB, DeviceSpec, get_device, list_devices
from .errors import EstimatorError
from .model import ModelSpec, load_model
from .prices import Price, prices_for
from .workload import DTYPE_BYTES, Workload, normalize_dtype

PLAN_GPUS = (1, 2, 4, 8)
MAX_BATCH = 4096           # requests per replica: the doubling stops here
MAX_PLAN_GPUS = 64         # GPUs per deployment: 8 nodes of 8; more is a typo, not a plan
REASONS = ("refused", "does_not_fit", "misses_ttft", "misses_tpot", "misses_throughput")
REASON_TEXT = {"refused": "refused by the estimator", "does_not_fit": "does not fit", "misses_ttft": "misses TTFT",
               "misses_tpot": "misses TPOT", "misses_throughput": "misses throughput"}
RISK_NAMES = {"does_not_fit": "memory", "misses_ttft": "ttft", "misses_tpot": "tpot",
              "misses_throughput": "throughput"}
Range = tuple[float, float]


@dataclass(frozen=True)
class Targets:
    """What a deployment must meet; None: no target. Throughput counts generated tokens per second
    over all replicas."""

    input_tokens: int
    output_tokens: int
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    min_throughput_tokens_per_s: float | None = None
    concurrency: int = 1

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "concurrency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EstimatorError(f"{name} must be a positive integer, got {value!r}")
        for name in ("ttft_ms", "tpot_ms", "min_throughput_tokens_per_s"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise EstimatorError(f"{name} must be a positive finite number, got {value!r}")
        if self.tpot_ms is not None and self.output_tokens < 2:
            raise EstimatorError("a TPOT target needs output_tokens of at least 2: one generated token has no "
                                 "time per output token")


@dataclass(frozen=True)
class PlanCandidate:
    """One layout of one model on one device at one dtype, at its cheapest batch that meets the
    targets (meets=True), else at the batch that came closest, with the reasons it fails."""

    model: str
    device: str
    device_key: str
    dtype: str
    gpus: int                      # stages x replicas
    stages: int                    # GPUs of one replica: 1, or a pipeline over that many
    replicas: int                  # independent copies (data parallel)
    batch: int                     # requests in flight per replica
    meets: bool
    reasons: tuple[str, ...]       # REASONS it fails; () when it meets the targets
    detail: str                    # the reasons in words, with the figures that miss
    usd_per_gpu_hour: float
    usd_per_million_tokens: float | None = None        # generated tokens; None without an estimate
    usd_per_million_tokens_range: Range | None = None
    throughput_tokens_per_s: float | None = None       # generated tokens/s, all replicas
    throughput_tokens_per_s_range: Range | None = None
    ttft_ms: float | None = None
    ttft_ms_range: Range | None = None
    tpot_ms: float | None = None
    tpot_ms_range: Range | None = None
    memory_gb: float | None = None                     # busiest GPU (a floor: weights alone, when unestimated)
    memory_gb_range: Range | None = None
    memory_usable_gb: float = 0.0
    shortfall: float = 0.0         # largest (figure / target - 1) over the targets missed; inf: refused
    at_risk: tuple[str, ...] = ()  # targets the unfavourable end of a 10-90 % range misses

    @property
    def concurrency(self) -> int:
        return self.batch * self.replicas

    @property
    def layout(self) -> str:
        """'1 GPU', 'pipeline 4', '2 x pipeline 4', '8 x 1 GPU'."""
        one = "1 GPU" if self.stages == 1 else f"pipeline {self.stages}"
        return one if self.replicas == 1 else f"{self.replicas} x {one}"


@dataclass(frozen=True)
class Plan:
    """Every layout searched (`candidates`, one each), every batch estimated (`points`)."""

    targets: Targets
    candidates: tuple[PlanCandidate, ...]
    points: tuple[PlanCandidate, ...]
    estimates: int                 # estimator calls made
    prices: Mapping[str, Price] = field(default_factory=dict)
    skipped: int = 0               # replica layouts not searched: more copies than needed, or failing alike

    def meeting(self) -> list[PlanCandidate]:
        """Candidates that meet every target, cheapest first (then fewer GPUs, lower TPOT)."""
        return sorted((c for c in self.candidates if c.meets),
                      key=lambda c: (c.usd_per_million_tokens, c.gpus, c.tpot_ms or 0.0))

    def failing(self) -> list[PlanCandidate]:
        """Candidates that miss a target: those that fit first, then those that do not, then
        refusals; within each, the smallest shortfall first."""
        return sorted((c for c in self.candidates if not c.meets),
                      key=lambda c: ("refused" in c.reasons, "does_not_fit" in c.reasons, c.shortfall,
                                     c.usd_per_million_tokens or math.inf))

    def reason_counts(self) -> dict[str, int]:
        """How many failing candidates each reason applies to (a candidate may have several)."""
        return {r: n for r in REASONS if (n := sum(r in c.reasons for c in self.candidates))}


def _positive_ints(values: Iterable[int], name: str) -> tuple[int, ...]:
    out = tuple(dict.fromkeys(values))
    bad = [v for v in out if isinstance(v, bool) or not isinstance(v, int) or v < 1]
    if bad or not out:
        raise EstimatorError(f"{name} must be positive integers, got {bad[0] if bad else 'none'!r}")
    return out


def layouts(gpu_counts: Sequence[int]) -> list[tuple[int, int]]:
    """(stages, replicas) for every GPU count: each divisor of the count as the stages."""
    return [(s, g // s) for g in gpu_counts for s in range(1, g + 1) if g % s == 0]


def default_dtypes(spec: ModelSpec) -> tuple[str, ...]:
    """The model's own dtype, then bfloat16 and float16."""
    return tuple(dict.fromkeys([spec.dtype or "float16", "bfloat16", "float16"]))


class _Search:
    """One model x device x dtype: the estimates, memoized per (stages, batch)."""

    def __init__(self, spec: ModelSpec, dev: DeviceSpec, dtype: str, price: Price, targets: Targets,
                 profile: str | None) -> None:
        self.spec, self.dev, self.dtype, self.price, self.t, self.profile = spec, dev, dtype, price, targets, profile
        self.memo: dict[tuple[int, int], Estimate | str] = {}
        self.weights_gb = spec.weight_bytes(DTYPE_BYTES[dtype]) / GB

    def estimate(self, stages: int, batch: int) -> Estimate | str:
        key = (stages, batch)
        if key not in self.memo:
            w = Workload(batch=batch, seq=self.t.input_tokens, dtype=self.dtype, gpus=stages, parallel="pipeline",
                         new_tokens=self.t.output_tokens)
            try:
                self.memo[key] = estimate(self.spec, self.dev, w, self.profile)
            except EstimatorError as exc:
                self.memo[key] = str(exc)
            except OverflowError:
                self.memo[key] = "the workload is too large to estimate: its sizes overflow float arithmetic"
        return self.memo[key]

    def head(self, stages: int, replicas: int, batch: int) -> dict:
        return dict(model=self.spec.name, device=self.dev.name, device_key=self.dev.key, dtype=self.dtype,
                    gpus=stages * replicas, stages=stages, replicas=replicas, batch=batch,
                    usd_per_gpu_hour=self.price.usd_per_gpu_hour, memory_usable_gb=self.dev.memory_usable_gb)

    def layout(self, stages: int, replicas: int, max_batch: int) -> tuple[PlanCandidate, list[PlanCandidate]]:
        """The layout's candidate and every batch point it estimated."""
        first = -(-self.t.concurrency // replicas)
        floor_gb = self.weights_gb / stages
        if first > max_batch or floor_gb > self.dev.memory_usable_gb:
            detail = (f"needs a batch of {first} per replica, above the search's {max_batch}" if first > max_batch
                      else f"does not fit: the weights alone need {floor_gb:.1f} GB per GPU, "
                           f"{self.dev.memory_usable_gb:g} GB usable")
            miss = PlanCandidate(**self.head(stages, replicas, first), meets=False,
                                 reasons=("refused",) if first > max_batch else ("does_not_fit",), detail=detail,
                                 memory_gb=floor_gb, shortfall=floor_gb / self.dev.memory_usable_gb - 1
                                 if first <= max_batch else math.inf)
            return miss, []
        points: list[PlanCandidate] = []
        batch = first
        while batch <= max_batch:
            point = self.judge(stages, replicas, batch)
            points.append(point)
            if set(point.reasons) - {"misses_throughput"}:   # grows with the batch: no larger one passes
                break
            batch = 1 << batch.bit_length()   # the next power of two above
        ok = [p for p in points if p.meets]
        if ok:
            return min(ok, key=lambda p: p.usd_per_million_tokens), points
        slow = [p for p in points if p.reasons == ("misses_throughput",)]
        return (max(slow, key=lambda p: p.throughput_tokens_per_s) if slow else points[0]), points

    def judge(self, stages: int, replicas: int, batch: int) -> PlanCandidate:
        est, head = self.estimate(stages, batch), self.head(stages, replicas, batch)
        if isinstance(est, str):
            return PlanCandidate(**head, meets=False, reasons=("refused",), detail=est, shortfall=math.inf)
        t, usable = self.t, self.dev.memory_usable_gb
        tput = replicas * est.throughput_tokens_per_s
        tput_range = None
        if est.runtime_ms_range is not None:
            low_ms, high_ms = est.runtime_ms_range
            tput_range = (tput * est.runtime_ms / high_ms, tput * est.runtime_ms / low_ms)
        checks = [  # reason, figure, limit, the figure's unfavourable end of its range, larger is worse, unit
            ("does_not_fit", est.memory_gb, usable, _end(est.memory_gb_range, 1), True, "GB per GPU"),
            ("misses_ttft", est.ttft_ms, t.ttft_ms, _end(est.ttft_ms_range, 1), True, "ms TTFT"),
            ("misses_tpot", est.tpot_ms, t.tpot_ms, _end(est.tpot_ms_range, 1), True, "ms TPOT"),
            ("misses_throughput", tput, t.min_throughput_tokens_per_s, _end(tput_range, 0), False, "tokens/s")]
        reasons, words, shortfall, risk = [], [], 0.0, []
        for reason, value, limit, worst, larger_worse, unit in checks:
            if limit is None or value is None:
                continue
            ratio = value / limit if larger_worse else (limit / value if value > 0 else math.inf)
            if ratio > 1:
                reasons.append(reason)
                words.append(f"{REASON_TEXT[reason]}: {value:,.4g} {unit} {'>' if larger_worse else '<'} {limit:,.4g}")
                shortfall = max(shortfall, ratio - 1)
            elif worst is not None and (worst > limit if larger_worse else worst < limit):
                risk.append(RISK_NAMES[reason])
        hourly = self.price.usd_per_gpu_hour * stages * replicas
        cost = _cost(hourly, tput)
        cost_range = None if tput_range is None else (_cost(hourly, tput_range[1]), _cost(hourly, tput_range[0]))
        return PlanCandidate(
            **head, meets=not reasons, reasons=tuple(reasons), detail="; ".join(words), usd_per_million_tokens=cost,
            usd_per_million_tokens_range=cost_range, throughput_tokens_per_s=tput, throughput_tokens_per_s_range=tput_range,
            ttft_ms=est.ttft_ms, ttft_ms_range=_pair(est.ttft_ms_range), tpot_ms=est.tpot_ms,
            tpot_ms_range=_pair(est.tpot_ms_range), memory_gb=est.memory_gb, memory_gb_range=_pair(est.memory_gb_range),
            shortfall=shortfall, at_risk=tuple(risk))


def _end(pair: Sequence[float] | None, index: int) -> float | None:
    return None if pair is None else pair[index]


def _pair(pair: Sequence[float] | None) -> Range | None:
    return None if pair is None else (pair[0], pair[1])


def _cost(usd_per_hour: float, tput: float) -> float | None:
    """Dollars per million generated tokens of `usd_per_hour` at `tput` tokens/s."""
    if tput <= 0 or not math.isfinite(tput):
        return None
    return usd_per_hour / (3600 * tput) * 1e6


def plan(models: str | ModelSpec | Sequence[str | ModelSpec], input_tokens: int, output_tokens: int, *,
         ttft_ms: float | None = None, tpot_ms: float | None = None, min_throughput_tokens_per_s: float | None = None,
         concurrency: int = 1, devices: Sequence[str | DeviceSpec] | None = None,
         gpu_counts: Sequence[int] = PLAN_GPUS, dtypes: Sequence[str] | None = None,
         prices: str | Mapping | None = None, max_batch: int = MAX_BATCH, profile: str | None = None) -> Plan:
    """Search every model x device x dtype x layout x batch (see the module docstring) and judge
    each layout against the targets. `devices`: names (default: the whole database); `prices`:
    a prices file or a mapping device -> dollars per GPU-hour (default: estimator/prices.json);
    `dtypes`: default each model's own, bfloat16 and float16. Bad input raises EstimatorError."""
    targets = Targets(input_tokens, output_tokens, ttft_ms, tpot_ms, min_throughput_tokens_per_s, concurrency)
    counts = _positive_ints(gpu_counts, "gpu counts")
    if max(counts) > MAX_PLAN_GPUS:
        raise EstimatorError(f"gpu counts above {MAX_PLAN_GPUS} are not searched (got {max(counts)}): each count "
                             f"is split into every replicas x stages layout")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise EstimatorError(f"max_batch must be a positive integer, got {max_batch!r}")
    names = [models] if isinstance(models, (str, ModelSpec)) else list(models)
    if not names:
        raise EstimatorError("plan needs at least one model")
    specs = list({s.name: s for s in (load_model(m) if isinstance(m, str) else m for m in names)}.values())
    devs = list({d.key: d for d in (list_devices() if devices is None else
                                    [get_device(d) if isinstance(d, str) else d for d in devices])}.values())
    if not devs:
        raise EstimatorError("plan needs at least one device")
    chosen = None if dtypes is None else tuple(dict.fromkeys(normalize_dtype(d) for d in dtypes))
    if chosen == ():
        raise EstimatorError("plan needs at least one dtype")
    table = prices_for(devs, prices)
    candidates, points, calls, skipped = [], [], 0, 0
    for spec in specs:
        for dev in devs:
            for dtype in chosen or default_dtypes(spec):
                search = _Search(spec, dev, dtype, table[dev.key], targets, profile)
                done: dict[int, PlanCandidate] = {}   # stages -> the last candidate with fewer replicas
                for stages, replicas in sorted(layouts(counts)):
                    if _needless(done.get(stages), targets, replicas):
                        skipped += 1
                        continue
                    best, tried = search.layout(stages, replicas, max_batch)
                    done[stages] = best
                    candidates.append(best)
                    points += tried
                calls += len(search.memo)
    return Plan(targets, tuple(candidates), tuple(points), calls, table, skipped)


def _needless(fewer: PlanCandidate | None, targets: Targets, replicas: int) -> bool:
    """Whether `replicas` copies of a replica need no search, given its candidate with fewer copies:
    that one meets every target (more copies cost the same per token and rent more GPUs), or it
    fails for a reason other than throughput at the batch this count would start at too."""
    if fewer is None:
        return False
    if fewer.meets:
        return True
    same_start = fewer.batch == -(-targets.concurrency // replicas)
    return same_start and bool(set(fewer.reasons) - {"misses_throughput"})
