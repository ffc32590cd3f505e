"""Shared fixtures: the golden parity fixture, the bundled model, and a small tokenizer made here."""

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
