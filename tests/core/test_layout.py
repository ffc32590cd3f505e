"""Packaging promises: light imports, the missing-extra error, the installed top-level names, and a wheel
that holds every module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_importing_llada_sdk_does_not_import_torch() -> None:
    out = _run("import sys, llada_sdk; from llada_sdk import GenerationOptions, LLaDA; print('torch' in sys.modules)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_missing_torch_gives_the_pip_command() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from llada_sdk import LLaDA, MissingExtraError\n"
        "try:\n    LLaDA.from_pretrained()\n"
        "except MissingExtraError as e:\n    print(e)\n"
    )
    out = _run(code)
    assert "pip install 'llada-sdk[torch]'" in out.stdout, out.stderr


def test_distribution_installs_only_prefixed_packages() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    find = meta["tool"]["setuptools"]["packages"]["find"]
    packages = {"llada_sdk", "llada_export", "langchain_llada", "llada_server", "llada_cli"}
    assert {p.rstrip("*") for p in find["include"]} == packages
    for name in packages:
        assert any((ROOT / root / name / "__init__.py").is_file() for root in find["where"]), name
    base = meta["project"]["dependencies"]
    assert not any(d.startswith("torch") for d in base)  # the edge runtime must install without torch
    extras = meta["project"]["optional-dependencies"]
    assert {"torch", "onnx", "gpu", "langchain", "serve", "ray", "dev"} <= set(extras)
    assert not ({d.split(">")[0] for d in extras["onnx"]} & {"onnxruntime-gpu"})


def test_bundled_model_is_shipped_and_small() -> None:
    from llada_sdk.loading import BUNDLED_DIR

    files = {p.name for p in BUNDLED_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    assert (BUNDLED_DIR / "model.safetensors").stat().st_size <= 10 * 2**20


@pytest.mark.slow
def test_the_wheel_holds_every_module(tmp_path: Path) -> None:
    import zipfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    for source in ("llada_sdk", "export/llada_export", "integrations/langchain_llada", "cli/llada_cli"):
        for path in (ROOT / source).rglob("*.py"):
            rel = path.relative_to(ROOT / source).as_posix()
            package = source.split("/")[-1]
            assert f"{package}/{rel}" in names, f"{package}/{rel} is missing from the wheel"
    assert "llada_sdk/bundled/llada-tiny-kb/model.safetensors" in names


def test_benchmark_scripts_that_use_recipes_put_the_root_on_the_path_first() -> None:
    """`python benchmarks/x.py` finds `recipes` (not installed) only through `import _repo`, a real import
    statement before the first `recipes` import (train.sh runs copy_probe.py as a script)."""
    import ast

    checked = 0
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        body = ast.parse(script.read_text()).body
        repo = [n.lineno for n in body if isinstance(n, ast.Import) and any(a.name == "_repo" for a in n.names)]
        recipes = [n.lineno for n in body if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("recipes")]
        if not recipes:
            continue
        assert repo, f"{script.name} imports recipes without `import _repo`"
        assert repo[0] < recipes[0], script.name
        checked += 1
    assert checked >= 5  # copy_probe, auto_length, decode, onnx_quality, reversal
