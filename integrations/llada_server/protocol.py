"""The OpenAI wire format as the server reads it: request bodies, errors, and how a request's fields
become ``GenerationOptions``.

Every ``GenerationOptions`` field is accepted as an extra body field (``steps``, ``block_length``,
``threshold``, ``cache``...; the ``extra_body`` of the openai client) and validated by the same model as
everywhere else. OpenAI fields the server cannot honour (``logprobs``, ``top_p`` other than 1, penalties,
``logit_bias``, ``echo``...) are refused with a 400 naming the field, never ignored; fields that do not
change what a local model writes (``user``, ``metadata``, ``store``...) are accepted and ignored; any
other field is refused by name, so a misspelt option is never silently dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from llada_sdk.options import GenerationOptions
from llada_sdk.text.tools import assistant_message, tool_result_message

OPTION_FIELDS = frozenset(GenerationOptions.model_fields)
"""The ``GenerationOptions`` fields a request may set as extra body fields."""

IGNORED = frozenset(
    {"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key", "parallel_tool_calls"}
)
"""OpenAI fields that do not change what a local model writes: accepted and ignored."""


class APIError(Exception):
    """An error answered in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad(param: str | None, message: str, code: str | None = None) -> APIError:
    """A 400 naming ``param``."""
    return APIError(400, message, param=param, code=code)


# -- fields ------------------------------------------------------------------------------------------

CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "seed",
        "stop",
        "n",
        "tools",
        "tool_choice",
        "response_format",
        "top_p",
        "logprobs",
        "top_logprobs",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "modalities",
        "audio",
        "prediction",
        "reasoning_effort",
        "functions",
        "function_call",
        "web_search_options",
    }
)
COMPLETION_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "suffix",
        "stream",
        "stream_options",
        "max_tokens",
        "temperature",
        "seed",
        "stop",
        "n",
        "top_p",
        "logprobs",
        "echo",
        "best_of",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "length",
    }
)
INFILL_FIELDS = frozenset({"model", "text", "max_tokens", "temperature", "seed", "stop", "stream", "stream_options"})
EXTENSIONS = frozenset({"stream_steps"})
"""Fields of this server beyond OpenAI and the options: ``stream_steps`` streams the canvas per step."""


def _unsupported(body: Mapping[str, Any]) -> None:
    """Refuse known OpenAI fields whose requested behaviour this server cannot give."""
    checks: list[tuple[str, Any, str]] = [
        ("top_p", lambda v: v is None or v == 1, "must be 1 (nucleus sampling is not supported)"),
        ("logprobs", lambda v: v in (None, False, 0), "is not supported (log-probabilities are not returned)"),
        ("top_logprobs", lambda v: v in (None, 0), "is not supported (log-probabilities are not returned)"),
        ("frequency_penalty", lambda v: v in (None, 0), "must be 0 (penalties are not supported)"),
        ("presence_penalty", lambda v: v in (None, 0), "must be 0 (penalties are not supported)"),
        ("logit_bias", lambda v: not v, "is not supported"),
        ("echo", lambda v: v in (None, False), "is not supported"),
        ("best_of", lambda v: v in (None, 1), "must be 1"),
        ("modalities", lambda v: v in (None, ["text"]), 'must be ["text"]'),
        ("audio", lambda v: v is None, "is not supported (text only)"),
        ("prediction", lambda v: v is None, "is not supported"),
        ("reasoning_effort", lambda v: v is None, "is not supported (not a reasoning model)"),
        ("functions", lambda v: v is None, "is the deprecated form of `tools`: send `tools`"),
        ("function_call", lambda v: v is None, "is the deprecated form of `tool_choice`: send `tool_choice`"),
        ("web_search_options", lambda v: v is None, "is not supported"),
    ]
    for name, ok, why in checks:
        if name in body and not ok(body[name]):
            raise bad(name, f"`{name}` {why}; got {body[name]!r}", "unsupported_parameter")


