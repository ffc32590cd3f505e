"""One assistant turn with tools and structured output: what every chat front end runs.

LangChain's ``ChatLLaDA`` and the OpenAI-compatible server both call ``assistant_turn``. It picks the
mode from the request:

- **free text** (no tools, ``tool_choice`` "none"/"auto"): the chat template, streamed a block at a
  time; offered tools are listed in the system message and calls are parsed out of the text at the end
  (text that may be the start of a ``<tool_call>`` is held back, so a call never leaks into content);
- **a forced tool call** (``tool_choice`` "any"/"required"/a name): the call's JSON skeleton is fixed
  on an infill canvas and the model writes only the argument values (``structured.fill_schema``), so
  the arguments always parse and validate;
- **a structured answer** (``response_format``, a JSON schema): the same, for the whole answer.

It yields ``TurnDelta`` (content text that only appends), the engine's ``StepEvent`` (free text only,
for live views) and one ``TurnEnd`` (content, tool calls, usage, finish reason).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llada_sdk.options import GenerationOptions
from llada_sdk.results import ResultEvent, StepEvent, TextEvent, TextResult
from llada_sdk.text.exact_calls import exact_call, fill_arguments, is_exact, likeliest_tool, written_calls
from llada_sdk.text.parts import bos_ids
from llada_sdk.text.structured import fill_schema_result
from llada_sdk.text.tools import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    InvalidToolCall,
    ToolSpec,
    parse_tool_calls,
    render_tool_call,
    streamed_content,
    tool_spec,
    transcript,
    with_tools,
)

if TYPE_CHECKING:
    from llada_sdk.text.parts import ModelParts, TextModel

__all__ = ["ToolCall", "TurnDelta", "TurnEnd", "TurnEvent", "assistant_turn", "normalize_tool_choice"]

FINISH_REASONS = {"eos": "stop", "stop": "stop", "length": "length"}
"""``TextResult.finish_reason`` -> the OpenAI/LangChain name."""

_ACCEPTED_CHOICES = (
    '"auto", "any", "required", "none", True, a tool name or {"type": "function", "function": {"name": ...}}'
)


def normalize_tool_choice(tool_choice: Any, names: Sequence[str]) -> str | None:
    """``tool_choice`` as ``None`` / ``"auto"`` / ``"none"`` / ``"any"`` / a tool name.

    Accepts ``None``, ``"auto"``, ``"none"``, ``"any"``, ``"required"`` (= ``"any"``), ``True`` (= ``"any"``),
    a tool's name, or ``{"type": "function", "function": {"name": ...}}``.

    Raises:
        ValueError: anything else, or a name that is not one of ``names``.
    """
    if tool_choice is None or tool_choice in ("auto", "none"):
        return tool_choice  # type: ignore[no-any-return]
    if tool_choice is True or tool_choice in ("any", "required"):
        if not names:
            raise ValueError(f"`tool_choice` ({tool_choice!r}) needs at least one tool; `tools` is empty")
        return "any"
    name: Any = tool_choice
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        name = fn.get("name") if tool_choice.get("type") == "function" and isinstance(fn, dict) else None
        if not isinstance(name, str):
            raise ValueError(f"`tool_choice` must be {_ACCEPTED_CHOICES}; got {tool_choice!r}")
    if isinstance(name, str) and name in names:
        return name
    raise ValueError(f"`tool_choice` must be {_ACCEPTED_CHOICES}; got {tool_choice!r} (tools: {list(names)})")


@dataclass(frozen=True)
class ToolCall:
    """A tool call of the answer: the tool's name and its arguments as JSON text (a JSON object)."""

    name: str
    arguments: str


@dataclass(frozen=True)
class TurnDelta:
    """Content text that became final (the deltas of a turn concatenate to ``TurnEnd.content``)."""

    text: str


