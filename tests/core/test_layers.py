"""Layer rules, checked on the source: the core imports none of the layers above it, and the core's
torch-free modules import torch only inside functions (so the engine runs where torch is absent)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
UPPER = ("llada_cli", "llada_export", "langchain_llada", "llada_server")
# the core modules that may import torch at module level: the model and what only makes sense with it
TORCH_MODULES = {"model.py", "torch_backend.py", "training"}  # files, or packages


def _imports(tree: ast.AST, module_level_only: bool) -> list[tuple[int, str]]:
    nodes = tree.body if module_level_only and isinstance(tree, ast.Module) else list(ast.walk(tree))
    out: list[tuple[int, str]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.If) and module_level_only:  # `if TYPE_CHECKING:` is not a run-time import
            test = node.test
            if not (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"):
                out += _imports(ast.Module(body=node.body, type_ignores=[]), True)
        elif isinstance(node, ast.Try) and module_level_only:
            out += _imports(ast.Module(body=node.body, type_ignores=[]), True)
    return out


def violations(core: Path) -> list[str]:
    """Every broken layer rule in the core package at ``core``, as ``file:line: what``."""
    found = []
    for path in sorted(core.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(core)
        for line, name in _imports(tree, module_level_only=False):
            if name.split(".")[0] in UPPER:
                found.append(f"{rel}:{line}: the core imports {name}")
        if path.name not in TORCH_MODULES and rel.parts[0] not in TORCH_MODULES:
            for line, name in _imports(tree, module_level_only=True):
                if name.split(".")[0] in ("torch", "onnxruntime"):
                    found.append(f"{rel}:{line}: torch-free module imports {name} at module level")
    return found


def test_the_core_keeps_its_layer_rules() -> None:
    assert violations(ROOT / "llada_sdk") == []


def test_the_guard_catches_a_broken_rule(tmp_path: Path) -> None:
    core = tmp_path / "llada_sdk"
    core.mkdir()
    (core / "engine.py").write_text(
        "import torch\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n"
    )
    (core / "model.py").write_text("import torch\n")
    (core / "api.py").write_text("def f():\n    from llada_cli.main import cli\n")
    (core / "policies.py").write_text("try:\n    import onnxruntime\nexcept ImportError:\n    pass\n")
    assert violations(core) == [
        "api.py:2: the core imports llada_cli.main",
        "engine.py:1: torch-free module imports torch at module level",
        "policies.py:2: torch-free module imports onnxruntime at module level",
    ]


def test_the_layers_above_import_only_downward() -> None:
    # llada_export, langchain_llada and llada_server sit beside each other: none imports another or the CLI
    for package, banned in (
        ("export/llada_export", ("llada_cli", "langchain_llada", "llada_server")),
        ("integrations/langchain_llada", ("llada_cli", "llada_export", "llada_server")),
        ("integrations/llada_server", ("llada_cli", "llada_export", "langchain_llada")),
    ):
        for path in (ROOT / package).rglob("*.py"):
            for line, name in _imports(ast.parse(path.read_text(encoding="utf-8")), module_level_only=False):
                assert name.split(".")[0] not in banned, f"{path.relative_to(ROOT)}:{line} imports {name}"


def import_graph(package_dir: Path, package: str) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports}``, function-local imports included and
    ``TYPE_CHECKING`` blocks left out (they never run)."""
    modules = {}
    for path in package_dir.rglob("*.py"):
        rel = path.relative_to(package_dir).with_suffix("")
        parts = [package, *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
            for stmt in node.body
            for n in ast.walk(stmt)
        }
        found: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):  # a package's own __init__ is not a cycle
                    found.add(t)
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, once each (as the list of modules around it)."""
    out, seen = [], set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cyc = stack[stack.index(m) :]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    out.append(cyc)
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return out


@pytest.mark.parametrize(
    ("folder", "package"),
    [
        ("llada_sdk", "llada_sdk"),
        ("export/llada_export", "llada_export"),
        ("integrations/langchain_llada", "langchain_llada"),
        ("integrations/llada_server", "llada_server"),
        ("cli/llada_cli", "llada_cli"),
    ],
)
def test_no_import_cycles_not_even_function_local(folder: str, package: str) -> None:
    assert cycles(import_graph(ROOT / folder, package)) == []


def test_the_cycle_check_finds_a_function_local_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from p.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from p.a import y\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.a import y\n")
    assert cycles(import_graph(pkg, "p")) == [["p.a", "p.b"]]
