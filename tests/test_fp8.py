"""FP8 weights (quantization_config quant_method "fp8", estimator/fp8.py) against transformers 5.24's
FineGrainedFP8 on the meta device: the quantizer's own module replacement (FP8Linear, FP8Experts,
the modules_to_not_convert) run on the CPU, its parameter and buffer bytes against the spec's
weight bytes; the device rule (dequantized below compute capability 8.9), the GEMM pricing and the
one-line refusals of what is not modelled."""
from __future__ import annotations

import json

import pytest

from estimator import Workload, estimate, fp8
from estimator.errors import EstimatorError, UnmodelledConfig
from estimator.model import ZOO_DIR, ModelSpec
from estimator.ops import forward_ops

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("quiet_transformers")

BLOCK = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}


def zoo(name: str, layers: int | None = None, **change) -> dict:
    cfg = json.loads((ZOO_DIR / name / "config.json").read_text()) | change
    if layers is not None:
        cfg["num_hidden_layers"] = layers
    return cfg


def hf_quantized(cfg: dict):
    """The model transformers' FP8 quantizer prepares before loading a pre-quantized checkpoint."""
    from transformers.quantizers.auto import AutoHfQuantizer, AutoQuantizationConfig
    conf = transformers.AutoConfig.for_model(**{k: v for k, v in cfg.items() if k != "quantization_config"})
    quantizer = AutoHfQuantizer.from_config(AutoQuantizationConfig.from_dict(cfg["quantization_config"]),
                                            pre_quantized=True)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(conf, dtype=torch.bfloat16)
    quantizer.preprocess_model(model, dtype=torch.bfloat16)
    return model


CASES = [
    ("deepseek-ai/DeepSeek-V3", 4, BLOCK),                    # MLA with q LoRA, 3 dense layers, experts + shared
    ("deepseek-ai/DeepSeek-V2-Lite", 3, BLOCK),               # q_proj (no q LoRA), 1408-wide experts (11 blocks)
    ("deepseek-ai/DeepSeek-V2", 2, BLOCK | {"modules_to_not_convert": ["lm_head", "model.layers.0.mlp",
                                                                       "self_attn.kv_b_proj"]}),
    ("zai-org/GLM-4.5-Air", 2, BLOCK | {"scale_fmt": "ue8m0"}),
    ("Qwen/Qwen3-0.6B", 3, BLOCK),                            # tied head: never converted
    ("Qwen/Qwen3-30B-A3B", 2, BLOCK),
    ("meta-llama/Llama-3.1-8B", 2, BLOCK | {"modules_to_not_convert": ["model.layers.1"]}),   # lm_head converted
    ("mistralai/Mixtral-8x7B-v0.1", 2, BLOCK | {"weight_block_size": None}),                   # one scale per tensor
]


