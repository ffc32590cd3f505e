"""``ChatLLaDA``: a LLaDA masked-diffusion model as a LangChain chat model.

Input flow: LangChain messages -> ``{"role", "content"}`` dicts in the tool-call format of
``llada_sdk.tools`` (tools in the system message, tool calls and results as turns) -> the model's
chat template -> ``LLaDA.stream_chat``. Output flow: the ``TextEvent`` of each finished block is a
chunk; tool calls are parsed out of the text at the end and streamed as ``tool_call_chunks``; the
last chunk carries usage and response metadata.

Forced tool calls (``tool_choice`` "any" / "required" / a name) and ``with_structured_output`` do not
generate free text: the JSON skeleton of the schema is fixed on the canvas and the model writes only
the values (``llada_sdk.structured.fill_schema``), so the result always parses and validates.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

from langchain_llada._utils import (
    Deadline,
    LLaDAParams,
    iterate_in_thread,
    load_model,
    split_call_kwargs,
    to_llada_messages,
)
from llada_sdk.options import GenerationOptions
from llada_sdk.results import ResultEvent, StepEvent, TextEvent, TextResult
from llada_sdk.structured import fill_schema_result, json_schema_of
from llada_sdk.tools import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    parse_tool_calls,
    partial_call_start,
    tool_spec,
    transcript,
    with_tools,
)

ToolChoice = str | dict[str, Any] | bool | None
_CALL_KWARGS = (
    "tools",
    "tool_choice",
    "response_format",
    "ls_structured_output_format",
    "model",
    "stream_steps",
    "timeout",
)
_FINISH = {"eos": "stop", "stop": "stop", "length": "length"}


def normalize_tool_choice(tool_choice: ToolChoice, names: Sequence[str]) -> str | None:
    """``tool_choice`` as ``None`` / ``"auto"`` / ``"none"`` / ``"any"`` / a tool name.

    Accepts ``None``, ``"auto"``, ``"none"``, ``"any"``, ``"required"`` (= ``"any"``), ``True`` (= ``"any"``),
    a tool's name, or ``{"type": "function", "function": {"name": ...}}``.

    Raises:
        ValueError: anything else, or a name that is not one of ``names``.
    """
    accepted = '"auto", "any", "required", "none", True, a tool name or {"type": "function", "function": {"name": ...}}'
    if tool_choice is None or tool_choice in ("auto", "none"):
        return tool_choice  # type: ignore[return-value]
    if tool_choice is True or tool_choice in ("any", "required"):
        if not names:
            raise ValueError(f"`tool_choice` ({tool_choice!r}) needs at least one tool; `tools` is empty")
        return "any"
    name: Any = tool_choice
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        name = fn.get("name") if tool_choice.get("type") == "function" and isinstance(fn, dict) else None
        if not isinstance(name, str):
            raise ValueError(f"`tool_choice` must be {accepted}; got {tool_choice!r}")
    if isinstance(name, str) and name in names:
        return name
    raise ValueError(f"`tool_choice` must be {accepted}; got {tool_choice!r} (tools: {list(names)})")


@dataclass
class _Call:
    """Everything one call needs, resolved before decoding starts."""

    model_name: str
    options: GenerationOptions
    messages: list[dict[str, str]]
    tools: list[dict[str, Any]]
    tool_choice: str | None
    response_format: dict[str, Any] | None
    deadline: Deadline
    stream_steps: bool


def _json_schema(schema: Any) -> dict[str, Any]:
    """A JSON schema for ``with_structured_output``: ``json_schema_of``, or LangChain's conversion
    for what it does not know (pydantic v1 models)."""
    try:
        return json_schema_of(schema)
    except TypeError:
        return convert_to_json_schema(schema)


def _usage(result: TextResult) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=result.prompt_tokens,
        output_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
    )


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class ChatLLaDA(LLaDAParams, BaseChatModel):
    """LLaDA (masked diffusion) chat model.

    Setup:
        ``pip install 'llada-sdk[langchain]'``. Runs offline on the bundled model by default.

    Key init args:
        model: the bundled model (default), a local checkpoint directory or a Hub repo id.
        device, dtype: where and in which dtype to load it (loaded on first use, shared).
        max_tokens, temperature, steps, block_length, ...: every ``GenerationOptions`` field.
        stop, timeout: stop sequences (excluded from the text); seconds a call may decode.

    Instantiate:
        .. code-block:: python

            from langchain_llada import ChatLLaDA

            chat = ChatLLaDA()  # cheap: weights load on the first call

    Invoke:
        .. code-block:: python

            chat.invoke("Where does Zapur live?").content  # 'Zapur lives in Duskmere.'

    Stream (a chunk per finished block; ``stream_steps=True`` adds one per denoising step):
        .. code-block:: python

            for chunk in chat.stream("What month comes after March?"):
                print(chunk.content, end="")

    Async: ``ainvoke`` / ``astream`` decode in a worker thread; the event loop is never blocked, and
    a consumer that stops iterating (or is cancelled) stops the decode at its next step.

    Tool calling:
        .. code-block:: python

            chat.bind_tools([lookup]).invoke("Where does Kaitabu live?").tool_calls

    Structured output (schema-exact: the JSON skeleton is fixed, the model writes the values):
        .. code-block:: python

            chat.with_structured_output(Person).invoke("Zapur lives in Duskmere and works as a weaver.")
    """

    # -- LangChain identity ----------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "chat-llada"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return self._ls_params("chat", stop, kwargs)

    # -- tools and structured output -------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: ToolChoice = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` to the model (rendered into the system message, ``llada_sdk.tools`` format).

        Args:
            tools: OpenAI-format dicts, pydantic models, functions or LangChain tools.
            tool_choice: ``None`` / ``"auto"`` (the model decides), ``"none"`` (no tool), ``"any"`` /
                ``"required"`` / ``True`` (must call one), a tool name or
                ``{"type": "function", "function": {"name": ...}}`` (must call that one). A forced
                call is schema-exact: its arguments always parse and validate.
            kwargs: bound call keywords (e.g. ``temperature``).

        Returns:
            A runnable that returns ``AIMessage`` with ``tool_calls``.

        Raises:
            ValueError: a bad ``tool_choice`` (the accepted values are listed).
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        choice = normalize_tool_choice(tool_choice, [f["function"]["name"] for f in formatted])
        return super().bind(tools=formatted, tool_choice=choice, **kwargs)

    def with_structured_output(  # type: ignore[override]
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Answers that always parse and validate against ``schema``.

        Args:
            schema: a pydantic model class (returns instances), a TypedDict or a JSON-schema dict
                (returns dicts).
            include_raw: return ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}``.
            method: ``"json_schema"`` (default: the answer is the JSON object, the conversation as
                plain text above it on the canvas), ``"function_calling"`` (a forced tool call) or
                ``"json_mode"`` (the same as ``"json_schema"``: the JSON always follows the schema).
            strict: accepted for compatibility; the output is always schema-exact.

        Returns:
            A runnable returning the parsed output.

        Raises:
            ValueError: an unknown ``method`` or keyword.
        """
        if kwargs:
            raise ValueError(f"unexpected keyword argument(s) {sorted(kwargs)} for `with_structured_output`")
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw)
        if method not in ("json_schema", "json_mode"):
            raise ValueError(f'`method` must be "json_schema", "function_calling" or "json_mode", got {method!r}')
        bound = self.bind(
            response_format=_json_schema(schema),
            ls_structured_output_format={"kwargs": {"method": "json_schema"}, "schema": schema},
        )
        parser: Runnable[Any, Any]
        if isinstance(schema, type) and is_basemodel_subclass(schema):
            parser = PydanticOutputParser(pydantic_object=schema)
        else:
            parser = JsonOutputParser()
        if include_raw:
            parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
            fallback = RunnablePassthrough.assign(parsed=lambda _: None)
            return RunnableMap(raw=bound) | parsed.with_fallbacks([fallback], exception_key="parsing_error")
        return bound | parser

    # -- calls -----------------------------------------------------------------------------------

    def _prepare(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> _Call:
        overrides, call = split_call_kwargs(dict(kwargs), _CALL_KWARGS)
        tools = list(call.get("tools") or [])
        choice = call.get("tool_choice")
        if choice is not None:
            choice = normalize_tool_choice(choice, [tool_spec(t).name for t in tools])
        response_format = call.get("response_format")
        if response_format is not None and not isinstance(response_format, dict):
            response_format = _json_schema(response_format)
        stream_steps = bool(call.get("stream_steps", self.stream_steps))
        timeout = call.get("timeout", self.timeout)
        return _Call(
            model_name=str(call.get("model") or self.model_name),
            options=self.generation_options(stop=stop, **overrides),
            messages=to_llada_messages(messages),
            tools=tools,
            tool_choice=choice,
            response_format=response_format,
            deadline=Deadline(timeout),
            stream_steps=stream_steps,
        )

    def _chunks(self, call: _Call, cancel: threading.Event | None = None) -> Iterator[ChatGenerationChunk]:
        llm = load_model(call.model_name, self.device, self.dtype)
        if call.response_format is not None:
            yield from self._structured(llm, call)
        elif call.tools and call.tool_choice not in (None, "auto", "none"):
            yield from self._forced_call(llm, call)
        else:
            yield from self._free(llm, call, cancel)

    def _last(self, call: _Call, usage: UsageMetadata, finish: str, **extra: Any) -> ChatGenerationChunk:
        meta = {"model_name": call.model_name, "model_provider": "llada", "finish_reason": finish, **extra}
        msg = AIMessageChunk(content="", chunk_position="last", usage_metadata=usage, response_metadata=meta)
        return ChatGenerationChunk(message=msg, generation_info={"finish_reason": finish})

    def _free(self, llm: Any, call: _Call, cancel: threading.Event | None) -> Iterator[ChatGenerationChunk]:
        use_tools = bool(call.tools) and call.tool_choice != "none"
        msgs = with_tools(call.messages, call.tools) if use_tools else call.messages
        stream = llm.stream_chat(msgs, options=call.options)
        text, emitted = "", 0
        result: TextResult | None = None
        try:
            for ev in stream:
                if cancel is not None and cancel.is_set():
                    return
                call.deadline.check("decoding")
                if isinstance(ev, StepEvent) and call.stream_steps:
                    step = {"block": ev.block, "step": ev.step, "filled": [list(pt) for pt in ev.filled[0]]}
                    msg = AIMessageChunk(content="", response_metadata={"llada_steps": [step]})
                    yield ChatGenerationChunk(message=msg)
                elif isinstance(ev, TextEvent):
                    text += ev.delta
                    hold = partial_call_start(text) if use_tools else None
                    safe = text if hold is None else text[:hold]
                    if len(safe) > emitted:
                        yield ChatGenerationChunk(message=AIMessageChunk(content=safe[emitted:]))
                        emitted = len(safe)
                elif isinstance(ev, ResultEvent):
                    result = ev.results[0]
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if result is None:  # pragma: no cover - a stream always ends with a result
            raise RuntimeError("the decode ended without a result")
        final = result.text
        finish = _FINISH.get(result.finish_reason, result.finish_reason)
        if use_tools:
            content, calls, invalid = parse_tool_calls(final)
        else:
            content, calls, invalid = final, [], []
        done = text[:emitted]
        if content.startswith(done) and len(content) > len(done):
            yield ChatGenerationChunk(message=AIMessageChunk(content=content[len(done) :]))
        for i, c in enumerate(calls):
            chunk = tool_call_chunk(
                name=c.name, args=json.dumps(c.arguments, ensure_ascii=False), id=_call_id(), index=i
            )
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk]))
        for j, bad in enumerate(invalid, start=len(calls)):
            chunk = tool_call_chunk(
                name=None, args=f"{TOOL_CALL_OPEN}{bad.text}{TOOL_CALL_CLOSE}", id=_call_id(), index=j
            )
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk]))
        if calls:
            finish = "tool_calls"
        yield self._last(
            call,
            _usage(result),
            finish,
            forward_passes=result.forward_passes,
            forward_passes_saved=result.forward_passes_saved,
        )

    def _prompt_tokens(self, llm: Any, text: str) -> int:
        return len(llm.bos_ids) + len(llm.require_tokenizer().encode(text))

    def _structured(self, llm: Any, call: _Call) -> Iterator[ChatGenerationChunk]:
        assert call.response_format is not None
        prompt = transcript(call.messages)
        call.deadline.check("starting")
        fill = fill_schema_result(llm, prompt, call.response_format, options=call.options)
        call.deadline.check("filling the schema")
        yield ChatGenerationChunk(message=AIMessageChunk(content=fill.text))
        n_in, n_out = self._prompt_tokens(llm, prompt), len(llm.require_tokenizer().encode(fill.text))
        yield self._last(call, UsageMetadata(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out), "stop")

    def _forced_call(self, llm: Any, call: _Call) -> Iterator[ChatGenerationChunk]:
        specs = [tool_spec(t) for t in call.tools]
        prompt = transcript(with_tools(call.messages, call.tools))
        call.deadline.check("starting")
        if call.tool_choice == "any":
            if len(specs) == 1:
                spec = specs[0]
            else:
                head = f'{prompt}\n{TOOL_CALL_OPEN}{{"name": '
                pick = llm.choose(
                    head, [json.dumps(s.name, ensure_ascii=False) for s in specs], mc_num=32, batch_size=32
                )
                spec = specs[int(pick.index)]
        else:
            spec = next(s for s in specs if s.name == call.tool_choice)
        params = spec.parameters or {"type": "object", "properties": {}}
        before = f'{TOOL_CALL_OPEN}{{"name": {json.dumps(spec.name, ensure_ascii=False)}, "arguments": '
        fill = fill_schema_result(
            llm, prompt, params, before=before, after=f"}}{TOOL_CALL_CLOSE}", options=call.options
        )
        call.deadline.check("filling the tool arguments")
        chunk = tool_call_chunk(name=spec.name, args=fill.text, id=_call_id(), index=0)
        yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk]))
        n_in = self._prompt_tokens(llm, prompt)
        n_out = len(llm.require_tokenizer().encode(before + fill.text + "}" + TOOL_CALL_CLOSE))
        usage = UsageMetadata(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out)
        yield self._last(call, usage, "tool_calls")

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._chunks(self._prepare(messages, stop, kwargs))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._chunks(self._prepare(messages, stop, kwargs)))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs)
        async for chunk in iterate_in_thread(lambda cancel: self._chunks(call, cancel)):
            yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, stop, kwargs)
        chunks = [c async for c in iterate_in_thread(lambda cancel: self._chunks(call, cancel))]
        return generate_from_stream(iter(chunks))
