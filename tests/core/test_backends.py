"""The backend seam: the text API on a numpy-only predictor, and the decode loop without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from llada_sdk import LLaDA
from llada_sdk.backends.base import Backend, CachedMaskPredictor, MaskPredictor
from llada_sdk.decoding.arrays import NUMPY

ROOT = Path(__file__).parents[2]


class NumpyWrapped:
    """A backend that speaks numpy only: numpy ids in, numpy logits out (the torch model inside)."""

    name = "numpy-test"

    def __init__(self, torch_backend: Any) -> None:
        self.inner = torch_backend
        self.config = torch_backend.config
        self.ops = NUMPY
        self.calls = 0

    def predictor(self, decode: Any = None, *, logits: bool = False) -> MaskPredictor:
        return self

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray | None = None) -> np.ndarray:
        assert isinstance(input_ids, np.ndarray)
        self.calls += 1
        am = None if attention_mask is None else torch.from_numpy(np.asarray(attention_mask))
        with torch.inference_mode():
            return self.inner.model(torch.from_numpy(input_ids), am).float().numpy()

    def asarray(self, data: Any) -> np.ndarray:
        return np.asarray(data, dtype=np.int64)

    def info(self) -> dict[str, Any]:
        return {"backend": self.name}


@pytest.fixture(scope="module")
def pair(bundled: Any) -> tuple[Any, Any]:
    backend = NumpyWrapped(bundled.backend)
    assert isinstance(backend, Backend) and not isinstance(backend, CachedMaskPredictor)
    return bundled, LLaDA(backend, bundled.tokenizer)


CALLS = [
    ("infill", ("Zapur lives in [MASK:3] and works as a [MASK:2].",), {}),
    ("infill", ("Zapur lives in [MASK:auto].",), {}),
    ("complete", ("Zapur lives in",), {}),
    ("complete", (None, "'s parent is Lotrobar."), {}),
    ("complete", ("Zapur lives in", " and works as a weaver."), {}),
    ("chat", ([{"role": "user", "content": "Where does Zapur live?"}],), {}),
    ("complete", ("Zapur lives in",), {"max_tokens": 16, "steps": 8, "block_length": 8}),
]


@pytest.mark.parametrize(("method", "args", "kw"), CALLS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CALLS)])
def test_numpy_predictor_gives_the_torch_tokens(
    pair: tuple[Any, Any], method: str, args: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    torch_llm, numpy_llm = pair
    a = getattr(torch_llm, method)(*args, **kw)
    before = numpy_llm.backend.calls
    b = getattr(numpy_llm, method)(*args, **kw)
    assert numpy_llm.backend.calls > before  # the numpy predictor really ran
    assert b.ids == a.ids and b.text == a.text and b.forward_passes == a.forward_passes
    assert b.backend == {"backend": "numpy-test"} and a.backend["backend"] == "torch"


def test_numpy_session_two_turns_match(pair: tuple[Any, Any]) -> None:
    torch_llm, numpy_llm = pair
    s1, s2 = torch_llm.session(), numpy_llm.session()
    for text in ("Where does Zapur live?", "What is Zapur's job?"):
        assert s1.send(text).ids == s2.send(text).ids


NO_TORCH = r'''
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, Block())
import numpy as np
from llada_sdk import LLaDA, TextEvent
from llada_sdk.decoding.arrays import NUMPY
from llada_sdk.loading import BUNDLED_DIR
from llada_sdk.backends.torch_plugin import read_checkpoint
config, tok = read_checkpoint(BUNDLED_DIR, None, None, None)
rng = np.random.default_rng(0)
W = rng.standard_normal((config.embedding_size, config.embedding_size)).astype(np.float32)

class Bigram:
    """Deterministic numpy logits: each position scores the vocabulary from its left neighbour."""
    name, config, ops = "bigram", config, NUMPY
    def predictor(self, decode=None, logits=False):
        return self
    def __call__(self, ids, attention_mask=None):
        assert isinstance(ids, np.ndarray)
        left = np.concatenate([ids[:, :1], ids[:, :-1]], axis=1)
        return W[left]
    def asarray(self, data):
        return np.asarray(data, dtype=np.int64)
    def info(self):
        return {"backend": self.name}

llm = LLaDA(Bigram(), tok)
out = [
    llm.infill("Zapur lives in [MASK:3] and [MASK:auto].", max_auto_length=4).fills,
    llm.complete("Zapur lives in").ids,
    llm.complete(suffix=" is the parent.", length=3).ids,
    llm.complete("A", " B", length=2).ids,
    llm.chat([{"role": "user", "content": "Hi"}]).ids,
    llm.generate([[0, 5, 6]], gen_length=8, block_length=4, steps=8).tolist(),
    "".join(e.delta for e in llm.stream_complete("Zapur lives in", max_tokens=16) if isinstance(e, TextEvent)),
]
prompt = tok.encode("Zapur lives in")
assert llm.complete("Zapur lives in").ids[1 : 1 + len(prompt)] == prompt  # the prompt is never changed
assert llm.complete("Zapur lives in").ids == out[1]  # greedy is deterministic
print("torch" in sys.modules, len(out))
'''


@pytest.mark.slow
def test_the_text_api_runs_where_torch_cannot_be_imported() -> None:
    proc = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "7"]


def test_a_backend_plugin_brings_its_options_to_the_cli_without_cli_edits(monkeypatch: pytest.MonkeyPatch) -> None:
    import click
    from click.testing import CliRunner
    from pydantic import BaseModel, Field

    from llada_cli.common import load_model, model_options
    from llada_sdk.backends import base as seam
    from llada_sdk.backends.torch_plugin import PLUGIN as TORCH

    class FakeOptions(BaseModel):
        turbo: bool = Field(False, description="Go faster.")
        lanes: int | None = Field(None, ge=1, description="Lanes to use.")

    seen: dict[str, Any] = {}

    def load(folder: Any, *, device: Any = None, dtype: Any = None, ids: Any = None, **options: Any) -> Any:
        seen.update(options)
        return TORCH.load(folder, device=device, dtype=dtype, ids=ids)

    fake = seam.BackendPlugin("fake", detect=lambda folder: False, load=load, options=FakeOptions, summary="a test")
    monkeypatch.setitem(seam._REGISTERED, "fake", fake)

    @click.command()
    @model_options
    def cmd(model: str | None, device: str | None, dtype: str) -> None:
        click.echo(load_model(model, device, dtype).backend.name)

    help_text = CliRunner().invoke(cmd, ["--help"]).output
    flat = " ".join(help_text.split())
    assert "|fake" in flat.split("--backend [")[1].split("]")[0] and "fake: a test" in flat
    assert "--turbo" in help_text and "--lanes N" in help_text and "fake backend: go faster." in help_text
    ok = CliRunner().invoke(cmd, ["--backend", "fake", "--turbo", "--lanes", "2"])
    assert ok.exit_code == 0, ok.output
    assert seen == {"turbo": True, "lanes": 2}
    wrong = CliRunner().invoke(cmd, ["--turbo"])
    assert wrong.exit_code == 2 and "--turbo applies to the fake backend (this model loads with torch)" in wrong.output
    bad = CliRunner().invoke(cmd, ["--backend", "fake", "--lanes", "0"])
    assert bad.exit_code == 2 and "--lanes" in bad.output
