"""``LLaDALLM``: a LLaDA masked-diffusion model as a LangChain completion LLM (text in, text out).

Diffusion-native calls: a prompt holding ``[MASK]`` / ``[MASK:n]`` / ``[MASK:auto]`` spans is
*infilled* (the output is the whole text with the spans filled); a ``suffix=`` keyword completes
*backwards* or in the middle (the output is the text written before the suffix); otherwise the
prompt is completed forwards (the output is the new text). Plain forward prompts of a batch are
decoded together, in one padded batch.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM, LangSmithParams
from langchain_core.outputs import Generation, GenerationChunk, LLMResult

from langchain_llada._remote import completion_events
from langchain_llada._utils import (
    Deadline,
    LLaDAParams,
    iterate_in_thread,
    load_model,
    split_call_kwargs,
)
from llada_sdk.options import GenerationOptions
from llada_sdk.results import ResultEvent, TextEvent, TextResult
from llada_sdk.text.canvas import has_spans

_CALL_KWARGS = ("suffix", "model", "timeout")


def _info(result: TextResult, model_name: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "finish_reason": result.finish_reason,
        "forward_passes": result.forward_passes,
        "forward_passes_saved": result.forward_passes_saved,
        "model_name": model_name,
        "usage": {
            "input_tokens": result.prompt_tokens,
            "output_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        },
    }
    if result.fills:
        info["fills"], info["lengths"] = list(result.fills), list(result.lengths)
    return info


class LLaDALLM(LLaDAParams, BaseLLM):
    """LLaDA (masked diffusion) completion LLM.

    Setup:
        ``pip install 'llada-sdk[langchain]'``. Runs offline on the bundled model by default.

    Instantiate:
        .. code-block:: python

            from langchain_llada import LLaDALLM

            llm = LLaDALLM()  # cheap: weights load on the first call, shared with ChatLLaDA

    Invoke -- forward, infill, backward:
        .. code-block:: python

            llm.invoke("Zapur lives in")  # ' Duskmere.'
            llm.invoke("Zapur lives in [MASK:auto] and works as a [MASK:2].")  # the filled text
            llm.invoke("", suffix="'s parent is Lotrobar.")  # 'Zapur'

    Stream: a chunk per finished block, reported through ``on_llm_new_token``.
    """

    @property
    def _llm_type(self) -> str:
        return "llada"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return self._ls_params("llm", stop, kwargs)

    def _resolve(self, stop: list[str] | None, kwargs: dict[str, Any]) -> tuple[Any, GenerationOptions, dict[str, Any]]:
        """``(model, options, call)``; the model is None with ``base_url`` (the server has it), and
        ``call["sent"]`` holds the options the call sets itself (what a remote call sends)."""
        overrides, call = split_call_kwargs(dict(kwargs), _CALL_KWARGS)
        suffix = call.get("suffix")
        if suffix is not None and not isinstance(suffix, str):
            raise TypeError(f"`suffix` must be a string, got {type(suffix).__name__}: {suffix!r}")
        model_name = str(call.get("model") or self.model_name)
        call["model_name"] = model_name
        call["deadline"] = Deadline(call.get("timeout", self.timeout))
        opts = self.generation_options(stop=stop, **overrides)
        if self.base_url is not None:
            call["sent"] = self.sent_options(stop=stop, **overrides)
            return None, opts, call
        return load_model(model_name, self.device, self.dtype), opts, call

    @staticmethod
    def _events(llm: Any, prompt: str, opts: GenerationOptions, suffix: str | None) -> Iterator[Any]:
        if not isinstance(prompt, str):
            raise TypeError(f"`prompt` must be a string, got {type(prompt).__name__}: {prompt!r}")
        if suffix is not None:
            if has_spans(prompt):
                raise ValueError(
                    "`suffix` cannot be combined with a prompt holding [MASK] spans: give one or the other"
                )
            return iter(llm.stream_complete(prompt or None, suffix, options=opts))
        if has_spans(prompt):
            return iter(llm.stream_infill(prompt, options=opts))
        return iter(llm.stream_complete(prompt, options=opts))

    def _chunks(
        self, prompt: str, stop: list[str] | None, kwargs: dict[str, Any], cancel: threading.Event | None = None
    ) -> Iterator[GenerationChunk]:
        llm, opts, call = self._resolve(stop, kwargs)
        remote = self.remote()
        if remote is not None:
            if not isinstance(prompt, str):
                raise TypeError(f"`prompt` must be a string, got {type(prompt).__name__}: {prompt!r}")
            events = completion_events(
                *remote,
                call["model_name"],
                prompt,
                call.get("suffix"),
                call["sent"],
                timeout=call["deadline"].timeout,
                check=call["deadline"].check,
            )
        else:
            events = self._events(llm, prompt, opts, call.get("suffix"))
        try:
            for ev in events:
                if cancel is not None and cancel.is_set():
                    return
                call["deadline"].check("decoding")
                if isinstance(ev, TextEvent) and ev.delta:
                    yield GenerationChunk(text=ev.delta)
                elif isinstance(ev, ResultEvent):
                    yield GenerationChunk(text="", generation_info=_info(ev.results[0], call["model_name"]))
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        for chunk in self._chunks(prompt, stop, kwargs):
            if run_manager is not None and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        async for chunk in iterate_in_thread(lambda cancel: self._chunks(prompt, stop, kwargs, cancel)):
            if run_manager is not None and chunk.text:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        """Batched: the plain forward prompts are decoded together in one padded batch; infill and
        suffix prompts one by one. With a single prompt, each block's text goes to ``on_llm_new_token``."""
        if self.base_url is not None:  # one streamed request per prompt; the server batches them
            return self._generate_remote(prompts, stop, run_manager, kwargs)
        llm, opts, call = self._resolve(stop, kwargs)
        suffix = call.get("suffix")
        results: dict[int, TextResult] = {}
        forward = [i for i, p in enumerate(prompts) if suffix is None and not has_spans(p)]
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise TypeError(f"`prompts[{i}]` must be a string, got {type(p).__name__}: {p!r}")
            if suffix is None and not p and i in forward:
                raise ValueError(f"`prompts[{i}]` is empty: give a prompt, [MASK] spans or a `suffix=`")
        if forward:
            tok = llm.require_tokenizer()
            ids = [llm.bos_ids + tok.encode(prompts[i]) for i in forward]
            for ev in llm.stream_prompt_ids(ids, options=opts):
                call["deadline"].check("decoding")
                if isinstance(ev, TextEvent) and run_manager is not None and len(prompts) == 1 and ev.delta:
                    run_manager.on_llm_new_token(ev.delta, chunk=GenerationChunk(text=ev.delta))
                if isinstance(ev, ResultEvent):
                    results.update(zip(forward, ev.results))
        for i, p in enumerate(prompts):
            if i in results:
                continue
            for ev in self._events(llm, p, opts, suffix):
                call["deadline"].check("decoding")
                if isinstance(ev, TextEvent) and run_manager is not None and len(prompts) == 1 and ev.delta:
                    run_manager.on_llm_new_token(ev.delta, chunk=GenerationChunk(text=ev.delta))
                if isinstance(ev, ResultEvent):
                    results[i] = ev.results[0]
        return LLMResult(
            generations=[
                [Generation(text=results[i].text, generation_info=_info(results[i], call["model_name"]))]
                for i in range(len(prompts))
            ],
            llm_output={"model_name": call["model_name"]},
        )

    def _generate_remote(
        self,
        prompts: list[str],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> LLMResult:
        generations = []
        for prompt in prompts:
            text, info = "", None
            for chunk in self._chunks(prompt, stop, kwargs):
                text += chunk.text
                if run_manager is not None and len(prompts) == 1 and chunk.text:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                info = chunk.generation_info or info
            generations.append([Generation(text=text, generation_info=info)])
        model = str(kwargs.get("model") or self.model_name)
        return LLMResult(generations=generations, llm_output={"model_name": model})
