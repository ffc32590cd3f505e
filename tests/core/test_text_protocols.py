"""The text services depend on the ``ModelParts`` / ``TextModel`` protocols, not on ``LLaDA``: ``LLaDA``
satisfies both, and a low-level service runs the same on a bare holder of the parts."""

from __future__ import annotations

from dataclasses import dataclass

from llada_sdk import LLaDA
from llada_sdk.backends.base import Backend
from llada_sdk.config import LLaDAConfig
from llada_sdk.options import GenerationOptions, ScoreOptions
from llada_sdk.text import infill, scoring
from llada_sdk.text.canvas import parse_masked_text
from llada_sdk.text.parts import ModelParts, TextModel
from llada_sdk.text.runner import drain
from llada_sdk.tokenizer import Tokenizer


@dataclass(frozen=True)
class Parts:
    """A model's parts and nothing else: not an ``LLaDA``."""

    backend: Backend
    config: LLaDAConfig
    tokenizer: Tokenizer

    def require_tokenizer(self) -> Tokenizer:
        return self.tokenizer


def _as_text_model(llm: LLaDA) -> TextModel:  # mypy checks that LLaDA is a TextModel (and so ModelParts)
    return llm


def _parts_of(llm: LLaDA) -> ModelParts:
    return Parts(llm.backend, llm.config, llm.require_tokenizer())


def test_llada_is_a_text_model(bundled: LLaDA) -> None:
    assert isinstance(bundled, ModelParts) and isinstance(bundled, TextModel)
    assert _as_text_model(bundled) is bundled
    parts = _parts_of(bundled)
    assert isinstance(parts, ModelParts) and not isinstance(parts, TextModel)


def test_services_run_on_the_parts_alone(bundled: LLaDA) -> None:
    parts = _parts_of(bundled)
    opts = ScoreOptions(mc_num=16, batch_size=16)
    assert scoring.score(parts, "Zapur lives in", " Duskmere.", opts) == bundled.score(
        "Zapur lives in", " Duskmere.", options=opts
    )
    text = "Zapur lives in [MASK:3] and works as a [MASK:2]."
    gen = GenerationOptions()
    res = drain(infill.stream_infill_parts(parts, parse_masked_text(text), gen, gen.max_auto_length))[0]
    want = bundled.infill(text, options=gen)
    assert (res.text, res.fills, res.ids) == (want.text, want.fills, want.ids)