@pytest.mark.parametrize("name, layers, quant", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_weight_bytes_like_transformers_fp8_model(name, layers, quant):
    """Parameters (FP8 weights, float32 or ue8m0 scales, bf16 rest) and buffers of transformers'
    quantized meta model against spec.weight_bytes(2): exact but for the float32 router weights
    the estimator counts at the model dtype, as for 16-bit weights (within 0.1 % with them and
    with the rotary and router-bias buffers, a few KB)."""
    cfg = zoo(name, layers) | {"quantization_config": quant}
    spec = ModelSpec.from_hf_config(cfg)
    assert spec.fp8 is not None
    model = hf_quantized(cfg)

    def nbytes(module) -> tuple[int, int]:   # (bytes, of which the float32 routers' beyond 2 bytes)
        ps = list(module.named_parameters())
        return (sum(p.numel() * p.element_size() for _, p in ps),
                sum(p.numel() * 2 for n, p in ps if n.endswith("gate.weight") and p.dtype == torch.float32))

    params, router = nbytes(model)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert any(p.dtype == torch.float8_e4m3fn for p in model.parameters())
    got = spec.weight_bytes(2)
    assert got == params - router, (got, params - router)
    assert abs(got - (params + buffers)) <= 1e-3 * (params + buffers)
    # the layers one by one, as placement sizes them
    each = spec.layer_weight_bytes_each(2)
    for i, layer in enumerate(model.model.layers):
        hf, hf_router = nbytes(layer)
        assert each[i] == hf - hf_router, (i, each[i], hf - hf_router)
    head = model.lm_head.weight
    assert (head.dtype == torch.float8_e4m3fn) == fp8.head_converted(spec)


def test_fp8_on_hopper_halves_the_weights_and_dequantizes_on_ampere():
    cfg = zoo("deepseek-ai/DeepSeek-V2-Lite")
    bf16, q = ModelSpec.from_hf_config(cfg, name="bf16"), ModelSpec.from_hf_config(cfg | {"quantization_config": BLOCK},
                                                                                    name="fp8")
    assert 0.5 < q.weight_bytes(2) / bf16.weight_bytes(2) < 0.55
    w = Workload(batch=1, seq=512, dtype="bfloat16")
    h200, h200_q = estimate(bf16, "H200", w), estimate(q, "H200", w)
    assert h200_q.memory_gb < h200.memory_gb - 0.4 * bf16.weight_bytes(2) / 1e9
    assert any("finegrained-fp8" in n for n in h200_q.notes) and not any("fp8" in n for n in h200.notes)
    a100, a100_q = estimate(bf16, "A100", w), estimate(q, "A100", w)
    assert a100_q.memory_gb == a100.memory_gb and a100_q.runtime_ms == a100.runtime_ms
    assert any("dequantizes" in n for n in a100_q.notes)
    gen = Workload(batch=1, seq=128, dtype="bfloat16", new_tokens=8)
    def decode_gpu_ms(spec):   # decode reads half the weights (its time is the host's at this shape)
        return next(p["gpu_busy_ms"] for p in estimate(spec, "H200", gen).phases if p["phase"] == "decode")
    assert decode_gpu_ms(q) < 0.8 * decode_gpu_ms(bf16)


def test_fp8_gemms_read_one_byte_weights():
    cfg = zoo("deepseek-ai/DeepSeek-V2-Lite", 2)
    bf16 = forward_ops(ModelSpec.from_hf_config(cfg), 1, 16, 2)
    q_spec = ModelSpec.from_hf_config(cfg | {"quantization_config": BLOCK | {"modules_to_not_convert": ["q_proj"]}})
    q = forward_ops(q_spec, 1, 16, 2)
    for a, b in zip(bf16.layers, q.layers):
        for x, y in zip(a.ops, b.ops):
            assert x.name == y.name and x.flops == y.flops
            if y.pattern == fp8.PATTERN:
                m, n, k = y.shape if y.kind == "gemm" else (0, *y.shape[2:])
                experts = y.shape[0] if y.kind == "grouped_gemm" else 1
                assert x.bytes - y.bytes == pytest.approx(experts * (n * k - 4 * -(-n // 128) * -(-k // 128)))
        fp8_names = {op.name for op in b.ops if op.pattern == fp8.PATTERN}
        assert "q_proj" not in fp8_names and "router" not in fp8_names and "kv_b_proj" in fp8_names
    assert q.post[-1].pattern == fp8.PATTERN   # untied lm_head: converted (modules_to_not_convert given without it)


@pytest.mark.parametrize("quant, text", [
    ({"activation_scheme": "static"}, "activation_scheme 'static'"),
    ({"expert_dtype": "fp4"}, "expert_dtype"),
    ({"modules_to_convert": ["embed_tokens"]}, "modules_to_convert"),
    ({"weight_block_size": [128]}, "weight_block_size"),
])
def test_fp8_variants_not_modelled_are_refused_in_one_line(quant, text):
    with pytest.raises(UnmodelledConfig) as err:
        ModelSpec.from_hf_config(zoo("deepseek-ai/DeepSeek-V3") | {"quantization_config": BLOCK | quant})
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("quantized configs are not modelled: quant_method 'fp8'") and text in msg


@pytest.mark.parametrize("name", ["facebook/opt-1.3b", "openai-community/gpt2", "microsoft/Phi-3.5-MoE-instruct",
                                  "ibm-granite/granite-3.1-8b-instruct",
                                  "google/gemma-3-4b-it"])
def test_fp8_of_a_family_without_fp8_modules_is_refused_in_one_line(name):
    with pytest.raises(UnmodelledConfig) as err:
        ModelSpec.from_hf_config(zoo(name) | {"quantization_config": BLOCK}, name=name)
    assert "\n" not in str(err.value) and "quant_method 'fp8'" in str(err.value)


def test_dequantize_true_is_the_unquantized_model():
    cfg = zoo("Qwen/Qwen3-0.6B")
    spec = ModelSpec.from_hf_config(cfg | {"quantization_config": BLOCK | {"dequantize": True}})
    assert spec.fp8 is None and spec.weight_bytes(2) == 2 * spec.param_count()


def test_other_quant_methods_stay_refused():
    for q in ({"quant_method": "gptq", "bits": 4}, {"quant_method": "fbgemm_fp8"}, {"quant_method": "awq", "bits": 4}):
        with pytest.raises(EstimatorError) as err:
            ModelSpec.from_hf_config(zoo("deepseek-ai/DeepSeek-V3") | {"quantization_config": q})
        assert "\n" not in str(err.value) and str(err.value).startswith("quantized configs are not modelled")
