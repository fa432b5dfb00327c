"""model.generate over accelerate's pipeline placement (2, 4, 8 GPUs): the prefill and every decode
step walk the same stages as a forward pass (hidden-state copies, accelerate's hooks), memory per
GPU over the call, energy of every GPU; data / tensor parallel generation refused."""
from __future__ import annotations

import pytest

from estimator import Workload, estimate, load_model
from estimator.decode import GENERATE_GROUP, decode_ops
from estimator.device import GB, get_device
from estimator.errors import EstimatorError
from estimator.generation import generation_bytes
from estimator.host_model import generate_price
from estimator.memory import CUBLAS_WORKSPACE_BYTES
from estimator.profile import profile_for
from estimator.schedule import pipeline_split, placed_step_pass

H200 = "H200"
MODELS = ("facebook/opt-1.3b", "AICrossSim/clm-1.1b", "Qwen/Qwen2.5-0.5B", "google/gemma-2-2b",
          "mistralai/Mistral-7B-v0.1")
NEW = 16


def _case(model: str, gpus: int, batch: int = 1, seq: int = 128):
    spec = load_model(model)
    dev = get_device(H200)
    w = Workload(batch, seq, spec.dtype or "float16", gpus=gpus, new_tokens=NEW)
    return spec, dev, w, estimate(spec, dev, w)


@pytest.mark.parametrize("gpus", (2, 4, 8))
@pytest.mark.parametrize("model", MODELS)
def test_a_pipeline_generate_estimate(model, gpus):
    spec, dev, w, est = _case(model, gpus)
    assert est.workload["parallel"] == "pipeline" and est.workload["gpus"] == gpus
    assert len(est.memory_gb_per_gpu) == gpus and est.memory_gb == max(est.memory_gb_per_gpu)
    prefill, decode = est.phases
    assert (prefill["steps"], decode["steps"]) == (1, NEW - 1)
    assert est.ttft_ms > 0 and est.tpot_ms > 0
    assert est.generate_ms == pytest.approx(est.ttft_ms + (NEW - 1) * est.tpot_ms)
    assert est.ttft_ms_range is None or est.ttft_ms_range[0] <= est.ttft_ms <= est.ttft_ms_range[1]


@pytest.mark.parametrize("gpus", (2, 4, 8))
@pytest.mark.parametrize("model", ("facebook/opt-1.3b", "AICrossSim/clm-1.1b"))
def test_ttft_and_tpot_add_the_stage_transfers_and_hooks(model, gpus):
    """Host-bound (1 x 128): the host adds accelerate's hook per decoder layer and per copy of the
    hidden state (stage boundaries and the logits back to GPU 0), each step; the wall time adds
    that and the blocking copies, but not much more."""
    spec, dev, w, est = _case(model, gpus)
    one = estimate(spec, dev, Workload(w.batch, w.seq, w.dtype, new_tokens=NEW))
    prof = profile_for(dev)
    place = pipeline_split(spec, w, dev)
    hook_ms = prof.dispatch_hook_us(spec.model_type, spec.family) / 1e3
    assert hook_ms > 0
    copies = place.boundaries + (place.head_gpu != 0)
    per_step_host = (spec.layers + copies) * hook_ms
    assert est.phases[0]["host_ms"] - one.phases[0]["host_ms"] == pytest.approx(per_step_host)
    assert est.phases[1]["host_ms"] - one.phases[1]["host_ms"] == pytest.approx(per_step_host * (NEW - 1))
    for extra in (est.ttft_ms - one.ttft_ms, est.tpot_ms - one.tpot_ms):
        assert per_step_host <= extra <= 1.5 * per_step_host


