"""``llada serve``: the OpenAI-compatible server, driven by the real ``openai`` client, raw HTTP/SSE
and LangChain's ``ChatOpenAI``, on a loopback port each test module starts itself."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from pydantic import BaseModel  # noqa: E402

from llada_sdk import LLaDA  # noqa: E402
from llada_server import ServerSettings, create_app  # noqa: E402

MODEL = "llada-tiny-kb"
ASK = [{"role": "user", "content": "Where does Zapur live?"}]
ANSWER_ZAPUR = "Zapur lives in Duskmere."
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look up a person's city, job and parent.",
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    },
}


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` on a free loopback port; yields the base URL (``http://127.0.0.1:PORT``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def base(bundled: LLaDA) -> Iterator[str]:
    with serving(create_app(bundled)) as url:
        yield url


@pytest.fixture
def client(base: str) -> Any:
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)


# -- answers ----------------------------------------------------------------------------------------


def test_chat_equals_the_sdk_answer(client: Any, bundled: LLaDA) -> None:
    r = client.chat.completions.create(model=MODEL, messages=ASK)
    want = bundled.chat(ASK)
    assert r.choices[0].message.content == want.text == "Zapur lives in Duskmere."
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == want.prompt_tokens and r.usage.completion_tokens == want.completion_tokens
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_stream_sends_role_then_appending_deltas_then_finish_and_usage(client: Any, bundled: LLaDA) -> None:
    msgs = [{"role": "user", "content": "What month comes after March?"}]
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=msgs, stream=True, stream_options={"include_usage": True}, max_tokens=32
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert len(deltas) >= 2  # one per finished block, not one for the whole answer
    assert "".join(deltas) == bundled.chat(msgs).text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_extra_body_options_reach_the_decoder(client: Any, bundled: LLaDA) -> None:
    r = client.chat.completions.create(model=MODEL, messages=ASK, extra_body={"threshold": 0.9, "block_length": 32})
    assert r.choices[0].message.content == bundled.chat(ASK, threshold=0.9, block_length=32).text
    r = client.chat.completions.create(model=MODEL, messages=ASK, max_completion_tokens=12)
    assert r.usage.completion_tokens <= 12  # 12 is not a multiple of the default block: blocks of 6


def test_tools_auto_forced_and_streamed(client: Any) -> None:
    ask = [{"role": "user", "content": "Where does Kaitabu live?"}]
    r = client.chat.completions.create(model=MODEL, messages=ask, tools=[LOOKUP])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"name": "Kaitabu"}
    forced = client.chat.completions.create(
        model=MODEL, messages=ask, tools=[LOOKUP], tool_choice={"type": "function", "function": {"name": "lookup"}}
    )
    assert set(json.loads(forced.choices[0].message.tool_calls[0].function.arguments)) == {"name"}
    stream = list(client.chat.completions.create(model=MODEL, messages=ask, tools=[LOOKUP], stream=True))
    calls = [tc for c in stream if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [c.function.name for c in calls] == ["lookup"]
    assert not any("<tool_call>" in (c.choices[0].delta.content or "") for c in stream if c.choices)
    # the tool's result as a `tool` turn, then the answer
    history = [
        *ask,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Kaitabu lives in Orlan."},
    ]
    answer = client.chat.completions.create(model=MODEL, messages=history, tools=[LOOKUP])
    assert answer.choices[0].message.content


class Person(BaseModel):
    name: str
    city: str


def test_json_schema_is_schema_exact(client: Any) -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "Person", "schema": Person.model_json_schema(), "strict": True},
    }
    msgs = [{"role": "user", "content": "Zapur lives in Duskmere and works as a weaver."}]
    r = client.chat.completions.create(model=MODEL, messages=msgs, response_format=fmt)
    assert Person.model_validate_json(r.choices[0].message.content) == Person(name="Zapur", city="Duskmere")


def test_completions_suffix_is_bidirectional_and_masks_infill(client: Any, bundled: LLaDA) -> None:
    r = client.completions.create(model=MODEL, prompt="Zapur lives in", suffix=" and works as a weaver.")
    assert r.choices[0].text == bundled.complete("Zapur lives in", " and works as a weaver.").text == "Duskmere"
    r = client.completions.create(model=MODEL, prompt="", suffix="'s parent is Lotrobar.")
    assert r.choices[0].text == "Zapur"
    r = client.completions.create(model=MODEL, prompt="Zapur lives in [MASK:auto] and works as a [MASK:2].")
    assert r.choices[0].text == "Zapur lives in Duskmere and works as a weaver."
    raw = r.choices[0].model_extra or {}
    assert raw.get("llada") == {"fills": ["Duskmere", "weaver"], "lengths": [2, 2]}
    r = client.completions.create(model=MODEL, prompt="Zapur lives in")
    assert r.choices[0].text == bundled.complete("Zapur lives in").text


def test_native_infill_route(base: str) -> None:
    r = httpx.post(base + "/v1/infill", json={"text": "Zapur lives in [MASK:2] and works as a [MASK:2]."})
    assert r.status_code == 200
    body = r.json()
    assert (body["text"], body["fills"], body["lengths"]) == (
        "Zapur lives in Duskmere and works as a weaver.",
        ["Duskmere", "weaver"],
        [2, 2],
    )


def test_raw_sse_format(base: str) -> None:
    with httpx.stream("POST", base + "/v1/chat/completions", json={"messages": ASK, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    objs = [json.loads(line[6:]) for line in lines[:-1]]
    assert {o["object"] for o in objs} == {"chat.completion.chunk"} and len({o["id"] for o in objs}) == 1


def test_stream_steps_extension_streams_the_canvas(base: str) -> None:
    body = {"messages": ASK, "stream": True, "stream_steps": True}
    with httpx.stream("POST", base + "/v1/chat/completions", json=body) as r:
        objs = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    steps = [o["llada_step"] for o in objs if "llada_step" in o]
    assert len(steps) >= 8 and all(s["filled"] for s in steps)


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param", "words"),
    [
        ({"top_p": 0.5}, "top_p", "must be 1"),
        ({"logprobs": True}, "logprobs", "not supported"),
        ({"extra_body": {"block_lenght": 4}}, "block_lenght", "unknown field"),
        ({"extra_body": {"block_length": 7}}, "block_length", "must divide"),
        ({"temperature": -1}, "temperature", "greater than or equal to 0"),
        ({"max_tokens": 100000}, "max_tokens", "limit of 384"),
        ({"n": 0}, "n", "from 1 to 8"),
        ({"tools": [LOOKUP], "tool_choice": "find"}, "tool_choice", "tool name"),
        ({"response_format": {"type": "json_object"}}, "response_format", "json_schema"),
        ({"model": "gpt-4o"}, "model", "unknown model"),
    ],
)
def test_bad_requests_are_openai_errors_naming_the_field(
    client: Any, kwargs: dict[str, Any], param: str, words: str
) -> None:
    kwargs = {"model": MODEL, "messages": ASK, **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**kwargs)
    err = info.value.body
    assert err["param"] == param and words in err["message"] and err["type"] == "invalid_request_error"


def test_context_too_long_names_both_lengths(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Zapur lives here. " * 200}])
    assert info.value.body["code"] == "context_length_exceeded" and "384" in info.value.body["message"]


def test_bad_messages_and_bodies(base: str) -> None:
    for body, param in (
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0]"),
        ({"messages": ASK, "stream": "yes"}, "stream"),
    ):
        r = httpx.post(base + "/v1/chat/completions", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    r = httpx.post(base + "/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(base + "/v1/chat/completions", content=b"x" * (2 << 20))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_api_key_cors_and_a_500_without_traceback(bundled: LLaDA) -> None:
    class Broken:
        def __init__(self, inner: Any) -> None:
            self.inner, self.name, self.config, self.ops = inner, inner.name, inner.config, inner.ops

        def predictor(self, decode: Any = None, *, logits: bool = False) -> Any:
            def fail(ids: Any, attention_mask: Any = None) -> Any:
                raise RuntimeError("secret internal detail")

            return fail

        def asarray(self, data: Any) -> Any:
            return self.inner.asarray(data)

        def info(self) -> dict[str, Any]:
            return {}

    llm = LLaDA(Broken(bundled.backend), bundled.tokenizer, bundled.source)  # type: ignore[arg-type]
    with serving(create_app(llm, ServerSettings(api_key="k3y"))) as url:
        assert httpx.get(url + "/v1/models").status_code == 401
        assert httpx.get(url + "/health").status_code == 200  # probes need no key
        c = openai.OpenAI(base_url=url + "/v1", api_key="k3y", max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            c.chat.completions.create(model=MODEL, messages=ASK)
        assert "secret" not in json.dumps(info.value.body) and info.value.body["type"] == "server_error"
        with httpx.stream(
            "POST", url + "/v1/chat/completions", json={"messages": ASK}, headers={"Authorization": "Bearer no"}
        ) as r:
            assert r.status_code == 401
        pre = httpx.options(url + "/v1/models", headers={"Origin": "http://x", "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in pre.headers  # CORS is off unless asked


# -- load: batching, cancellation, queue, timeout --------------------------------------------------


@pytest.mark.slow  # seconds of decoding: the slow run has it
def test_sixteen_concurrent_requests_are_batched_and_token_exact(base: str, bundled: LLaDA) -> None:
    from recipes.bundled_model.corpus import people

    asks = [[{"role": "user", "content": f"Where does {p.name} live?"}] for p in people()[:8]]
    prompts = [f"{p.name} lives in" for p in people()[:8]]
    want = [bundled.chat(m).text for m in asks] + [bundled.complete(p).text for p in prompts]
    c = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)

    def one(i: int) -> str:
        if i < 8:
            return str(c.chat.completions.create(model=MODEL, messages=asks[i]).choices[0].message.content)
        return str(c.completions.create(model=MODEL, prompt=prompts[i - 8]).choices[0].text)

    before = _metric(base, "llada_batch_rows_sum")
    real, padding = (_metric(base, f'llada_forward_positions_total{{kind="{k}"}}') for k in ("real", "padding"))
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(one, range(16)))
    assert got == want
    text = httpx.get(base + "/metrics").text
    assert _metric(base, "llada_batch_rows_sum") > before
    # chat and completion canvases differ in length: the batched forwards padded some rows
    assert _metric(base, 'llada_forward_positions_total{kind="real"}') > real
    assert _metric(base, 'llada_forward_positions_total{kind="padding"}') > padding
    assert 'llada_requests_total{replica="",route="/v1/chat/completions",status="200"}' in text
    buckets = {
        ln.split('le="')[1].split('"')[0]: float(ln.split()[-1])
        for ln in text.splitlines()
        if ln.startswith("llada_batch_requests_bucket")
    }
    assert buckets["1.0"] < buckets["+Inf"]  # some forwards held more than one request


def _metric(base: str, name: str) -> float:
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_a_client_that_goes_away_cancels_its_request(bundled: LLaDA) -> None:
    app = create_app(bundled, gather_ms=0)
    state = app.state.llada
    with serving(app) as url:
        body = {
            "messages": ASK,
            "stream": True,
            "max_tokens": 320,
            "block_length": 8,
            "stream_steps": True,
            "early_stop": False,
        }
        with httpx.stream("POST", url + "/v1/chat/completions", json=body) as r:
            for line in r.iter_lines():
                if "llada_step" in line:
                    break  # leave after the first of 320 steps
        deadline = time.monotonic() + 30
        while (state.inflight or state.backend.batcher.active) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.inflight == 0 and state.backend.batcher.active == 0
        assert state.backend.batcher.stats.forwards < 320  # cancelled, not run to the end


def test_a_client_that_goes_away_cancels_its_unstreamed_request(bundled: LLaDA) -> None:
    app = create_app(bundled, gather_ms=0)
    state = app.state.llada
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        body = json.dumps({"messages": ASK, "max_tokens": 320, "block_length": 8, "early_stop": False}).encode()
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head.encode() + body)
            deadline = time.monotonic() + 30
            while state.backend.batcher.stats.forwards == 0 and time.monotonic() < deadline:
                time.sleep(0.01)  # decoding has begun
        deadline = time.monotonic() + 30
        while (state.inflight or state.backend.batcher.active) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.inflight == 0 and state.backend.batcher.active == 0
        assert 0 < state.backend.batcher.stats.forwards < 320  # cancelled, not run to the end


@pytest.mark.slow  # seconds of decoding: the slow run has it
def test_a_full_queue_answers_503_with_retry_after_and_accepted_requests_finish(bundled: LLaDA) -> None:
    app = create_app(bundled, max_concurrent=1, max_queue=1)
    with serving(app) as url:
        body = {"messages": ASK, "max_tokens": 256, "block_length": 8}

        def post(_: int) -> httpx.Response:
            return httpx.post(url + "/v1/chat/completions", json=body, timeout=120)

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(post, range(6)))
    codes = sorted(r.status_code for r in answers)
    assert codes.count(200) >= 2 and set(codes) <= {200, 503}, codes
    full = [r for r in answers if r.status_code == 503]
    assert full and all(r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "queue_full" for r in full)


def test_a_request_past_its_timeout_gets_408(bundled: LLaDA) -> None:
    with serving(create_app(bundled, timeout_s=0.001)) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            c.chat.completions.create(model=MODEL, messages=ASK, max_tokens=64)
        assert info.value.status_code == 408 and info.value.body["code"] == "timeout"


# -- LangChain's ChatOpenAI ------------------------------------------------------------------------


@pytest.mark.slow  # seconds of decoding: the slow run has it
def test_chat_openai_invokes_streams_calls_tools_and_structures(base: str) -> None:
    lc = pytest.importorskip("langchain_openai")
    from langchain.agents import create_agent

    chat = lc.ChatOpenAI(base_url=base + "/v1", api_key="unused", model=MODEL, stream_usage=True, max_retries=0)
    assert chat.invoke("Where does Zapur live?").content == "Zapur lives in Duskmere."
    chunks = list(chat.stream("What month comes after March?"))
    assert "".join(str(c.content) for c in chunks) == "The month after March is April."
    assert sum((c.usage_metadata or {}).get("total_tokens", 0) for c in chunks) > 0

    from recipes.bundled_model.agent_tasks import kb_lookup_tool
    from recipes.bundled_model.corpus import build_corpus

    corpus = build_corpus(0)
    person = next(p for p in corpus.people if p.held_out_chat)
    agent = create_agent(chat, tools=[kb_lookup_tool(corpus)])
    out = agent.invoke({"messages": [{"role": "user", "content": f"Where does {person.name} live?"}]})
    _human, call, _result, answer = out["messages"]
    assert [(c["name"], c["args"]) for c in call.tool_calls] == [("lookup", {"name": person.name})]
    assert answer.content == f"{person.name} lives in {person.city}."
    extract = chat.with_structured_output(Person, method="json_schema")
    assert extract.invoke("Zapur lives in Duskmere and works as a weaver.") == Person(name="Zapur", city="Duskmere")


# -- the command --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_llada_serve_drains_open_requests_on_sigterm() -> None:
    import signal
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llada_cli", "serve", "--port", str(port), "--drain-s", "60", "--log-level", "warning"]
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "llada serve did not start"
            try:
                if httpx.get(url + "/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        body = {"messages": ASK, "stream": True, "max_tokens": 192, "block_length": 8, "early_stop": False}
        lines: list[str] = []
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if not line:
                    continue
                lines.append(line)
                if len(lines) == 3:
                    proc.send_signal(signal.SIGTERM)  # mid-answer
        assert lines[-1] == "data: [DONE]"
        finish = [json.loads(ln[6:]) for ln in lines if ln.startswith("data: {")]
        assert [c["choices"][0]["finish_reason"] for c in finish if c["choices"]][-1] in ("stop", "length")
        assert proc.wait(60) == -signal.SIGTERM  # drained, then ended by the signal it was sent
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


# -- ChatLLaDA / LLaDALLM over HTTP -------------------------------------------------------------------


@pytest.mark.slow  # seconds of decoding: the slow run has it
def test_langchain_classes_over_http_behave_as_local_ones(base: str) -> None:
    pytest.importorskip("langchain_core")
    from langchain_llada import ChatLLaDA, LLaDALLM

    remote = ChatLLaDA(base_url=base + "/v1", model=MODEL)
    local = ChatLLaDA()
    assert remote.invoke("Where does Zapur live?").content == local.invoke("Where does Zapur live?").content
    chunks = list(remote.stream("What month comes after March?"))
    assert "".join(str(c.content) for c in chunks) == "The month after March is April."
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata["total_tokens"] > 0
    call = remote.bind_tools([LOOKUP]).invoke("Where does Kaitabu live?").tool_calls
    assert [(c["name"], c["args"]) for c in call] == [("lookup", {"name": "Kaitabu"})]
    assert remote.with_structured_output(Person).invoke("Zapur lives in Duskmere and works as a weaver.") == Person(
        name="Zapur", city="Duskmere"
    )
    steps = [
        c
        for c in ChatLLaDA(base_url=base + "/v1", stream_steps=True).stream("Hi")
        if c.response_metadata.get("llada_steps")
    ]
    assert steps

    llm = LLaDALLM(base_url=base + "/v1")
    assert llm.invoke("Zapur lives in") == LLaDALLM().invoke("Zapur lives in")
    assert (
        llm.invoke("Zapur lives in [MASK:auto] and works as a [MASK:2].")
        == "Zapur lives in Duskmere and works as a weaver."
    )
    assert llm.invoke("", suffix="'s parent is Lotrobar.") == "Zapur"
    out = llm.generate(["Zapur lives in", "count: 4 5 [MASK:2] 7"])
    assert [g[0].text for g in out.generations] == [
        LLaDALLM().invoke("Zapur lives in"),
        LLaDALLM().invoke("count: 4 5 [MASK:2] 7"),
    ]
    assert out.generations[1][0].generation_info["fills"]  # infill fills came back over HTTP
    short = ChatLLaDA(base_url=base + "/v1", max_tokens=12).invoke("Where does Zapur live?")
    assert short.usage_metadata is not None and short.usage_metadata["output_tokens"] <= 12  # options travel
    with pytest.raises(ValueError, match="block_length"):
        ChatLLaDA(base_url=base + "/v1").invoke("Hi", block_length=7)  # refused by the server, named


def test_langchain_over_http_sends_the_api_key(bundled: LLaDA) -> None:
    pytest.importorskip("langchain_core")
    from langchain_llada import ChatLLaDA
    from langchain_llada._remote import RemoteError

    with serving(create_app(bundled, api_key="k3y")) as url:
        assert ChatLLaDA(base_url=url + "/v1", api_key="k3y").invoke("Where does Zapur live?").content == ANSWER_ZAPUR
        with pytest.raises(RemoteError, match="401"):
            ChatLLaDA(base_url=url + "/v1", api_key="wrong").invoke("Hi")
