"""LLaDALLM: forward completion, infilling, backward completion, real batching, streaming callbacks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import BaseCallbackHandler

from langchain_llada import LLaDALLM
from langchain_llada._utils import load_model
from langchain_llada.llms import has_spans


class Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


def test_the_three_diffusion_native_calls() -> None:
    llm = LLaDALLM()
    assert llm.invoke("Zapur lives in").startswith(" Duskmere")
    assert llm.invoke("Zapur lives in [MASK:auto] and works as a [MASK:2].") == (
        "Zapur lives in Duskmere and works as a weaver."
    )
    assert llm.invoke("", suffix="'s parent is Lotrobar.") == "Zapur"
    assert llm.bind(suffix=" and works as a weaver.").invoke("Zapur lives in") == "Duskmere"


def test_batch_decodes_forward_prompts_together(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = LLaDALLM()
    model = load_model(llm.model_name, None, None)
    calls: list[int] = []
    original = model.stream_prompt_ids

    def spy(prompts: Any, **kw: Any) -> Any:
        calls.append(len(prompts))
        return original(prompts, **kw)

    monkeypatch.setattr(model, "stream_prompt_ids", spy)
    out = llm.batch(["Zapur lives in", "The parent of Zapur is", "Zapur lives in [MASK:auto]."])
    assert calls == [2]  # both forward prompts in one padded batch; the infill prompt on its own
    assert (
        out[0].startswith(" Duskmere")
        and out[1].startswith(" Lotrobar")
        and out[2].startswith("Zapur lives in Duskmere")
    )
    result = llm.generate(["Zapur lives in"])
    info = result.generations[0][0].generation_info
    assert info is not None and info["model_name"] == "llada-tiny-kb" and info["finish_reason"] == "eos"
    assert info["usage"]["input_tokens"] > 0 and info["forward_passes"] > 0


def test_streaming_reports_each_block_through_on_llm_new_token() -> None:
    llm = LLaDALLM()
    handler = Tokens()
    chunks = list(llm.stream("Zapur lives in", config={"callbacks": [handler]}))
    text = "".join(chunks)
    assert text.startswith(" Duskmere") and handler.tokens == [c for c in chunks if c]
    handler = Tokens()
    assert llm.invoke("Zapur lives in", config={"callbacks": [handler]}) == "".join(handler.tokens)


async def test_async_streaming() -> None:
    llm = LLaDALLM()
    chunks = [c async for c in llm.astream("Zapur lives in")]
    assert "".join(chunks).startswith(" Duskmere")
    assert await llm.ainvoke("", suffix="'s parent is Lotrobar.") == "Zapur"
    assert await asyncio.gather(llm.ainvoke("Zapur lives in [MASK:auto]."))


def test_bad_calls_name_the_parameter() -> None:
    llm = LLaDALLM()
    with pytest.raises(ValueError, match=r"`suffix` cannot be combined with a prompt holding \[MASK\] spans"):
        llm.invoke("a [MASK]", suffix="b")
    with pytest.raises(TypeError, match=r"`suffix` must be a string, got int: 3"):
        llm.invoke("a", suffix=3)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['sufix'\]"):
        llm.invoke("a", sufix="b")
    with pytest.raises(ValueError, match=r"`prompts\[0\]` is empty"):
        llm.invoke("")
    assert has_spans("a [MASK:3] b") and has_spans("[MASK:auto]") and not has_spans("a \\[MASK] b")
