"""FP8 weights (quantization_config quant_method "fp8"), as transformers 5.24's FineGrainedFP8 loads
and runs them (quantizers/quantizer_finegrained_fp8.py, integrations/finegrained_fp8.py).

Memory. A pre-quantized checkpoint replaces every ``nn.Linear`` (exactly that type) by FP8Linear
and every MoE ``experts`` module by FP8Experts, except the modules_to_not_convert:
- FP8Linear: ``weight`` float8_e4m3fn (out x in, 1 byte), ``weight_scale_inv`` one scale per
  weight_block_size block (ceil(out / bn) x ceil(in / bk); per-tensor without a block size: one),
  float32 (``scale_fmt`` "ue8m0": 1 byte); a bias is float32 (FP8Linear makes it with torch.empty
  in the default dtype: what transformers' quantized meta model holds).
- FP8Experts: gate_up_proj (E x 2f x h) and down_proj (E x h x f) in float8 with their block
  scales (gate_up's scale rows at least 2).
- Not converted: the skip list (the config's modules_to_not_convert, else transformers' default,
  the LM head), embeddings, norms, routers (custom modules, not nn.Linear) and anything else that
  is not an nn.Linear: they keep the model dtype.
The families say which of their modules are nn.Linear / experts (``Family.fp8_linears``); a
family that does not is refused in one line.

Devices. transformers dequantizes an FP8 checkpoint to the model dtype on load when the GPU is
older than compute capability 8.9 (Ampere) or there is none (``validate_environment``): such an
estimate prices the unquantized weights, and says so.

Runtime (Hopper, Ada). FP8Linear.forward calls fp8_linear: DeepGEMM when its Hub kernel
(kernels-community/deep-gemm) loads and the blocks are 128 x 128, else the Triton kernel of
kernels-community/finegrained-fp8 (activation quantization fused into the matmul); FP8Experts
(grouped_mm by default) runs that Triton kernel's grouped matmul. Both come through the
``kernels`` package from the Hub: without it the forward raises ImportError. Priced: the
Triton path, one kernel per linear, as the calibrated 16-bit GEMM of the same shape with the
weight read at 1 byte (plus its scales) where that GEMM is memory-bound; no FP8 tensor-core
speed-up is assumed where it is compute-bound (no FP8 kernel is calibrated).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .errors import UnmodelledConfig
from .op_builders import Op

FP8_ARCHITECTURES = ("Hopper", "Ada", "Ada Lovelace", "Blackwell")   # compute capability >= 8.9
DEFAULT_SKIP = ("lm_head",)   # get_keys_to_not_convert: the output embeddings
PATTERN = "fp8"               # Op.pattern of a GEMM over FP8 weights (cost.py)
BIAS_BYTES = 4                # FP8Linear's bias: nn.Parameter(torch.empty(out)) in the default float32


@dataclass(frozen=True)
class Fp8Weights:
    """A FineGrainedFP8Config: blocks (None: one scale per tensor), scale bytes, skip list."""
    block: tuple[int, int] | None = (128, 128)
    scale_bytes: int = 4
    skip: tuple[str, ...] = DEFAULT_SKIP


def read(cfg: dict, where: str) -> Fp8Weights | None:
    """The FP8 settings of a config's quantization_config (None: no fp8 one, or one transformers
    dequantizes on load); UnmodelledConfig, one line, for what is not modelled."""
    q = cfg.get("quantization_config")
    if not isinstance(q, dict) or q.get("quant_method") != "fp8":
        return None
    if q.get("dequantize") is True:
        return None

    def refuse(what: str) -> UnmodelledConfig:
        return UnmodelledConfig(f"quantized configs are not modelled: quant_method 'fp8' in {where} with {what}")
    scheme = q.get("activation_scheme", "dynamic")
    if not isinstance(scheme, str) or scheme.lower() != "dynamic":
        raise refuse(f"activation_scheme {scheme!r:.40} (only 'dynamic' is: transformers' grouped_mm experts "
                     "refuse 'static')")
    if q.get("expert_dtype", "fp8") != "fp8":
        raise refuse(f"expert_dtype {q.get('expert_dtype')!r:.40} (only 'fp8' is)")
    if q.get("modules_to_convert"):
        raise refuse("modules_to_convert (FP8 embeddings)")
    fmt = q.get("scale_fmt", "float")
    if fmt not in ("float", "ue8m0"):
        raise refuse(f"scale_fmt {fmt!r:.40} (transformers knows 'float' and 'ue8m0')")
    block = q.get("weight_block_size", [128, 128])
    if block is not None:
        if (not isinstance(block, list) or len(block) != 2
                or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)):
            raise refuse(f"weight_block_size {block!r:.60} (two positive integers or null)")
        block = (block[0], block[1])
    skip = q.get("modules_to_not_convert", q.get("ignored_layers"))
    if skip is None:
        skip = DEFAULT_SKIP
    elif not isinstance(skip, list) or not all(isinstance(s, str) for s in skip):
        raise refuse(f"modules_to_not_convert {skip!r:.60} (a list of module names)")
    return Fp8Weights(block, 1 if fmt == "ue8m0" else 4, tuple(skip))


@lru_cache(maxsize=4096)
def converted(name: str, skip: tuple[str, ...]) -> bool:
    """transformers' should_convert_module: a skip pattern matches from the start up to a module
    boundary, as a regex with that boundary, or as a suffix of the module name."""
    boundary = r"(?:(?<=\.)|(?=\.|$))"
    for key in skip:
        try:
            hit = re.match(rf"(?:{key}){boundary}", name)
        except re.error:
            hit = None
        if hit or name.endswith(key):
            return False
    return True


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def linear_bytes(fp8: Fp8Weights, out: int, inp: int, experts: int = 0, min_scale_rows: int = 1) -> int:
    """Bytes of one FP8 weight (out x in; `experts` > 0: one per expert) and its scales."""
    if experts:
        if fp8.block is None:
            scales = max(1, min_scale_rows)
        else:
            scales = max(_cdiv(out, fp8.block[0]), min_scale_rows) * _cdiv(inp, fp8.block[1])
        return experts * (out * inp + scales * fp8.scale_bytes)
    scales = 1 if fp8.block is None else _cdiv(out, fp8.block[0]) * _cdiv(inp, fp8.block[1])
    return out * inp + scales * fp8.scale_bytes


def on_device(fp8: Fp8Weights | None, architecture: str, kind: str = "gpu") -> bool:
    """Whether transformers keeps the weights in FP8 on this device (compute capability >= 8.9)."""
    return fp8 is not None and kind == "gpu" and architecture in FP8_ARCHITECTURES


def note(dequantized: bool, architecture: str = "") -> str:
    """The estimate's note on its FP8 weights."""
    if dequantized:
        return (f"fp8 checkpoint priced as {architecture or 'this device'} loads it: transformers dequantizes FP8 "
                "weights to the model dtype below compute capability 8.9, so 16-bit weights are priced")
    return ("fp8 weights (float8_e4m3fn + block scales) priced as transformers' FineGrainedFP8 runs them through "
            "the kernels-community/finegrained-fp8 Triton kernel (needs the `kernels` package and its Hub download; "
            "without it the forward raises ImportError): each FP8 linear as the calibrated 16-bit GEMM of its shape "
            "with 1-byte weight reads where memory-bound, no FP8 tensor-core speed-up where compute-bound "
            "(uncalibrated; DeepGEMM, when it loads, would be faster)")


