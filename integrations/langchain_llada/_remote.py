"""The LangChain classes over HTTP: the same calls answered by a ``llada serve`` (``base_url=``).

Chat turns go to ``/v1/chat/completions`` and completions (forward, ``suffix``, ``[MASK]`` spans) to
``/v1/completions``, always streamed; the server's events come back as the core's own events
(``TurnDelta``/``TurnEnd``/``StepEvent`` for chat, ``TextEvent``/``ResultEvent`` for completions), so the
classes handle a remote call exactly like a local one. Options travel as body fields, validated by the
server with the same model. Plain ``httpx`` (a LangChain dependency): no ``openai`` package needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from llada_sdk.results import ResultEvent, StepEvent, TextEvent, TextResult
from llada_sdk.text.assistant import ToolCall, TurnDelta, TurnEnd, TurnEvent


class RemoteError(RuntimeError):
    """An error answered by the server (its OpenAI-shaped message, status and parameter)."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(f"llada server answered {status}: {message}")
        self.status, self.message, self.param = status, message, param


def _raise_for(status: int, body: bytes) -> None:
    try:
        err = json.loads(body).get("error") or {}
    except (json.JSONDecodeError, AttributeError):
        err = {}
    message = str(err.get("message") or body[:200].decode("utf-8", "replace"))
    if status == 400:
        raise ValueError(message)  # as the same bad value raises locally
    if status == 408:
        raise TimeoutError(message)
    raise RemoteError(status, message, err.get("param"))


def _events(
    base_url: str,
    api_key: str | None,
    route: str,
    body: dict[str, Any],
    timeout: float | None,
    check: Callable[[str], None],
) -> Iterator[dict[str, Any]]:
    """The JSON events of one streamed request (closing the iterator closes the connection, which
    cancels the request on the server at its next step)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = base_url.rstrip("/") + route
    with (
        httpx.Client(timeout=httpx.Timeout(timeout, connect=30.0)) as client,
        client.stream("POST", url, json=body, headers=headers) as r,
    ):
        if r.status_code != 200:
            _raise_for(r.status_code, r.read())
        for line in r.iter_lines():
            check("decoding")
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                return
            event = json.loads(data)
            if "error" in event:
                err = event["error"] or {}
                raise RemoteError(500, str(err.get("message")), err.get("param"))
            yield event


def _tool_choice(choice: str | None) -> Any:
    if choice in (None, "auto", "none"):
        return choice
    if choice == "any":
        return "required"
    return {"type": "function", "function": {"name": choice}}


def chat_turn(
    base_url: str,
    api_key: str | None,
    model: str,
    messages: Sequence[Mapping[str, str]],
    options: Mapping[str, Any],
    *,
    tools: Sequence[Mapping[str, Any]] = (),
    tool_choice: str | None = None,
    response_format: Mapping[str, Any] | None = None,
    stream_steps: bool = False,
    timeout: float | None = None,
    check: Callable[[str], None] = lambda _what: None,
) -> Iterator[TurnEvent]:
    """One assistant turn answered by the server, as ``llada_sdk.text.assistant.assistant_turn`` events."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [dict(m) for m in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        **options,
    }
    if tools:
        body["tools"] = [dict(t) for t in tools]
        if tool_choice is not None:
            body["tool_choice"] = _tool_choice(tool_choice)
    if response_format is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": dict(response_format)},
        }
    if stream_steps:
        body["stream_steps"] = True
    content, calls, finish, usage = "", [], "stop", {"prompt_tokens": 0, "completion_tokens": 0}
    for event in _events(base_url, api_key, "/chat/completions", body, timeout, check):
        if "llada_step" in event:
            step = event["llada_step"]
            yield StepEvent(step["block"], step["step"], [[tuple(p) for p in step["filled"]]])
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content += delta["content"]
                yield TurnDelta(delta["content"])
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                calls.append(ToolCall(str(fn.get("name")), str(fn.get("arguments") or "{}")))
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    yield TurnEnd(
        content=content,
        tool_calls=calls,
        finish_reason=finish,
        prompt_tokens=int(usage["prompt_tokens"]),
        completion_tokens=int(usage["completion_tokens"]),
    )


def completion_events(
    base_url: str,
    api_key: str | None,
    model: str,
    prompt: str,
    suffix: str | None,
    options: Mapping[str, Any],
    *,
    timeout: float | None = None,
    check: Callable[[str], None] = lambda _what: None,
) -> Iterator[TextEvent | ResultEvent]:
    """A completion (forward, with ``suffix``, or infilling ``[MASK]`` spans) answered by the server, as
    the core's ``TextEvent``s and a final ``ResultEvent``."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": True, "stream_options": {"include_usage": True}}
    if suffix is not None:
        body["suffix"] = suffix
    body.update(options)
    text, usage = "", {"prompt_tokens": 0, "completion_tokens": 0}
    last: dict[str, Any] = {}
    for event in _events(base_url, api_key, "/completions", body, timeout, check):
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            if choice.get("text"):
                text += choice["text"]
                yield TextEvent(row=0, block=0, delta=choice["text"])
            if choice.get("finish_reason"):
                last = choice
    fills = last.get("llada") or {}
    finish = str(last.get("finish_reason") or "length")
    result = TextResult(
        text=text,
        fills=list(fills.get("fills", [])),
        lengths=list(fills.get("lengths", [])),
        finish_reason="eos" if finish == "stop" else finish,  # the core's name for an answer that ended
        prompt_tokens=int(usage["prompt_tokens"]),
        completion_tokens=int(usage["completion_tokens"]),
    )
    yield ResultEvent(results=[result])
