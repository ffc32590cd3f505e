"""Layer rules, checked on the source: the core imports none of the layers above it, and the core's
torch-free modules import torch only inside functions (so the engine runs where torch is absent)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
UPPER = ("llada_cli", "llada_export", "langchain_llada", "llada_server")
# the core modules that may import torch at module level: the model and what only makes sense with it
TORCH_MODULES = {"model.py", "torch_backend.py", "decode_bench.py", "training"}  # files, or packages


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
