"""Shared fixtures: the golden parity fixture (and its ONNX export), the bundled model, and a small tokenizer
made here."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
TINY = FIXTURES / "llada-tiny"
META_8B = FIXTURES / "llada-8b-meta"
# the arguments of the reference `generate.py` that the golden generation cases record
GENERATE_KEYS = [
    "steps",
    "gen_length",
    "block_length",
    "temperature",
    "cfg_scale",
    "remasking",
    "logits_eos_inf",
    "confidence_eos_eot_inf",
]


def golden_case(golden: dict[str, Any], name: str) -> dict[str, Any]:
    """The golden case called ``name``, from whichever section holds it."""
    return next(
        c for section in ("forward", "generation", "log_likelihood") for c in golden[section] if c["name"] == name
    )


def onnx_cuda_available() -> bool:
    """A CUDA GPU and an onnxruntime with the CUDA provider (``llada-sdk[gpu]``)."""
    import shutil
    import subprocess

    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers() or shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).returncode == 0


@pytest.fixture(autouse=True)
def _single_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def load_script() -> Callable[[str], Any]:
    """Import a script of the repository that is not in a package (``docs/make_cli_md.py``, ``benchmarks/...``)."""

    def load(relative: str) -> Any:
        path = Path(__file__).parent.parent / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    return json.loads((TINY / "golden.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def golden_tensors() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(TINY / "golden_tensors.safetensors"))


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``llada export tests/fixtures/llada-tiny OUT`` (through the Python API), every graph group, once per
    run; skips where the ``onnx`` extra is not installed."""
    for module in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(module)
    from llada_export import export
    from llada_export.runtime import PLUGIN
    from llada_sdk.backends.base import register

    register(PLUGIN)  # found through the entry point once installed; registered here for a source checkout
    out = tmp_path_factory.mktemp("onnx") / "llada-tiny"
    export(TINY, out, eot_token_id=348, graphs=("logits", "greedy", "cache", "cache_greedy"), threads=1)
    return out


@pytest.fixture(scope="session")
def tiny() -> Any:
    from llada_sdk import LLaDA

    return LLaDA.from_pretrained(TINY, device="cpu", dtype="float32", eot_token_id=348)


@pytest.fixture(scope="session")
def bundled() -> Any:
    from llada_sdk import LLaDA

    return LLaDA.from_pretrained(device="cpu")


def make_tokenizer_dir(path: Path) -> Path:
    """A small byte-level BPE tokenizer in the official file format, with the LLaDA special tokens."""
    from llada_sdk.training import tokenizer_config, train_tokenizer

    texts = ["Alice lives in Paris and works as a teacher.", "Bob's parent is Carol.", "count: 1 2 3 4"] * 20
    tok = train_tokenizer(texts, vocab_size=300)
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config()))
    return path


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tokenizer_dir(tmp_path_factory.mktemp("tok"))


@pytest.fixture
def no_tokenizer_model(tmp_path: Path) -> Path:
    """The bundled model's weights and config without its tokenizer."""
    import shutil

    from llada_sdk.loading import BUNDLED_DIR

    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(BUNDLED_DIR / name, folder / name)
    return folder
