"""No import circles in estimator/ or bench/: the graph of their modules' import statements is acyclic.

Read with ast, nothing imported. Every ``import`` / ``from ... import`` counts, including those
under ``if TYPE_CHECKING:`` and inside functions: a circle hidden behind either is still two
modules that cannot be understood (or split) one without the other. An edge goes to the module
named, or to the submodule when ``from package import name`` names one; importing a submodule
does not count as importing its package's ``__init__``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("estimator", "bench")


def modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `package`."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _known_prefix(name: str, known: set[str]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules in `known` that the file `path` (module `name`) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        else:
            continue
        found.update(t for t in (_known_prefix(t, known) for t in targets) if t and t != name)
    return found


def import_graph(packages=PACKAGES) -> dict[str, set[str]]:
    files = {k: v for p in packages for k, v in modules(p).items()}
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None when the graph is acyclic."""
    state: dict[str, int] = {}   # 1 on the current path, 2 done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_reads_relative_and_type_checking_imports(tmp_path):
    src = "from typing import TYPE_CHECKING\nfrom . import b\nif TYPE_CHECKING:\n    from .c import X\n"
    (tmp_path / "a.py").write_text(src)
    assert imports_of("pkg.a", tmp_path / "a.py", {"pkg", "pkg.a", "pkg.b", "pkg.c"}) == {"pkg.b", "pkg.c"}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle(package):
    graph = import_graph()
    assert len([m for m in graph if m.startswith(package + ".")]) > 5   # the walk found the modules
    cycle = find_cycle({k: v for k, v in graph.items() if k.split(".")[0] == package})
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_circle_across_packages():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])