@dataclass(frozen=True)
class TurnEnd:
    """The end of a turn.

    Attributes:
        content: the answer's text (tool calls removed; the JSON for a structured answer).
        tool_calls: the valid calls, in order.
        invalid_tool_calls: ``<tool_call>`` blocks that did not parse, with the reason.
        finish_reason: ``"stop"``, ``"length"`` or ``"tool_calls"``.
        prompt_tokens, completion_tokens: usage.
        forward_passes, forward_passes_saved: model calls made, and skipped by the early stop.
    """

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    invalid_tool_calls: list[InvalidToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    forward_passes: int = 0
    forward_passes_saved: int = 0


TurnEvent = TurnDelta | StepEvent | TurnEnd


def assistant_turn(
    llm: TextModel,
    messages: Sequence[Mapping[str, str]],
    *,
    options: GenerationOptions,
    tools: Sequence[Mapping[str, Any]] = (),
    tool_choice: Any = None,
    response_format: Mapping[str, Any] | None = None,
    check: Callable[[str], None] | None = None,
    fit_calls: bool = False,
) -> Iterator[TurnEvent]:
    """Run one assistant turn; see the module docstring for the modes.

    Args:
        llm: the model.
        messages: ``{"role", "content"}`` dicts in the format of ``llada_sdk.text.tools`` (tool calls and
            tool results already rendered as turns).
        options: the generation options.
        tools: OpenAI-format tools.
        tool_choice: what ``normalize_tool_choice`` accepts.
        response_format: a JSON schema the answer must follow (schema-exact).
        check: called with what is being done (``"decoding"``...) between steps; raising stops the turn
            (deadlines, cancellation).
        fit_calls: the caller left ``max_tokens`` at its default: with tools offered, the canvas grows
            to hold the longest call an offered tool can take (``call_room``), so a long tool or
            argument name is not cut into an invalid call.

    Raises:
        ValueError: a bad ``tool_choice`` or tool (named).
    """
    specs = [tool_spec(t) for t in tools]
    choice = normalize_tool_choice(tool_choice, [s.name for s in specs])
    tick = check or (lambda _what: None)
    if response_format is not None:
        return _structured(llm, [dict(m) for m in messages], dict(response_format), options, tick)
    if specs and choice not in (None, "auto", "none"):
        return _forced_call(llm, [dict(m) for m in messages], list(tools), choice, options, tick)
    offered = list(tools) if choice != "none" else []
    if offered and fit_calls:
        room = call_room(llm, specs, options)
        if room > options.max_tokens:
            try:
                options = GenerationOptions.model_validate({**options.model_dump(), "max_tokens": room})
            except ValueError:
                pass  # `steps` fixed for the old length: the caller's options stand
    return _free(llm, [dict(m) for m in messages], offered, options, tick)


CALL_VALUE_TOKENS = 12
"""Tokens ``call_room`` allows for each argument's value (a name, a city, a short query)."""


def call_room(llm: ModelParts, specs: Sequence[ToolSpec], options: GenerationOptions) -> int:
    """Canvas tokens that hold a call of any of ``specs``: the call with empty values, plus
    ``CALL_VALUE_TOKENS`` per argument, rounded up to a whole block."""
    tok = llm.require_tokenizer()
    need = 0
    for spec in specs:
        args = list((spec.parameters.get("properties") or {}).keys())
        need = max(
            need, len(tok.encode(render_tool_call(spec.name, dict.fromkeys(args, "")))) + CALL_VALUE_TOKENS * len(args)
        )
    block = options.block_length or need
    return -(-need // block) * block


def _free(
    llm: TextModel,
    messages: list[dict[str, str]],
    tools: list[Mapping[str, Any]],
    options: GenerationOptions,
    tick: Callable[[str], None],
) -> Iterator[TurnEvent]:
    msgs = with_tools(messages, tools) if tools else [dict(m) for m in messages]
    stream = llm.stream_chat(msgs, options=options)
    text, shown = "", ""
    result: TextResult | None = None
    try:
        for ev in stream:
            tick("decoding")
            if isinstance(ev, StepEvent):
                yield ev
            elif isinstance(ev, TextEvent):
                text += ev.delta
                # only content no later text can turn into (part of) a tool call
                safe = streamed_content(text) if tools else text
                if len(safe) > len(shown) and safe.startswith(shown):
                    yield TurnDelta(safe[len(shown) :])
                    shown = safe
            elif isinstance(ev, ResultEvent):
                result = ev.results[0]
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    if result is None:  # pragma: no cover - a stream always ends with a result
        raise RuntimeError("the decode ended without a result")
    content, calls, invalid = parse_tool_calls(result.text) if tools else (result.text, [], [])
    if content.startswith(shown) and len(content) > len(shown):
        yield TurnDelta(content[len(shown) :])
    made = [ToolCall(c.name, json.dumps(c.arguments, ensure_ascii=False)) for c in calls]
    specs = [tool_spec(t) for t in tools]
    if options.exact_tool_calls and (invalid or not all(is_exact(c, specs) for c in calls)):
        prompt = transcript(with_tools(messages, tools))
        made = [ToolCall(*exact_call(llm, prompt, specs, written_calls(calls, invalid), options, tick))]
        invalid = []
    finish = "tool_calls" if made else FINISH_REASONS.get(result.finish_reason, result.finish_reason)
    yield TurnEnd(
        content=content,
        tool_calls=made,
        invalid_tool_calls=invalid,
        finish_reason=finish,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        forward_passes=result.forward_passes,
        forward_passes_saved=result.forward_passes_saved,
    )


def _tokens(llm: ModelParts, text: str) -> int:
    return len(llm.require_tokenizer().encode(text))


def _structured(
    llm: TextModel,
    messages: list[dict[str, str]],
    schema: dict[str, Any],
    options: GenerationOptions,
    tick: Callable[[str], None],
) -> Iterator[TurnEvent]:
    prompt = transcript([dict(m) for m in messages])
    tick("starting")
    fill = fill_schema_result(llm, prompt, schema, options=options)
    tick("filling the schema")
    yield TurnDelta(fill.text)
    yield TurnEnd(
        content=fill.text,
        prompt_tokens=len(bos_ids(llm.config)) + _tokens(llm, prompt),
        completion_tokens=_tokens(llm, fill.text),
    )


def _forced_call(
    llm: TextModel,
    messages: list[dict[str, str]],
    tools: list[Mapping[str, Any]],
    choice: str,
    options: GenerationOptions,
    tick: Callable[[str], None],
) -> Iterator[TurnEvent]:
    specs = [tool_spec(t) for t in tools]
    prompt = transcript(with_tools(messages, tools))
    tick("starting")
    spec = next(s for s in specs if s.name == choice) if choice != "any" else likeliest_tool(llm, prompt, specs)
    fill = fill_arguments(llm, prompt, spec, options)
    tick("filling the tool arguments")
    yield TurnEnd(
        content="",
        tool_calls=[ToolCall(spec.name, fill.text)],
        finish_reason="tool_calls",
        prompt_tokens=len(bos_ids(llm.config)) + _tokens(llm, prompt),
        completion_tokens=_tokens(
            llm, f'{TOOL_CALL_OPEN}{{"name": {json.dumps(spec.name)}, "arguments": {fill.text}}}{TOOL_CALL_CLOSE}'
        ),
    )
