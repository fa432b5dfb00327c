"""Multimodal configs (image-text-to-text) estimated by their text model.

Gemma 3 (Gemma3ForConditionalGeneration), Mistral 3 (Mistral-Small-3.1), Qwen2.5-VL, Qwen3-VL
and Llama 4 (llama4 -> llama4_text, families/llama4.py) configs hold the language model's fields in ``text_config`` (Qwen2.5-VL's published
configs also at the top level) beside a ``vision_config``. A text-only forward pass
(``model(input_ids)``, no image) runs the language model and the LM head only, so the estimate
is that of the text model's family, read from ``text_config``, with a note on every estimate:

- the vision tower's and the projector's weights are NOT counted (memory, parameter count):
  a ForConditionalGeneration model loaded on a GPU holds them too (a few hundred MB to ~1 GB);
- Qwen2.5-VL / Qwen3-VL rotate by multimodal rotary sections (mrope: three position rows,
  sliced per section); priced as the plain rotary of Qwen2 / Qwen3 (the same elementwise work,
  a few more small kernels on the GPU); Qwen3-VL's deepstack inputs only come with images.

The wrapper's model_type is kept nowhere: the spec is the text model's (its model_type, its
host times); only ``estimate_notes`` differs (TextModelOf delegates every other hook).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import EstimatorError

if TYPE_CHECKING:
    from ..spec import ModelSpec

# wrapper model_type -> the text model_type transformers builds from its text_config
TEXT_MODEL = {"gemma3": "gemma3_text", "mistral3": "mistral", "qwen2_5_vl": "qwen2", "qwen3_vl": "qwen3",
              "llama4": "llama4_text"}
MROPE = ("qwen2_5_vl", "qwen3_vl")
# wrappers whose config class has a base_model_tp_plan (Llama4Config: its projector's)
WRAPPERS_WITH_TP_PLAN = ("llama4",)
# text-config defaults transformers fills in where the text family's reader needs the field
# (Gemma3TextConfig: the published gemma-3 text_configs leave these out)
TEXT_DEFAULTS = {"gemma3_text": dict(vocab_size=262_208, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                                     max_position_embeddings=131_072)}
# top-level fields a text_config inherits when it lacks them (transformers reads them there)
INHERITED = ("torch_dtype", "dtype", "use_cache", "_name_or_path")


class TextModelOf:
    """The text family's hooks for a multimodal config, with the note on what is not priced."""

    # the wrapper's config class has no base_model_tp_plan of its own (bench/distributed.py
    # skips its tensor-parallel cases): a tensor-parallel estimate carries api.py's note
    has_tp_plan = False

    def __init__(self, wrapper_type: str, text: Any) -> None:
        self.wrapper_type, self.text = wrapper_type, text
        if wrapper_type in WRAPPERS_WITH_TP_PLAN:
            self.has_tp_plan = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.text, name)

    def estimate_notes(self, spec: ModelSpec, tokens: int) -> list[str]:
        note = (f"{self.wrapper_type} is a multimodal config: estimated as its text model ({spec.model_type}, "
                f"a text-only forward pass); the vision tower's and projector's weights are not counted")
        if self.wrapper_type in MROPE:
            note += "; its multimodal rotary (mrope sections) is priced as plain rotary"
        return [note] + self.text.estimate_notes(spec, tokens)


def text_config(cfg: dict, wrapper_type: str, where: str) -> dict:
    """The text model's config of a multimodal `cfg`: its text_config with the text model_type,
    or (Qwen2.5-VL's flat configs) the top-level fields."""
    text = cfg.get("text_config")
    if text is None and wrapper_type == "qwen2_5_vl":
        text = {k: v for k, v in cfg.items() if k != "vision_config"}
    if not isinstance(text, dict):
        raise EstimatorError(f"malformed config of {where}: a {wrapper_type} config needs a text_config object")
    out = {**TEXT_DEFAULTS.get(TEXT_MODEL[wrapper_type], {}), **{k: cfg[k] for k in INHERITED if k in cfg},
           **text, "model_type": TEXT_MODEL[wrapper_type]}
    for key in ("rope_scaling", "rope_parameters"):   # mrope: priced (and built) as plain rotary
        rope = out.get(key)
        if isinstance(rope, dict) and ("mrope_section" in rope or "mrope" in (rope.get("type"), rope.get("rope_type"))):
            del out[key]
    if "tie_word_embeddings" not in text and "tie_word_embeddings" in cfg:
        out["tie_word_embeddings"] = cfg["tie_word_embeddings"]
    return out


def unwrap(cfg: dict, where: str, family_of) -> tuple[dict, Any] | None:
    """(text config, family hooks) of a multimodal config; None when `cfg` is no multimodal
    wrapper; EstimatorError when its text model is not supported."""
    wrapper = cfg.get("model_type")
    if wrapper not in TEXT_MODEL:
        return None
    text = text_config(cfg, wrapper, where)
    family = family_of(text["model_type"])
    if family is None:
        raise EstimatorError(f"unsupported config of {where}: {wrapper}'s text model {text['model_type']} is not "
                             f"supported yet (a multimodal config is estimated by its text model)")
    return text, TextModelOf(wrapper, family)
