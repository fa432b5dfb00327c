"""estimator.tables lays out the CLI's tables as tabulate does, byte for byte, without importing it
where it can (issue 26): every table the estimate command prints, and random tables of the kinds
of cells that trip number parsing, against tabulate itself."""
from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import given, settings, strategies as st

from estimator import tables
from estimator.model import zoo_names

tabulate_mod = pytest.importorskip("tabulate")


def real(*args, **kwargs) -> str:
    return tabulate_mod.tabulate(*args, **kwargs)


def _estimate_tables(monkeypatch, argv: list[str]) -> list[tuple[tuple, dict]] | None:
    """The tabulate calls `python -m estimator` makes for argv (None: the CLI refused the workload)."""
    from estimator import __main__ as cli
    calls = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "tabulate", record)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return calls if cli.main(argv) == 0 else None


@pytest.mark.parametrize("extra", [[], ["--gpus", "4", "--parallel", "tensor", "--dtype", "bfloat16"],
                                   ["--new-tokens", "16", "--batch", "2", "--seq", "256"], ["--gpus", "2", "--batch", "3"]],
                         ids=["forward", "tensor", "generate", "pipeline"])
def test_every_estimate_table_is_tabulates_without_tabulate(monkeypatch, extra):
    done = 0
    for model in zoo_names():
        calls = _estimate_tables(monkeypatch, ["estimate", "--model", model, "--device", "H100", *extra])
        if calls is None:   # a workload the model cannot run (heads not divisible, ...)
            continue
        done += 1
        assert len(calls) == 3
        for args, kwargs in calls:
            mine = tables.simple_table(args[0], kwargs.get("headers", ()), kwargs.get("disable_numparse", False))
            assert mine is not None, f"{model}: an estimate table fell back to tabulate: {args[0]!r:.200}"
            assert mine == real(*args, **kwargs), model
    assert done >= len(zoo_names()) // 2


def test_devices_and_models_tables_are_tabulates():
    from estimator import __main__ as cli
    for command in ("devices", "models"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main([command]) == 0
        assert out.getvalue().count("\n") > 5


CELLS = st.one_of(
    st.sampled_from(["mlp", "attention projections", "lm head", "prefill: mlp", "compute", "memory", "GPU", "",
                     " padded ", "True", "False", "nan", "-inf", "Infinity", "1e5", "1,000", "-3", "+4", "1_000",
                     "0.000", "12.500", "007", "1.", ".5", "1.2.3", "x" * 3, "runtime", "91.04 ms (10-90 %: 85.88-95.23)",
                     "179,959 tokens/s", "ü", "日本", "a\tb", "a\nb", "\x1b[31m1\x1b[0m", "1" * 120 + ".5"]),
    st.integers(-10**6, 10**6), st.integers(0, 10**20),
    st.floats(0, 1e4, allow_nan=False).map(lambda x: f"{x:.3f}"),
    st.floats(0, 1e9, allow_nan=False).map(lambda x: f"{x:.2f}"),
    st.integers(0, 10**12).map(str),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=12),
)


@st.composite
def table(draw):
    width = draw(st.integers(1, 5))
    rows = draw(st.lists(st.lists(CELLS, min_size=width, max_size=width), min_size=1, max_size=6))
    headers = draw(st.one_of(st.just(()), st.lists(st.sampled_from(["GPU", "GPU ms", "kernels", "TFLOP", "a", "x y",
                                                                     "operator group"]),
                                                   min_size=width, max_size=width)))
    return rows, headers, draw(st.booleans())


@settings(max_examples=400, deadline=None)
@given(table())
def test_random_tables_match_tabulate(case):
    rows, headers, no_numparse = case
    kw = {"disable_numparse": True} if no_numparse else {}
    assert tables.tabulate(rows, headers=headers, **kw) == real(rows, headers=headers, **kw)
    assert tables.tabulate(rows, headers=headers, tablefmt="simple", **kw) == real(rows, headers=headers, **kw)


def test_simple_table_declines_what_it_does_not_reproduce():
    assert tables.simple_table([["1e5"]]) is None and tables.simple_table([["a", "b"], ["c"]]) is None
    assert tables.simple_table([]) is None and tables.simple_table([["ü"]]) is None
    assert tables.simple_table([["x", ""]]) is None and tables.simple_table([[True]]) is None
    assert tables.simple_table([["0.100", 7]], ["a", "b"]) == real([["0.100", 7]], ["a", "b"])
    assert tables.tabulate([["a", "1"]], tablefmt="github") == real([["a", "1"]], tablefmt="github")