# ---- kernels: the GEMMs over FP8 weights ---------------------------------------------------------
EXPERT_GEMMS = ("experts_gate_up", "experts_down", "expert_gate_up", "expert_down")   # grouped_mm / eager
BATCHED_GATHERS = ("gather_gate_up", "gather_down")   # 16-bit batched_mm: a copy of each pair's weights
BATCHED_MMS = ("bmm_gate_up", "bmm_down")


def _scales(fp8: Fp8Weights, n: int, k: int) -> int:
    return 1 if fp8.block is None else _cdiv(n, fp8.block[0]) * _cdiv(k, fp8.block[1])


def fp8_gemm(op: Op, fp8: Fp8Weights, e: int) -> Op:
    """A GEMM (m, n, k) or grouped GEMM (experts, rows, n, k) whose weight is FP8: the weight read
    at 1 byte with its scales, pattern PATTERN (cost.py prices it from the 16-bit GEMM)."""
    if op.kind == "grouped_gemm":
        experts, _, n, k = op.shape
        weights, scales = experts * n * k, experts * _scales(fp8, n, k)
    else:
        _, n, k = op.shape
        weights, scales = n * k, _scales(fp8, n, k)
    return Op(op.name, op.group, op.kind, op.flops, op.bytes - (e - 1) * weights + scales * fp8.scale_bytes,
              op.shape, PATTERN)


def layer_ops(spec, layer, first: int, ops, e: int) -> list[Op]:
    """A layer group's kernels with FP8 weights: the GEMMs of the linears the group's first layer
    (model.layers.`first`) converts; the batched_mm experts read each pair's FP8 weight in the
    Triton kernel (no gathered copy)."""
    fp8 = spec.fp8
    paths: dict[str, str] = {}
    for name, _, _, experts, _, _ in spec.arch.fp8_linears(spec, layer) or []:
        paths.setdefault("experts" if experts else name.rsplit(".", 1)[-1], name)
    conv = {key: converted(f"model.layers.{first}.{path}", fp8.skip) for key, path in paths.items()}
    out = []
    for op in ops:
        if op.kind == "gemm" and conv.get(op.name):
            out.append(fp8_gemm(op, fp8, e))
        elif op.name in EXPERT_GEMMS and conv.get("experts"):
            out.append(fp8_gemm(op, fp8, e))
        elif op.name in BATCHED_GATHERS and conv.get("experts"):
            continue
        elif op.name in BATCHED_MMS and conv.get("experts"):
            weights = op.flops / 2   # pairs x out x in
            out.append(Op(op.name, op.group, op.kind, op.flops, op.bytes - (e - 1) * weights, op.shape, op.pattern))
        else:
            out.append(op)
    return out


def head_converted(spec) -> bool:
    """Whether the LM head is an FP8Linear (untied, not in the skip list)."""
    return spec.fp8 is not None and not spec.tied_embeddings and converted("lm_head", spec.fp8.skip)


def gemm_us(op: Op, t16: float, e: int, peak_flops: float, peak_bw: float) -> float:
    """Time of a GEMM over FP8 weights from the calibrated 16-bit time `t16` of its shape: where
    the 16-bit GEMM is memory-bound its time scales with the bytes moved (1-byte weights), but
    not below its compute roofline share; compute-bound, no FP8 speed-up is assumed."""
    if op.kind == "grouped_gemm":
        experts, rows, n, k = op.shape
        b16 = e * (experts * n * k + experts * rows * (n + k))
    else:
        m, n, k = op.shape
        b16 = e * (m * k + n * k + m * n)
    compute, memory = op.flops / peak_flops, b16 / peak_bw
    if memory <= compute:
        return t16
    return t16 * max(op.bytes / b16, compute / memory)
