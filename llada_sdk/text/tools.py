"""The one tool-call format of llada-sdk: how tools, tool calls and tool results become chat messages.

Used by ``langchain_llada.ChatLLaDA`` when it prompts any LLaDA checkpoint (the official
LLaDA-8B-Instruct included) and by ``llada_sdk.corpus`` when it writes the training rows of the
bundled model, so the two can never drift apart. Plain Python: no torch, no LangChain.

The format (documented in ``docs/langchain.md``):

- **Tools** (OpenAI format, ``{"type": "function", "function": {"name", "description", "parameters"}}``)
  are listed in the system message, one line per tool, as a signature and the description, after
  a fixed instruction line (``render_tools``)::

      To call a tool, reply <tool_call>{"name": ..., "arguments": {...}}</tool_call>
      lookup(name: string): Look up a person's city, job and parent.

- **A tool call** written by the assistant is one line per call (``render_tool_call``)::

      <tool_call>{"name": "lookup", "arguments": {"name": "Zapur"}}</tool_call>

  the JSON compact in the ``json.dumps`` default style (``", "`` and ``": "`` separators, keys in the
  order given, non-ASCII kept as is).
- **A tool result** is a message with the role ``tool`` whose content is the result text.
- ``parse_tool_calls`` reads the calls back out of generated text; text outside the tags is content.

What this module does not know: chat templates (the messages it returns go through the model's own
template), LangChain message classes (``langchain_llada._utils`` converts them), decoding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TOOL_CALL_OPEN = "<tool_call>"
"""Opens a tool call in the assistant's text."""
TOOL_CALL_CLOSE = "</tool_call>"
"""Closes a tool call."""
TOOL_ROLE = "tool"
"""The chat role of a tool result message."""
INSTRUCTION = 'To call a tool, reply <tool_call>{"name": ..., "arguments": {...}}</tool_call>'
"""The first line of the tools block of the system message."""

Message = dict[str, str]

