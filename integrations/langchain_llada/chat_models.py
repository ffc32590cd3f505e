"""``ChatLLaDA``: a LLaDA masked-diffusion model as a LangChain chat model.

Input flow: LangChain messages -> ``{"role", "content"}`` dicts in the tool-call format of
``llada_sdk.text.tools`` (tools in the system message, tool calls and results as turns) -> the model's
chat template -> ``LLaDA.stream_chat``. Output flow: the ``TextEvent`` of each finished block is a
chunk; tool calls are parsed out of the text at the end and streamed as ``tool_call_chunks``; the
last chunk carries usage and response metadata.

Forced tool calls (``tool_choice`` "any" / "required" / a name) and ``with_structured_output`` do not
generate free text: the JSON skeleton of the schema is fixed on the canvas and the model writes only
the values (``llada_sdk.text.structured.fill_schema``), so the result always parses and validates.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
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

from langchain_llada._remote import chat_turn
from langchain_llada._utils import (
    Deadline,
    LLaDAParams,
    iterate_in_thread,
    load_model,
    split_call_kwargs,
    to_llada_messages,
)
from llada_sdk.options import GenerationOptions
from llada_sdk.results import StepEvent
from llada_sdk.text.assistant import TurnDelta, TurnEnd, assistant_turn, normalize_tool_choice
from llada_sdk.text.structured import json_schema_of
from llada_sdk.text.tools import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    tool_spec,
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


class _Stopped(Exception):
    """The consumer stopped iterating (async cancellation): end the turn at its next step."""


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
    sent: dict[str, Any] = field(default_factory=dict)
    """The options this call sets itself (sent to a server with ``base_url``)."""
    fit_calls: bool = False
    """``max_tokens`` was left at its default: the canvas may grow to hold a call (``assistant_turn``)."""
    invalid_errors: dict[str, str] = field(default_factory=dict)
    """Why each invalid tool call (by id) did not parse: merging chunks drops LangChain's ``error``."""


def _json_schema(schema: Any) -> dict[str, Any]:
    """A JSON schema for ``with_structured_output``: ``json_schema_of``, or LangChain's conversion
    for what it does not know (pydantic v1 models)."""
    try:
        return json_schema_of(schema)
    except TypeError:
        return convert_to_json_schema(schema)


def _with_errors(result: ChatResult, call: _Call) -> ChatResult:
    """``result`` with the parse reason in each ``invalid_tool_calls[i].error`` (adding chunks together
    resets it to None)."""
    for gen in result.generations:
        msg = gen.message
        if isinstance(msg, AIMessage):
            for bad in msg.invalid_tool_calls:
                if bad.get("id") in call.invalid_errors:
                    bad["error"] = call.invalid_errors[bad["id"]]  # type: ignore[index]
    return result


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
        """Offer ``tools`` to the model (rendered into the system message, ``llada_sdk.text.tools`` format).

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
        sent = self.sent_options(stop=stop, **overrides)
        return _Call(
            model_name=str(call.get("model") or self.model_name),
            options=self.generation_options(stop=stop, **overrides),
            messages=to_llada_messages(messages),
            tools=tools,
            tool_choice=choice,
            response_format=response_format,
            deadline=Deadline(timeout),
            stream_steps=stream_steps,
            sent=sent if self.base_url is not None else {},
            fit_calls="max_tokens" not in sent,
        )

    def _chunks(self, call: _Call, cancel: threading.Event | None = None) -> Iterator[ChatGenerationChunk]:
        """The turn (``llada_sdk.text.assistant``: free text, a forced call or a structured answer) as chunks,
        run here or, with ``base_url``, by the server."""

        def check(what: str) -> None:
            if cancel is not None and cancel.is_set():
                raise _Stopped
            call.deadline.check(what)

        remote = self.remote()
        turn: Iterator[Any]
        if remote is not None:
            turn = chat_turn(
                *remote,
                call.model_name,
                call.messages,
                call.sent,
                tools=call.tools,
                tool_choice=call.tool_choice,
                response_format=call.response_format,
                stream_steps=call.stream_steps,
                timeout=call.deadline.timeout,
                check=check,
            )
        else:
            turn = assistant_turn(
                load_model(call.model_name, self.device, self.dtype),
                call.messages,
                options=call.options,
                tools=call.tools,
                tool_choice=call.tool_choice,
                response_format=call.response_format,
                check=check,
                fit_calls=call.fit_calls,
            )
        try:
            for ev in turn:
                if isinstance(ev, StepEvent):
                    if call.stream_steps:
                        step = {"block": ev.block, "step": ev.step, "filled": [list(pt) for pt in ev.filled[0]]}
                        yield ChatGenerationChunk(
                            message=AIMessageChunk(content="", response_metadata={"llada_steps": [step]})
                        )
                elif isinstance(ev, TurnDelta):
                    yield ChatGenerationChunk(message=AIMessageChunk(content=ev.text))
                else:
                    yield from self._end(call, ev)
        except _Stopped:
            return

    def _end(self, call: _Call, end: TurnEnd) -> Iterator[ChatGenerationChunk]:
        for i, c in enumerate(end.tool_calls):
            chunk = tool_call_chunk(name=c.name, args=c.arguments, id=_call_id(), index=i)
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk]))
        for j, bad in enumerate(end.invalid_tool_calls, start=len(end.tool_calls)):
            call_id = _call_id()
            call.invalid_errors[call_id] = bad.error
            chunk = tool_call_chunk(name=None, args=f"{TOOL_CALL_OPEN}{bad.text}{TOOL_CALL_CLOSE}", id=call_id, index=j)
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk]))
        usage = UsageMetadata(
            input_tokens=end.prompt_tokens,
            output_tokens=end.completion_tokens,
            total_tokens=end.prompt_tokens + end.completion_tokens,
        )
        passes = (
            {"forward_passes": end.forward_passes, "forward_passes_saved": end.forward_passes_saved}
            if end.forward_passes
            else {}
        )
        yield self._last(call, usage, end.finish_reason, **passes)

    def _last(self, call: _Call, usage: UsageMetadata, finish: str, **extra: Any) -> ChatGenerationChunk:
        meta = {"model_name": call.model_name, "model_provider": "llada", "finish_reason": finish, **extra}
        msg = AIMessageChunk(content="", chunk_position="last", usage_metadata=usage, response_metadata=meta)
        return ChatGenerationChunk(message=msg, generation_info={"finish_reason": finish})

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
        call = self._prepare(messages, stop, kwargs)
        return _with_errors(generate_from_stream(self._chunks(call)), call)

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
        return _with_errors(generate_from_stream(iter(chunks)), call)
