"""A one-shot estimate imports what it needs, no more (issue 26: ``python -m estimator estimate``
is mostly interpreter start-up and imports). Each check runs in a fresh interpreter and reads
``sys.modules`` afterwards: the planner, the sweep, plotting, calibration, generation and the
family modules of other models stay unimported. Timings are benchmarks (tests/test_speed.py),
never verdicts; these are the guard that keeps the imports from creeping back.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from estimator import __main__ as cli
from estimator import families
from estimator.families.base import Family

ROOT = Path(__file__).resolve().parents[1]

# modules a plain forward estimate never needs, whichever model and output
NEVER = ("estimator.planner", "estimator.plan_cli", "estimator.plan_output", "estimator.plan_plot",
         "estimator.prices", "estimator.sweep", "estimator.sweep_cli", "estimator.sweep_output",
         "estimator.sweep_plot", "estimator.fit", "estimator.budget", "estimator.calibrate",
         "estimator.generation", "estimator.forward_many", "estimator.outpath",
         "numpy", "matplotlib", "torch", "transformers")
# tabulate (0.10: with wcwidth and importlib.metadata): the estimate's tables are laid out by
# estimator/tables.simple_table, the same text (tests/test_tables.py)
TABLES = ("tabulate", "wcwidth", "importlib.metadata")


def new_modules(code: str) -> set[str]:
    """The modules `code` imports in a fresh interpreter, beyond those the interpreter starts with."""
    script = ("import sys, json\nbefore = set(sys.modules)\n" + code
              + "\nprint(json.dumps(sorted(set(sys.modules) - before)), file=sys.__stderr__)\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stderr.strip().splitlines()[-1]))


def cli_modules(*argv: str) -> set[str]:
    """The modules ``estimator.__main__.main(argv)`` imports in a fresh interpreter (output discarded)."""
    return new_modules("import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n"
                       f"    from estimator.__main__ import main\n    assert main({list(argv)!r}) == 0\n")


def family_modules(mods: set[str]) -> set[str]:
    return {m.rpartition(".")[2] for m in mods if m.startswith("estimator.families.")}


def _unwanted(mods: set[str], never: tuple[str, ...] = NEVER + TABLES) -> list[str]:
    return sorted(m for m in mods if any(m == n or m.startswith(n + ".") for n in never))


def test_import_estimator_api_loads_no_family_and_no_cli_extras():
    mods = new_modules("import estimator.api")
    assert not _unwanted(mods) and "argparse" not in mods and "statistics" not in mods
    assert family_modules(mods) <= {"multimodal"}, "the families are imported when a model is loaded"


def test_json_estimate_loads_one_family_and_no_table():
    mods = cli_modules("estimate", "--model", "facebook/opt-1.3b", "--device", "H100", "--json")
    assert not _unwanted(mods) and "statistics" not in mods   # OPT's host time is measured: no median
    # H100 has a profile of its own (no transfer), OPT no experts, every name is known (no difflib)
    assert not {"estimator.transfer", "estimator.grouped", "difflib"} & mods
    assert family_modules(mods) == {"base", "opt", "multimodal"}


def test_text_estimate_loads_no_planner_sweep_table_library_or_other_family():
    mods = cli_modules("estimate", "--model", "facebook/opt-1.3b", "--device", "H100")
    assert not _unwanted(mods)
    assert family_modules(mods) == {"base", "opt", "multimodal"}


def test_moe_estimate_loads_its_family_and_what_it_builds_on():
    """An MoE's host time is the op-level model's, whose glue comes from the tiny models of the
    families the profile timed: those families are loaded too, no others."""
    from estimator import get_device
    from estimator.profile import profile_for
    mods = cli_modules("estimate", "--model", "Qwen/Qwen3-30B-A3B", "--device", "H100", "--json")
    assert not _unwanted(mods)
    timed = {families.REGISTRY[t][0] for t in profile_for(get_device("H100")).data.host}
    assert family_modules(mods) == {"base", "moe", "moe_experts", "llama", "multimodal"} | timed


def test_generation_estimate_loads_generation_only_then():
    mods = cli_modules("estimate", "--model", "facebook/opt-1.3b", "--device", "H100", "--new-tokens", "4")
    assert "estimator.generation" in mods
    assert not _unwanted(mods - {"estimator.generation"})


# ---- the registry is data: it must say what the family modules say ----------------------------

def _instances() -> dict[str, Family]:
    """Every Family instance a module under estimator/families defines, by its module-level name."""
    out = {}
    for info in pkgutil.iter_modules(families.__path__):
        module = importlib.import_module(f"estimator.families.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, Family) and name.isupper() and value.__module__ == module.__name__:
                out[name] = value
    return out


def test_registry_names_every_family_and_its_model_types():
    found = _instances()
    assert set(families.INSTANCES) == set(found), "a Family instance is missing from families.REGISTRY"
    for attr, module in families.INSTANCES.items():
        fam = found[attr]
        assert fam.__module__ == f"estimator.families.{module}"
        assert tuple(t for t, (_, a) in families.REGISTRY.items() if a == attr) == fam.model_types
        assert families.family_of(fam.model_types[0]) is fam and getattr(families, attr) is fam
    assert families.FAMILIES == tuple(found[a] for a in families.INSTANCES)
    assert families.BY_MODEL_TYPE == {t: found[a] for t, (_, a) in families.REGISTRY.items()}
    assert families.BY_NAME == {f.name: f for f in families.FAMILIES}
    assert families.supported_model_types() == sorted(families.BY_MODEL_TYPE)
    assert families.family_of("no_such_type") is None and families.code_family("no_such_type") == "no_such_type"


# ---- the CLI's parser: a command's arguments are added only when it runs ----------------------

def _help(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: object = vars(parser.parse_args(argv))
        except SystemExit as exc:
            result = ("exit", exc.code)
    return result, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", [
    ["--help"], [], ["estimat"], ["-h", "estimate"], ["estimate", "--help"], ["sweep", "--help"], ["plan", "--help"],
    ["devices", "--help"], ["models"], ["calibrate", "--help"], ["calibrate", "--quick", "--out", "x.json"],
    ["estimate", "--model", "m", "--device", "H100", "--gpus", "2", "--json"], ["estimate", "--model", "m"],
    ["--bogus", "estimate", "--model", "m", "--device", "d"], ["-1", "estimate"], ["--", "estimate", "--model", "m"],
    ["sweep", "--model", "m", "--device", "all", "--fit"], ["plan", "--model", "m", "--input-tokens", "1"],
    ["estimate", "--model", "sweep", "--device", "plan"], ["devices", "estimate"],
])
def test_parser_of_one_command_parses_as_the_whole_parser(argv):
    assert _help(cli._parser(cli.command_of(argv)), argv) == _help(cli._parser(), argv)


def test_command_of_is_the_first_positional():
    assert cli.command_of(["estimate", "--model", "sweep"]) == "estimate"
    assert cli.command_of(["--x", "plan", "estimate"]) == "plan"
    assert cli.command_of(["--", "sweep"]) == "sweep"
    assert cli.command_of(["-h"]) is None and cli.command_of(["nope", "estimate"]) is None
