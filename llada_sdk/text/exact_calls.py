"""Exact tool calls: what the model wrote as a call, made into a call of an offered tool whose arguments
validate against that tool's schema.

A small model writes the call *format* long before it reliably copies a tool's name or argument names it
has never seen (``find_persn``, ``{"nme": "Zapur"}``); a large one still slips now and then. Any slip is a
failed agent step, so by default (``GenerationOptions.exact_tool_calls``) a call is repaired:

1. **the tool**: the name written, when it is offered; else the only offered tool; else the offered tool
   whose quoted name the model finds likeliest right after ``<tool_call>{"name": ``;
2. **the arguments**: the values written, kept under the schema's keys -- a key written as the schema
   has it first, then the remaining values in order onto the remaining parameters whose JSON type they
   have (a value cut off by the end of the canvas is not kept);
3. when that does not validate, the arguments are filled schema-exact (``fill_schema``: the skeleton is
   fixed on the canvas and the model writes only the values).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llada_sdk.text.parts import TextModel
from llada_sdk.text.schema import validate
from llada_sdk.text.structured import SchemaFill, fill_schema_result
from llada_sdk.text.tools import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, InvalidToolCall, ParsedToolCall, ToolSpec

_NAME = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_PAIR = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)')
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def written_calls(
    calls: Sequence[ParsedToolCall], invalid: Sequence[InvalidToolCall]
) -> list[tuple[str | None, dict[str, Any]]]:
    """``(name or None, arguments)`` of every call written: the parsed ones, then what can be read out of
    the malformed ones (complete ``"key": value`` pairs only)."""
    out: list[tuple[str | None, dict[str, Any]]] = [(c.name, dict(c.arguments)) for c in calls]
    for bad in invalid:
        name = _NAME.search(bad.text)
        rest = bad.text[name.end() :] if name else bad.text
        args = {json.loads(f'"{k}"'): json.loads(v) for k, v in _PAIR.findall(rest) if k != "arguments"}
        out.append((json.loads(f'"{name.group(1)}"') if name else None, args))
    return out


def _fits(value: Any, schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    if "enum" in schema:
        return value in schema["enum"]
    if not isinstance(kind, str) or kind not in _TYPES:
        return False
    if isinstance(value, bool) and kind != "boolean":
        return False
    return isinstance(value, _TYPES[kind])


def map_arguments(written: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The written values under the schema's keys: same key first, then the rest in order onto the
    parameters still empty (required ones first) whose type they have."""
    props: Mapping[str, Any] = parameters.get("properties") or {}
    required = [k for k in parameters.get("required") or [] if k in props]
    out = {k: v for k, v in written.items() if k in props}
    spare = [v for k, v in written.items() if k not in props]
    for key in [*required, *(k for k in props if k not in required)]:
        if key in out or not spare:
            continue
        schema = props[key] if isinstance(props[key], Mapping) else {}
        for i, value in enumerate(spare):
            if _fits(value, schema):
                out[key] = spare.pop(i)
                break
    return out


def likeliest_tool(llm: TextModel, prompt: str, specs: Sequence[ToolSpec]) -> ToolSpec:
    """The offered tool whose quoted name the model finds likeliest right after the call opens."""
    if len(specs) == 1:
        return specs[0]
    head = f'{prompt}\n{TOOL_CALL_OPEN}{{"name": '
    pick = llm.choose(head, [json.dumps(s.name, ensure_ascii=False) for s in specs], mc_num=32, batch_size=32)
    return specs[int(pick.index)]


def fill_arguments(llm: TextModel, prompt: str, spec: ToolSpec, options: Any) -> SchemaFill:
    """``spec``'s arguments filled schema-exact after ``<tool_call>{"name": ..., "arguments": ``."""
    params = spec.parameters or {"type": "object", "properties": {}}
    before = f'{TOOL_CALL_OPEN}{{"name": {json.dumps(spec.name, ensure_ascii=False)}, "arguments": '
    return fill_schema_result(llm, prompt, params, before=before, after=f"}}{TOOL_CALL_CLOSE}", options=options)


def is_exact(call: ParsedToolCall, specs: Sequence[ToolSpec]) -> bool:
    """``call`` names an offered tool, uses only its argument names, and validates against its schema."""
    spec = next((s for s in specs if s.name == call.name), None)
    if spec is None:
        return False
    params = spec.parameters or {"type": "object", "properties": {}}
    if params.get("additionalProperties") is not True and not set(call.arguments) <= set(
        params.get("properties") or {}
    ):
        return False  # a key the tool does not take (the function would reject it)
    try:
        validate(dict(call.arguments), params)
    except ValueError:
        return False
    return True


def exact_call(
    llm: TextModel,
    prompt: str,
    specs: Sequence[ToolSpec],
    written: Sequence[tuple[str | None, dict[str, Any]]],
    options: Any,
    tick: Callable[[str], None],
) -> tuple[str, str]:
    """``(tool name, arguments JSON)``: the first written call made exact (see the module docstring).
    ``prompt`` is the conversation as ``transcript`` writes it (the canvas of the likelihood and the fill)."""
    name, args = written[0] if written else (None, {})
    offered = {s.name: s for s in specs}
    spec = offered.get(name) if name is not None else None
    if spec is None:
        spec = likeliest_tool(llm, prompt, specs)
        tick("choosing the tool")
    params = spec.parameters or {"type": "object", "properties": {}}
    mapped = map_arguments(args, params)
    try:
        validate(mapped, params)
    except ValueError:
        fill = fill_arguments(llm, prompt, spec, options)
        tick("filling the tool arguments")
        return spec.name, fill.text
    return spec.name, json.dumps(mapped, ensure_ascii=False)
