"""Property-based: broken configs and profiles are exit 2 with exactly one line on stderr (CLI)
and a one-line EstimatorError (library): never a traceback, never a silent estimate.

Hypothesis breaks one field of a valid config or profile at a time, with values of the wrong
type, out of range, or missing. Example counts are small so the suite stays fast.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from estimator import EstimatorError
from estimator.model import ZOO_DIR, ModelSpec
from estimator.profile import PROFILE_DIR, load_profile_file

from test_bad_input import assert_one_error_line, run_cli

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
COUNTER = itertools.count()   # a fresh file per example: load_model caches by path

# Fields each family reads: sizes (positive integers), flags (true/false), names (strings).
CONFIGS = {
    "AICrossSim/clm-60m": dict(
        sizes=["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
               "max_position_embeddings"],
        optional_sizes=["num_key_value_heads", "head_dim"],
        flags=["attention_bias", "mlp_bias", "tie_word_embeddings", "use_cache"], names=["hidden_act"]),
    "facebook/opt-1.3b": dict(
        sizes=["hidden_size", "num_hidden_layers", "num_attention_heads", "ffn_dim", "vocab_size",
               "max_position_embeddings"],
        optional_sizes=["word_embed_proj_dim"],
        flags=["enable_bias", "tie_word_embeddings", "do_layer_norm_before"], names=["activation_function"]),
    "openai-community/gpt2": dict(
        sizes=["n_embd", "n_layer", "n_head", "vocab_size", "n_positions"], optional_sizes=["n_inner"],
        flags=["tie_word_embeddings"], names=["activation_function"]),
}

not_a_size = st.one_of(st.integers(max_value=0), st.integers(min_value=2**40 + 1), st.booleans(),
                       st.floats(allow_nan=True), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
not_a_flag = st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.lists(st.booleans(), max_size=2))
not_a_name = st.one_of(st.integers(), st.floats(), st.just(""), st.booleans(), st.lists(st.text(), max_size=2))


@st.composite
def broken_config(draw) -> tuple[dict, str]:
    """A zoo config with one field broken, and the field's name."""
    model = draw(st.sampled_from(sorted(CONFIGS)))
    fields = CONFIGS[model]
    cfg = json.loads((ZOO_DIR / model / "config.json").read_text())
    kind = draw(st.sampled_from(["sizes", "optional_sizes", "flags", "names", "missing"]))
    if kind == "missing":
        field = draw(st.sampled_from(fields["sizes"]))
        del cfg[field]
        return cfg, field
    field = draw(st.sampled_from(fields[kind]))
    value = draw({"sizes": st.one_of(not_a_size, st.none()), "optional_sizes": not_a_size,
                  "flags": not_a_flag, "names": not_a_name}[kind])
    cfg[field] = value
    return cfg, field


def _write(tmp_path: Path, data, allow_nan: bool = True) -> str:
    path = tmp_path / f"f{next(COUNTER)}.json"
    path.write_text(json.dumps(data, allow_nan=allow_nan))
    return str(path)


@SETTINGS
@given(case=broken_config())
def test_broken_config_is_one_line_exit_2(case, tmp_path):
    cfg, field = case
    path = _write(tmp_path, cfg)
    rc, out, err = run_cli("estimate", "--model", path, "--device", "H100", "--json")
    assert_one_error_line(rc, err, field)
    assert out == ""
    with pytest.raises(EstimatorError) as exc:
        ModelSpec.from_hf_config(cfg, name="x")
    assert "\n" not in str(exc.value) and field in str(exc.value)


@SETTINGS
@given(heads=st.integers(2, 64), hidden=st.integers(1, 4096))
def test_heads_not_dividing_hidden(heads, hidden, tmp_path):
    cfg = json.loads((ZOO_DIR / "facebook/opt-1.3b/config.json").read_text())
    cfg.update(num_attention_heads=heads, hidden_size=hidden)
    path = _write(tmp_path, cfg)
    rc, out, err = run_cli("estimate", "--model", path, "--device", "H100")
    if hidden % heads:
        assert_one_error_line(rc, err, "hidden_size", "num_attention_heads")
    else:
        assert rc == 0 and "runtime" in out, err