def test_a_decode_step_moves_one_position_between_stages():
    spec = load_model("AICrossSim/clm-1.1b")
    dev, prof = get_device(H200), profile_for(get_device(H200))
    w = Workload(8, 512, "bfloat16", gpus=4, new_tokens=NEW)
    place = pipeline_split(spec, w, dev)
    host, _ = generate_price(prof, spec, 2)
    r = placed_step_pass(spec, dev, prof, w, decode_ops(spec, 8, 520, 2), 1, place, host.step_us,
                         host.step_per_layer_us)
    comm = next(g for g in r.groups if g.group == "communication")
    e = 2
    small = 2 * 1 * spec.arch.rotary_copy_dim(spec) * e   # rotary cos/sin of one position
    off_rotary = sum(n for g, n in enumerate(place.layers_per_gpu) if g != place.rotary_gpu)
    off_embed = sum(n for g, n in enumerate(place.layers_per_gpu) if g != place.embed_gpu)
    hidden = place.boundaries * 8 * spec.hidden * e
    logits = 8 * spec.vocab * e if place.head_gpu != 0 else 0
    assert comm.bytes == pytest.approx(hidden + logits + (2 * off_rotary + off_embed) * small)
    # the sampling kernels run on GPU 0, where accelerate returns the logits: its last kernel ends the step
    gpu0 = next(t for t in r.gpu_times if t.gpu == 0)
    assert gpu0.last_us == max(t.last_us for t in r.gpu_times)
    assert any(g.group == GENERATE_GROUP for g in r.groups)
    # every stage ran kernels: the K/V cache of each layer on its own GPU
    assert {t.gpu for t in r.gpu_times} == {g for g, n in enumerate(place.layers_per_gpu) if n} | {0}


@pytest.mark.parametrize("gpus", (2, 4, 8))
@pytest.mark.parametrize("model", ("facebook/opt-6.7b", "mistralai/Mistral-7B-v0.1"))
def test_memory_per_gpu_sums_to_one_gpu_plus_the_replicated(model, gpus):
    """Weights and K/V cache split over the stages; each GPU in use adds a cuBLAS workspace and its
    own working set (small at 1 x 128)."""
    spec, dev, w, est = _case(model, gpus)
    one = estimate(spec, dev, Workload(w.batch, w.seq, w.dtype, new_tokens=NEW))
    used = pipeline_split(spec, w, dev).gpus_used
    replicated_gb = (used - 1) * CUBLAS_WORKSPACE_BYTES / GB
    assert sum(est.memory_gb_per_gpu) - one.memory_gb >= replicated_gb
    assert sum(est.memory_gb_per_gpu) == pytest.approx(one.memory_gb + replicated_gb, rel=0.01)
    assert est.memory_gb < one.memory_gb / used * 1.5


def test_the_pipeline_cache_is_on_the_stages_gpus():
    """A long cache: each GPU's peak grows by the K/V of its own layers only."""
    spec = load_model("AICrossSim/clm-1.1b")
    dev = get_device(H200)
    w = Workload(16, 128, "bfloat16", gpus=4, new_tokens=1100)
    place = pipeline_split(spec, w, dev)
    short = generation_bytes(spec, Workload(16, 128, "bfloat16", gpus=4, new_tokens=600), place)
    long = generation_bytes(spec, w, place)
    kv_per_layer_token = 2 * spec.kv_heads * spec.head_dim * 2
    for g, n in enumerate(place.layers_per_gpu):   # (+ torch.cat's old K of one layer, 1/(2n) of it)
        assert long[g] - short[g] == pytest.approx(n * 16 * 500 * kv_per_layer_token, rel=1 / (2 * n) + 0.01)


def test_one_gpu_generation_bytes_unchanged_by_the_placement_argument():
    spec = load_model("facebook/opt-1.3b")
    w = Workload(4, 512, new_tokens=32)
    assert estimate(spec, H200, w).memory_gb_per_gpu == [b / GB for b in generation_bytes(spec, w)]


@pytest.mark.parametrize("gpus", (2, 8))
def test_energy_counts_every_gpu(gpus):
    """Each GPU draws power over the whole call, waiting for its stage or not."""
    spec, dev, w, est = _case("AICrossSim/clm-1.1b", gpus)
    one = estimate(spec, dev, Workload(w.batch, w.seq, w.dtype, new_tokens=NEW))
    power = profile_for(dev).power
    hot_idle_w = power.idle_w if power.hot_idle_w is None else power.hot_idle_w
    joules = est.generate_energy_j_per_token * w.batch * NEW
    assert joules >= gpus * hot_idle_w * est.generate_ms / 1e3
    assert joules == pytest.approx(sum(p["energy_j"] for p in est.phases))
    assert joules > one.generate_energy_j_per_token * w.batch * NEW + (gpus - 1) * hot_idle_w * one.generate_ms / 1e3


@pytest.mark.parametrize("parallel", ("data", "tensor"))
def test_data_and_tensor_generation_refused_in_one_line(parallel):
    with pytest.raises(EstimatorError) as exc:
        estimate("AICrossSim/clm-1.1b", H200, Workload(8, 128, gpus=2, parallel=parallel, new_tokens=4))
    text = str(exc.value)
    assert "\n" not in text and f"{parallel} parallel over 2 GPUs" in text and "pipeline" in text