_CALL = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)(?:" + re.escape(TOOL_CALL_CLOSE) + r"|\Z)", re.S)


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the format needs it: its name, description and JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedToolCall:
    """A tool call read out of generated text."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class InvalidToolCall:
    """A ``<tool_call>`` block that is not ``{"name": str, "arguments": object}`` JSON.

    Attributes:
        text: the block's text (between the tags), or the fragment of a tag.
        error: why it is not a call (``not valid JSON: Expecting ',' delimiter at char 12``, ``missing `name```...).
    """

    text: str
    error: str


def tool_spec(tool: Mapping[str, Any] | ToolSpec) -> ToolSpec:
    """Normalise a tool given in OpenAI format (or as its bare ``function`` object) to a ``ToolSpec``.

    Args:
        tool: ``{"type": "function", "function": {"name": ..., "description": ..., "parameters": ...}}``,
            the inner ``{"name", "description", "parameters"}`` object, or a ``ToolSpec``.

    Returns:
        The ``ToolSpec``.

    Raises:
        TypeError: ``tool`` is not a mapping or a ``ToolSpec``.
        ValueError: it has no string ``name``, or ``parameters`` is not an object.
    """
    if isinstance(tool, ToolSpec):
        return tool
    if not isinstance(tool, Mapping):
        raise TypeError(f"`tool` must be an OpenAI-format tool dict or a ToolSpec, got {type(tool).__name__}: {tool!r}")
    fn = tool.get("function", tool) if tool.get("type", "function") == "function" else tool
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise ValueError(f'`tool` must have a non-empty string "name" (OpenAI format), got {dict(tool)!r}')
    params = fn.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise ValueError(f'`tool` "parameters" must be a JSON-schema object, got {params!r}')
    return ToolSpec(str(fn["name"]), str(fn.get("description") or ""), dict(params))


def _type_name(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    if "anyOf" in schema:
        return "|".join(_type_name(s) for s in schema["anyOf"] if isinstance(s, Mapping))
    kind = schema.get("type", "any")
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return f"list[{_type_name(schema['items'])}]"
    if isinstance(kind, list):
        return "|".join(str(k) for k in kind)
    return str(kind)


def signature(tool: Mapping[str, Any] | ToolSpec) -> str:
    """One line for a tool: ``name(arg: type, opt?: type): description``.

    Args:
        tool: the tool (any form ``tool_spec`` accepts).

    Returns:
        The line, without a newline. Optional parameters (not in ``required``) carry a ``?``.
    """
    spec = tool_spec(tool)
    props = spec.parameters.get("properties") or {}
    required = set(spec.parameters.get("required") or [])
    args = ", ".join(
        f"{name}{'' if name in required else '?'}: {_type_name(sub if isinstance(sub, Mapping) else {})}"
        for name, sub in props.items()
    )
    line = f"{spec.name}({args})"
    description = " ".join(spec.description.split())
    return f"{line}: {description}" if description else line


def render_tools(tools: Sequence[Mapping[str, Any] | ToolSpec]) -> str:
    """The tools block of the system message: the instruction line, then one ``signature`` per tool.

    Args:
        tools: the tools, in the order they are offered.

    Returns:
        The block (no trailing newline).

    Raises:
        ValueError: ``tools`` is empty or two tools share a name.
    """
    specs = [tool_spec(t) for t in tools]
    if not specs:
        raise ValueError("`tools` must hold at least one tool, got an empty list")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"`tools` names must be unique, got {names}")
    return "\n".join([INSTRUCTION, *(signature(s) for s in specs)])


def render_tool_call(name: str, arguments: Mapping[str, Any]) -> str:
    """One tool call as the assistant writes it: ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``.

    Args:
        name: the tool's name.
        arguments: the call's arguments (JSON-serialisable).

    Returns:
        The call text.
    """
    body = json.dumps({"name": name, "arguments": dict(arguments)}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}{body}{TOOL_CALL_CLOSE}"


def assistant_message(content: str, tool_calls: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> Message:
    """An assistant turn: its text, then one line per tool call.

    Args:
        content: the assistant's text (may be empty).
        tool_calls: ``(name, arguments)`` pairs.

    Returns:
        ``{"role": "assistant", "content": ...}``.
    """
    lines = [content.strip()] if content.strip() else []
    lines += [render_tool_call(name, args) for name, args in tool_calls]
    return {"role": "assistant", "content": "\n".join(lines)}


def tool_result_message(content: str) -> Message:
    """A tool result turn: ``{"role": "tool", "content": content}``."""
    return {"role": TOOL_ROLE, "content": content}


def with_tools(messages: Sequence[Message], tools: Sequence[Mapping[str, Any] | ToolSpec]) -> list[Message]:
    """``messages`` with the tools block in the system message (appended to an existing one).

    Args:
        messages: the conversation (``{"role", "content"}`` dicts).
        tools: the tools to offer; none leaves ``messages`` unchanged.

    Returns:
        A new list of messages.
    """
    out = [dict(m) for m in messages]
    if not tools:
        return out
    block = render_tools(tools)
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0]['content'].rstrip()}\n\n{block}" if out[0]["content"].strip() else block
    else:
        out.insert(0, {"role": "system", "content": block})
    return out


def _call_error(body: str, closed: bool) -> tuple[ParsedToolCall | None, str]:
    """The call in a ``<tool_call>`` body, or None and why it is not one."""
    unclosed = "" if closed else " (no `</tool_call>`: the text ended inside the call)"
    if not body:
        return None, 'empty `<tool_call>`: expected {"name": str, "arguments": object}' + unclosed
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at char {exc.pos}{unclosed}"
    if not isinstance(obj, dict):
        return None, f'expected a JSON object {{"name": str, "arguments": object}}, got {type(obj).__name__}'
    if "name" not in obj:
        return None, "missing `name`"
    if not isinstance(obj["name"], str):
        return None, f"`name` must be a string, got {type(obj['name']).__name__}: {obj['name']!r}"
    args = obj.get("arguments", obj.get("parameters", {}))
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return None, f"`arguments` must be an object, got {type(args).__name__}"
    return ParsedToolCall(obj["name"], args), ""


def _scan(text: str) -> tuple[str, list[ParsedToolCall], list[InvalidToolCall]]:
    """``parse_tool_calls`` without stripping the content (streams compare prefixes of it)."""
    calls: list[ParsedToolCall] = []
    invalid: list[tuple[int, InvalidToolCall]] = []
    pieces: list[tuple[int, str]] = []  # (offset, text) of what lies outside the blocks
    pos = 0
    for m in _CALL.finditer(text):
        pieces.append((pos, text[pos : m.start()]))
        pos = m.end()
        body = m.group(1).strip()
        call, error = _call_error(body, closed=m.group(0).endswith(TOOL_CALL_CLOSE))
        if call is None:
            invalid.append((m.start(), InvalidToolCall(body, error)))
        else:
            calls.append(call)
    pieces.append((pos, text[pos:]))
    content = []
    for offset, piece in pieces:
        while (idx := piece.find(TOOL_CALL_CLOSE)) >= 0:
            start = _bare_call_start(piece[:idx])
            error = "`</tool_call>` without an opening `<tool_call>`"
            invalid.append((offset + start, InvalidToolCall(piece[start:idx].strip(), error)))
            piece = piece[:start] + piece[idx + len(TOOL_CALL_CLOSE) :]
        content.append(piece)
    # a lone "<" may be prose; two characters or more of the tag are a call the text cut off
    for k in range(len(TOOL_CALL_OPEN) - 1, 1, -1):
        if content[-1].endswith(TOOL_CALL_OPEN[:k]):
            error = f"unfinished `{TOOL_CALL_OPEN}` tag at the end of the text"
            invalid.append((len(text) - k, InvalidToolCall(TOOL_CALL_OPEN[:k], error)))
            content[-1] = content[-1][:-k]
            break
    return "".join(content), calls, [bad for _, bad in sorted(invalid, key=lambda item: item[0])]


def _bare_call_start(text: str) -> int:
    """Where a call written without its opening tag would start in ``text``: the first ``{`` of the
    last line, or the end when that line has none."""
    line = text.rfind("\n") + 1
    brace = text.find("{", line)
    return len(text) if brace < 0 else brace


def parse_tool_calls(text: str) -> tuple[str, list[ParsedToolCall], list[InvalidToolCall]]:
    """Read the tool calls out of generated text.

    Every ``<tool_call>...</tool_call>`` block (the closing tag may be missing at the very end) is
    removed from the text and parsed as ``{"name": str, "arguments": object}``. No fragment of the
    format stays in the content: a ``</tool_call>`` without an opening tag is removed with the JSON
    before it on its line (from the line's first ``{``), and an opening tag cut off at the end of
    the text (``<tool_c``) is removed; both are reported as invalid calls.

    Args:
        text: what the model wrote.

    Returns:
        ``(content, calls, invalid)``: the text outside the blocks (stripped), the valid calls in
        order, and the blocks that did not parse, in order, each with the reason (``error``).
    """
    content, calls, invalid = _scan(text)
    return content.strip(), calls, invalid


def streamed_content(text: str) -> str:
    """The part of the content of a text still being generated that no later text can change.

    What ``partial_call_start`` holds back is left out; what remains is the content as
    ``parse_tool_calls`` reads it, unstripped, so each result extends the previous one as ``text``
    grows.

    Args:
        text: the text streamed so far.

    Returns:
        The content that is final.
    """
    hold = partial_call_start(text)
    return _scan(text if hold is None else text[:hold])[0]


def partial_call_start(text: str) -> int | None:
    """Where a stream must hold back text that may still become part of a tool call, or None.

    That is the earliest of: ``<tool_call>``; a suffix of ``text`` that is a prefix of
    ``<tool_call>`` or ``</tool_call>``; the first ``{`` of the last (unfinished) line, which a
    ``</tool_call>`` without an opening tag would turn into a call.

    Args:
        text: the text streamed so far.

    Returns:
        The index, or None if nothing has to be held back.
    """
    found = [i for i in (text.find(TOOL_CALL_OPEN), _bare_call_start(text)) if 0 <= i < len(text)]
    for tag in (TOOL_CALL_OPEN, TOOL_CALL_CLOSE):
        for k in range(min(len(tag) - 1, len(text)), 0, -1):
            if tag.startswith(text[-k:]):
                found.append(len(text) - k)
                break
    return min(found) if found else None


def transcript(messages: Sequence[Message]) -> str:
    """A conversation as plain text, the prompt of ``fill_schema`` for structured output and forced
    tool calls (an infill canvas has no chat template): a lone user message is its content; otherwise
    one line per message, ``role: content``.

    Args:
        messages: ``{"role", "content"}`` dicts.

    Returns:
        The text.
    """
    if len(messages) == 1 and messages[0].get("role") == "user":
        return messages[0]["content"].strip()
    return "\n".join(f"{m['role']}: {m['content'].strip()}" for m in messages)