PROFILE = json.loads((PROFILE_DIR / "h100-sxm5-80gb.json").read_text())
GRIDS = {"gemm": ("float16", 4), "sdpa": ("float16", 4), "elementwise": ("unary", 2), "allreduce": ("2", 2)}
bad_number = st.one_of(st.integers(max_value=0), st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf),
                       st.text(max_size=3), st.none(), st.booleans(), st.lists(st.integers(), max_size=1))
bad_section = st.one_of(st.text(max_size=3), st.integers(), st.lists(st.integers(), min_size=1, max_size=2))


@st.composite
def broken_profile(draw) -> dict:
    raw = json.loads(json.dumps(PROFILE))
    kind = draw(st.sampled_from(["grid", "copy", "section", "power", "missing", "top"]))
    if kind == "top":
        return draw(st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=3), st.integers()))
    if kind == "missing":
        del raw[draw(st.sampled_from(["gemm", "sdpa", "copy"]))]
    elif kind == "section":
        raw[draw(st.sampled_from(["gemm", "sdpa", "copy", "elementwise", "allreduce", "power", "host"]))] = \
            draw(bad_section)
    elif kind == "power":
        raw["power"][draw(st.sampled_from(["idle_w", "launch_bound_w", "gemm_w", "memory_w"]))] = draw(bad_number)
    else:
        rows = raw["copy"] if kind == "copy" else raw[(section := draw(st.sampled_from(sorted(GRIDS))))][
            GRIDS[section][0]]
        row = draw(st.integers(0, len(rows) - 1))
        rows[row][draw(st.integers(0, len(rows[row]) - 1))] = draw(bad_number)
    return raw


@SETTINGS
@given(raw=broken_profile())
def test_broken_profile_is_one_line_exit_2(raw, tmp_path):
    path = _write(tmp_path, raw)
    rc, out, err = run_cli("estimate", "--model", "facebook/opt-1.3b", "--device", "H100", "--profile", path)
    assert_one_error_line(rc, err, "profile", path)
    assert out == ""
    with pytest.raises(EstimatorError) as exc:
        load_profile_file(path)
    assert "\n" not in str(exc.value)


@SETTINGS
@given(data=st.one_of(st.text(max_size=30).map(str.encode), st.binary(max_size=30)))
def test_garbage_files_are_one_line_exit_2(data, tmp_path):
    path = tmp_path / f"g{next(COUNTER)}.json"
    path.write_bytes(data)
    for args in (["--model", str(path), "--device", "H100"],
                 ["--model", "facebook/opt-1.3b", "--device", "H100", "--profile", str(path)],
                 ["--model", "facebook/opt-1.3b", "--device", str(path)]):
        rc, _, err = run_cli("estimate", *args)
        assert_one_error_line(rc, err)


# ---- device files (issue 20) --------------------------------------------------------------------

from estimator.device import DEVICES_DIR, INTEGER_FIELDS, NUMBER_FIELDS, TEXT_FIELDS  # noqa: E402

DEVICE = json.loads((DEVICES_DIR / "h100-sxm5-80gb.json").read_text())
bad_device_number = st.one_of(
    st.integers(max_value=0), st.integers(min_value=10**13, max_value=10**400), st.floats(max_value=0.0),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e300]), st.text(max_size=3), st.none(), st.booleans(),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
fraction = st.floats(min_value=0.01, max_value=1000.0).filter(lambda x: x != int(x))