def check_fields(body: Any, known: frozenset[str]) -> dict[str, Any]:
    """``body`` as a dict whose every field is known; the first unknown one is named."""
    if not isinstance(body, dict):
        raise bad(None, f"the request body must be a JSON object, got {type(body).__name__}")
    for name in body:
        if name not in known and name not in OPTION_FIELDS and name not in IGNORED and name not in EXTENSIONS:
            raise bad(
                name,
                f"unknown field `{name}`: not an OpenAI field of this endpoint nor a generation option "
                f"({', '.join(sorted(OPTION_FIELDS))})",
            )
    _unsupported(body)
    return body


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def options_from(body: Mapping[str, Any], base: GenerationOptions, *, max_tokens_cap: int) -> GenerationOptions:
    """The request's ``GenerationOptions``: ``base`` (the server's defaults), then the OpenAI fields
    (``max_tokens``/``max_completion_tokens``, ``temperature``, ``seed``, ``stop``), then any option field.

    A ``max_tokens`` that the default ``block_length`` does not divide gets the largest block length
    that divides it and is no larger than the default, unless the request sets ``block_length`` itself.
    """
    updates: dict[str, Any] = {k: body[k] for k in body if k in OPTION_FIELDS and k != "max_tokens"}
    given = [k for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None]
    if given:
        name = given[0]
        value = body[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad(name, f"`{name}` must be a positive integer, got {value!r}")
        if value > max_tokens_cap:
            raise bad(name, f"`{name}` ({value}) is over this server's limit of {max_tokens_cap} tokens")
        updates["max_tokens"] = value
        if "block_length" not in body and "steps" not in body:
            block = base.block_length or value
            if value % block:
                updates["block_length"] = _largest_divisor(value, block)
    if "stop" in body:
        stop = body["stop"]
        if stop is None:
            updates["stop"] = []
        elif isinstance(stop, str):
            updates["stop"] = [stop]
        else:
            updates["stop"] = stop
    for name in ("temperature", "seed"):
        if body.get(name) is None:
            updates.pop(name, None)
        elif isinstance(body[name], float) and not math.isfinite(body[name]):
            raise bad(name, f"`{name}` must be a finite number, got {body[name]!r}")
    try:
        opts = base.with_overrides(**updates)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        rule = err["msg"].removeprefix("Value error, ")
        if field:
            shown = f"; got {updates[field]!r}" if field in updates else ""
            raise bad(field, f"`{field}`: {rule}{shown}") from exc
        # a rule between fields: its message names them, the first one is the parameter
        raise bad(rule.split("`")[1] if rule.count("`") >= 2 else None, rule) from exc
    if opts.max_tokens > max_tokens_cap:
        raise bad("max_tokens", f"`max_tokens` ({opts.max_tokens}) is over this server's limit of {max_tokens_cap}")
    return opts


def positive_int(body: Mapping[str, Any], name: str, default: int, at_most: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= at_most:
        raise bad(name, f"`{name}` must be an integer from 1 to {at_most}, got {value!r}")
    return value


# -- chat messages -----------------------------------------------------------------------------------


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise bad(
                    f"{where}.content[{j}]", f"`{where}.content[{j}]` has type {kind!r}; only text parts are read"
                )
        return "".join(parts)
    raise bad(f"{where}.content", f"`{where}.content` must be a string or a list of text parts")


def chat_messages(messages: Any) -> list[dict[str, str]]:
    """OpenAI chat messages as the core's ``{"role", "content"}`` dicts (``llada_sdk.text.tools`` format:
    an assistant's ``tool_calls`` rendered after its text, ``tool`` results as turns)."""
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "`messages` must be a non-empty list of messages")
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(where, f"`{where}` must be an object with `role` and `content`")
        role = m.get("role")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text(m.get("content"), where)})
        elif role == "user":
            out.append({"role": "user", "content": _text(m.get("content"), where)})
        elif role == "assistant":
            calls = []
            for j, call in enumerate(m.get("tool_calls") or []):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise bad(f"{where}.tool_calls[{j}]", f"`{where}.tool_calls[{j}]` needs `function.name`")
                raw = fn.get("arguments") or "{}"
                try:
                    args = json.loads(raw) if isinstance(raw, str) else raw
                except json.JSONDecodeError as exc:
                    param = f"{where}.tool_calls[{j}].function.arguments"
                    raise bad(param, f"`{param}` is not JSON: {exc.msg} at char {exc.pos}") from exc
                if not isinstance(args, dict):
                    param = f"{where}.tool_calls[{j}].function.arguments"
                    raise bad(param, f"`{param}` must be a JSON object")
                calls.append((fn["name"], args))
            out.append(assistant_message(_text(m.get("content"), where), calls))
        elif role == "tool":
            out.append(tool_result_message(_text(m.get("content"), where)))
        else:
            raise bad(
                f"{where}.role",
                f"`{where}.role` must be system, developer, user, assistant or tool, got {role!r}",
            )
    return out


def response_schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema a ``response_format`` asks for, or None (text).

    ``json_object`` (any JSON object) is refused: the answer is schema-exact only with a schema whose
    objects list their properties, so a client must send ``json_schema``."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise bad("response_format", "`response_format` must be an object")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        raise bad(
            "response_format",
            '`response_format` {"type": "json_object"} is not supported: JSON is written schema-exactly from '
            'a schema; send {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}',
            "unsupported_parameter",
        )
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise bad("response_format.json_schema.schema", "`response_format.json_schema.schema` must be an object")
        return schema
    raise bad("response_format.type", f"`response_format.type` must be text, json_object or json_schema, got {kind!r}")