@st.composite
def broken_device(draw) -> dict:
    raw = json.loads(json.dumps(DEVICE))
    kind = draw(st.sampled_from(["number", "count", "text", "source", "missing", "top", "deep"]))
    if kind == "top":
        return draw(st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=3), st.integers()))
    if kind == "deep":
        depth = draw(st.integers(70, 5000))
        raw[draw(st.sampled_from(NUMBER_FIELDS))]["value"] = json.loads("[" * depth + "]" * depth)
    elif kind == "number":
        raw[draw(st.sampled_from(NUMBER_FIELDS))]["value"] = draw(bad_device_number)
    elif kind == "count":
        raw[draw(st.sampled_from(INTEGER_FIELDS))]["value"] = draw(fraction)
    elif kind == "text":
        raw[draw(st.sampled_from(TEXT_FIELDS))]["value"] = draw(st.one_of(st.just(""), st.integers(), st.none()))
    elif kind == "source":
        raw[draw(st.sampled_from(NUMBER_FIELDS))]["source"] = draw(st.one_of(st.just(" "), st.integers()))
    else:
        del raw[draw(st.sampled_from(NUMBER_FIELDS + TEXT_FIELDS))]
    return raw


@SETTINGS
@given(raw=broken_device())
def test_broken_device_file_is_one_line_exit_2(raw, tmp_path):
    path = _write(tmp_path, raw)
    rc, out, err = run_cli("estimate", "--model", "AICrossSim/clm-60m", "--device", path)
    assert_one_error_line(rc, err)
    assert out == ""


@SETTINGS
@given(field=st.sampled_from(NUMBER_FIELDS), scale=st.floats(0.5, 2.0))
def test_scaled_device_number_still_estimates(field, scale, tmp_path):
    raw = json.loads(json.dumps(DEVICE))
    value = raw[field]["value"] * scale
    raw[field]["value"] = round(value) if field in INTEGER_FIELDS else value
    if raw[field]["value"] <= 0:
        return
    rc, out, err = run_cli("estimate", "--model", "AICrossSim/clm-60m", "--device", _write(tmp_path, raw), "--json")
    assert rc == 0, err
    assert math.isfinite(json.loads(out)["runtime_ms"])


# ---- run files (issue 20) -----------------------------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=4))
any_json = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                          st.dictionaries(st.text(max_size=4), kids, max_size=3)),
                        max_leaves=12)
ROW_KEYS = ("case_id", "status", "reason", "model", "device", "gpus", "batch", "seq", "dtype", "parallel",
            "measured", "estimated", "out_of_bounds", "nodeid")
good_row = st.fixed_dictionaries({"case_id": st.text(min_size=1, max_size=6), "status": st.sampled_from(
    ["passed", "failed", "skipped"]), "measured": st.fixed_dictionaries({"runtime_ms": st.floats(0.1, 1e3)}),
    "estimated": st.fixed_dictionaries({"runtime_ms": st.floats(0.1, 1e3)})})
odd_row = st.one_of(any_json, st.dictionaries(st.sampled_from(ROW_KEYS), any_json, max_size=6))
run_doc = st.one_of(any_json, st.fixed_dictionaries({"run": st.text(max_size=3),
                                                    "rows": st.lists(st.one_of(good_row, odd_row), max_size=5)}))


@SETTINGS
@given(doc=run_doc, deep=st.booleans())
def test_any_run_file_is_read_or_skipped_with_a_warning(doc, deep, tmp_path):
    from bench import results
    from bench.session import BenchSession
    folder = tmp_path / f"runs{next(COUNTER)}"
    folder.mkdir()
    bad = folder / "a.json"
    bad.write_text("[" * 3000 + "]" * 3000 if deep else json.dumps(doc))
    results.write_run(folder, "b", [{"case_id": "mine", "status": "passed"}], None, {}, lambda d: d)
    seen: list[str] = []
    runs = results.load_runs(folder, warn=seen.append, check=BenchSession._reportable)
    assert runs[-1] == ("b", [{"case_id": "mine", "status": "passed"}])
    assert all(str(bad) in line for line in seen)
    kept = [row for _, rows in runs for row in rows]
    BenchSession._reportable({"case_id": "x"})
    for row in kept:
        BenchSession._reportable(row)     # every row kept renders
    rows = doc.get("rows") if isinstance(doc, dict) and not deep else None
    if not isinstance(rows, list):
        assert len(runs) == 1 and len(seen) == 1          # the file is skipped, and said so
    else:
        assert len(kept) - 1 + len(seen) == len(rows)     # each row kept or named in a warning
