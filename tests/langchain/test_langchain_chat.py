"""ChatLLaDA on the bundled model: invoke, streaming per block, async without blocking, cancellation,
timeouts, tool calling in the documented format, schema-exact structured output, lazy shared weights."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel

from langchain_llada import ChatLLaDA
from langchain_llada._utils import cached_models, load_model, to_llada_messages
from llada_sdk.results import ResultEvent, StepEvent, TextEvent, TextResult
from llada_sdk.text.tools import render_tools
from recipes.bundled_model.agent_tasks import kb_lookup_tool
from recipes.bundled_model.corpus import KB_LOOKUP_TOOL, build_corpus

CORPUS = build_corpus(0, tools=True)
HELD_OUT = next(p for p in CORPUS.people if p.held_out_chat)


class Person(BaseModel):
    name: str
    city: str
    job: str


class Spy:
    """Wraps the cached model's ``stream_chat``: counts the steps it decoded and whether it was closed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.model = load_model("llada-tiny-kb", None, None)
        self.steps, self.closed = 0, threading.Event()
        original = self.model.stream_chat

        def spy(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                for ev in original(*args, **kwargs):
                    if isinstance(ev, StepEvent):
                        self.steps += 1
                    yield ev
            finally:
                self.closed.set()

        monkeypatch.setattr(self.model, "stream_chat", spy)


def test_construction_is_lazy_and_weights_are_shared() -> None:
    key = ("llada_sdk/bundled/llada-tiny-kb", "cpu", "float32")
    assert key not in cached_models()
    a = ChatLLaDA(model=key[0], device="cpu", dtype="float32")
    b = ChatLLaDA(model=key[0], device="cpu", dtype="float32", temperature=0.0)
    assert key not in cached_models()  # constructing loads nothing
    assert a.invoke("Where does Zapur live?").content == "Zapur lives in Duskmere."
    shared = cached_models()[key]
    b.invoke("What day comes after Monday?")
    assert cached_models()[key] is shared  # the second instance reuses the loaded weights


def test_invoke_returns_text_usage_and_metadata() -> None:
    msg = ChatLLaDA().invoke("Where does Zapur live?")
    assert msg.content == "Zapur lives in Duskmere."
    assert msg.usage_metadata is not None and msg.usage_metadata["input_tokens"] > 0
    assert msg.usage_metadata["output_tokens"] > 0
    meta = msg.response_metadata
    assert meta["model_name"] == "llada-tiny-kb" and meta["finish_reason"] == "stop" and meta["forward_passes"] > 0


def test_stream_yields_a_chunk_per_finished_block_then_the_last_chunk() -> None:
    chat = ChatLLaDA(max_tokens=32, block_length=4)
    question = [HumanMessage("Where does Zapur live?")]
    chunks = list(chat.stream(question))
    model = load_model("llada-tiny-kb", None, None)
    deltas = [
        e.delta
        for e in model.stream_chat(
            [{"role": "user", "content": "Where does Zapur live?"}], max_tokens=32, block_length=4
        )
        if isinstance(e, TextEvent) and e.delta
    ]
    assert len(deltas) >= 2 and [c.content for c in chunks[: len(deltas)]] == deltas
    last = chunks[-1]
    assert isinstance(last, AIMessageChunk) and last.chunk_position == "last" and last.content == ""
    assert last.usage_metadata is not None and last.response_metadata["model_name"] == "llada-tiny-kb"
    assert all(c.usage_metadata is None for c in chunks[:-1])
    steps = [c for c in chat.stream(question, stream_steps=True) if "llada_steps" in c.response_metadata]
    assert steps and [s.response_metadata["llada_steps"][0]["step"] for s in steps[:2]] == [0, 1]


async def test_astream_does_not_block_the_event_loop() -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    t0 = time.monotonic()
    text = "".join([str(c.content) async for c in ChatLLaDA(early_stop=False).astream("Where does Zapur live?")])
    elapsed = time.monotonic() - t0
    done.set()
    await task
    assert text == "Zapur lives in Duskmere."
    assert ticks >= min(20, elapsed / 0.01)  # the loop kept running while the model decoded


async def test_a_consumer_that_stops_cancels_the_decode_at_the_next_step(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    chat = ChatLLaDA(max_tokens=64, early_stop=False)  # 64 steps if nothing stops it
    stream = chat.astream("What day comes after Friday?")
    first = await stream.__anext__()
    assert first.content
    await stream.aclose()
    assert await asyncio.to_thread(spy.closed.wait, 30)
    assert 8 <= spy.steps < 64, spy.steps


async def test_a_cancelled_ainvoke_stops_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    chat = ChatLLaDA(max_tokens=256, block_length=8, early_stop=False)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(chat.ainvoke("Where does Zapur live?"), timeout=0.3)
    assert await asyncio.to_thread(spy.closed.wait, 30)
    assert spy.steps < 256


def test_timeout_stops_the_decode_and_raises() -> None:
    with pytest.raises(TimeoutError, match=r"`timeout` \(1e-09 s\) exceeded while decoding"):
        ChatLLaDA(timeout=1e-9).invoke("Where does Zapur live?")  # past before the first step ends


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), "soon"])
def test_a_timeout_per_call_is_checked_like_the_field(timeout: Any) -> None:
    with pytest.raises(ValueError, match=rf"`timeout` must be a finite number of seconds > 0 or None, got {timeout!r}"):
        ChatLLaDA().invoke("Where does Zapur live?", timeout=timeout)


def test_stop_sequences_cut_the_answer_before_them() -> None:
    assert ChatLLaDA().invoke("Where does Zapur live?", stop=[" in"]).content == "Zapur lives"
    assert ChatLLaDA(stop=[" in"]).invoke("Where does Zapur live?").content == "Zapur lives"


def test_tool_history_renders_in_the_documented_format() -> None:
    msgs = [
        SystemMessage("Be brief."),
        HumanMessage("Where does Kaitabu live?"),
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"name": "Kaitabu"}, "id": "c1"}]),
        ToolMessage("city: Pellin, job: writer, parent: Tabrunath", tool_call_id="c1"),
    ]
    assert to_llada_messages(msgs) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where does Kaitabu live?"},
        {"role": "assistant", "content": '<tool_call>{"name": "lookup", "arguments": {"name": "Kaitabu"}}</tool_call>'},
        {"role": "tool", "content": "city: Pellin, job: writer, parent: Tabrunath"},
    ]
    with pytest.raises(ValueError, match=r"`messages\[0\]` content block 0 has type 'image'"):
        to_llada_messages([HumanMessage([{"type": "image", "url": "x"}])])


def test_bind_tools_checks_tool_choice() -> None:
    chat = ChatLLaDA()
    tool = kb_lookup_tool(CORPUS)
    for choice in (
        None,
        "auto",
        "none",
        "any",
        "required",
        True,
        "lookup",
        {"type": "function", "function": {"name": "lookup"}},
    ):
        chat.bind_tools([tool], tool_choice=choice)
    with pytest.raises(ValueError, match=r"`tool_choice` must be .* got 'lookdown' \(tools: \['lookup'\]\)"):
        chat.bind_tools([tool], tool_choice="lookdown")
    with pytest.raises(ValueError, match=r"`tool_choice` \('any'\) needs at least one tool"):
        chat.bind_tools([], tool_choice="any")


def test_the_model_calls_the_tool_for_a_held_out_person_then_answers_from_the_result() -> None:
    chat = ChatLLaDA().bind_tools([kb_lookup_tool(CORPUS)])
    question = HumanMessage(f"Where does {HELD_OUT.name} live?")
    msg = chat.invoke([question])
    assert msg.content == "" and msg.response_metadata["finish_reason"] == "tool_calls"
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("lookup", {"name": HELD_OUT.name})]
    assert msg.tool_calls[0]["id"].startswith("call_")
    streamed = list(chat.stream([question]))
    assert any(c.tool_call_chunks for c in streamed) and streamed[-1].chunk_position == "last"
    result = kb_lookup_tool(CORPUS).invoke({"name": HELD_OUT.name})
    answer = chat.invoke([question, msg, ToolMessage(result, tool_call_id=msg.tool_calls[0]["id"])])
    assert answer.content == f"{HELD_OUT.name} lives in {HELD_OUT.city}." and not answer.tool_calls


@pytest.mark.slow
def test_forced_tool_calls_are_schema_exact() -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                "required": ["city", "days"],
            },
        },
    }
    for choice in ("weather",):
        msg = ChatLLaDA().bind_tools([weather], tool_choice=choice).invoke("What is the weather in Kelso?")
        assert len(msg.tool_calls) == 1 and msg.tool_calls[0]["name"] == "weather"
        args = msg.tool_calls[0]["args"]
        assert set(args) == {"city", "days"} and isinstance(args["city"], str) and 1 <= args["days"] <= 7
    # with two tools and "any", the model picks one by likelihood; the call is still exact
    msg = (
        ChatLLaDA().bind_tools([weather, KB_LOOKUP_TOOL], tool_choice="any").invoke(f"Where does {HELD_OUT.name} live?")
    )
    assert msg.tool_calls and msg.tool_calls[0]["name"] in ("weather", "lookup")


@pytest.mark.slow
def test_with_structured_output_returns_a_valid_instance() -> None:
    out = ChatLLaDA().with_structured_output(Person).invoke("Zibrou is a pilot who lives in Kelso.")
    assert out == Person(name="Zibrou", city="Kelso", job="pilot")
    raw = (
        ChatLLaDA()
        .with_structured_output(Person, include_raw=True)
        .invoke("Zapur lives in Duskmere and works as a weaver.")
    )
    assert isinstance(raw["parsed"], Person) and raw["parsing_error"] is None
    assert json.loads(raw["raw"].content) == raw["parsed"].model_dump()
    as_dict = ChatLLaDA().with_structured_output(Person.model_json_schema()).invoke("Zapur lives in Duskmere.")
    assert set(as_dict) == {"name", "city", "job"}


def test_model_override_per_call_and_tracing_params() -> None:
    chat = ChatLLaDA(temperature=0.0, max_tokens=16)
    path = "llada_sdk/bundled/llada-tiny-kb"
    msg = chat.invoke("Where does Zapur live?", model=path)
    assert msg.response_metadata["model_name"] == path
    params = chat._get_ls_params(model=path, stop=["x"])
    assert params == {
        "ls_provider": "llada",
        "ls_model_name": path,
        "ls_model_type": "chat",
        "ls_temperature": 0.0,
        "ls_max_tokens": 16,
        "ls_stop": ["x"],
    }
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['temprature'\]"):
        chat.invoke("hi", temprature=1.0)


def test_the_tools_block_is_what_the_model_was_trained_on() -> None:
    # ChatLLaDA renders bound tools exactly as the training corpus did
    (messages, _), *_ = CORPUS.conversations
    assert messages[0]["content"] == render_tools([KB_LOOKUP_TOOL])


def fake_stream_chat(monkeypatch: pytest.MonkeyPatch, deltas: list[str]) -> None:
    """The cached model's ``stream_chat`` writes ``deltas``, one block each, whatever it is asked."""

    def stream_chat(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for i, delta in enumerate(deltas):
            yield TextEvent(row=0, block=i, delta=delta)
        yield ResultEvent([TextResult(text="".join(deltas), finish_reason="length")])

    monkeypatch.setattr(load_model("llada-tiny-kb", None, None), "stream_chat", stream_chat)


@pytest.mark.parametrize(
    ("deltas", "content", "error"),
    [
        (
            ["Hi ", '<tool_call>{"name": "lookup" "arg', 'uments": {}}</tool_call>'],
            "Hi",
            "not valid JSON: Expecting ','",
        ),
        (["Hi ", '<tool_call>{"arguments": {}}</tool_call>'], "Hi", "missing `name`"),
        (["Let me check <tool", "_c"], "Let me check", "unfinished `<tool_call>` tag at the end of the text"),
        (["Sure ", '<tool_call>{"name": "lookup", "argu'], "Sure", "no `</tool_call>`: the text ended inside the call"),
        (
            ['Ok {"name": "lookup", ', '"arguments": {}}</tool', "_call> bye"],
            "Ok  bye",
            "without an opening `<tool_call>`",
        ),
    ],
)
def test_without_exact_calls_a_malformed_call_is_an_invalid_call_with_its_reason_never_content(
    monkeypatch: pytest.MonkeyPatch, deltas: list[str], content: str, error: str
) -> None:
    fake_stream_chat(monkeypatch, deltas)
    chat = ChatLLaDA(exact_tool_calls=False).bind_tools([KB_LOOKUP_TOOL])
    msg = chat.invoke("Where does Dube live?")
    assert str(msg.content).strip() == content and not msg.tool_calls
    assert len(msg.invalid_tool_calls) == 1 and error in str(msg.invalid_tool_calls[0]["error"])
    streamed = list(chat.stream("Where does Dube live?"))
    assert "".join(str(c.content) for c in streamed).strip() == content  # nothing of the call was streamed
    assert sum(len(c.tool_call_chunks) for c in streamed) == 1
    again = asyncio.run(chat.ainvoke("Where does Dube live?"))
    assert again.invalid_tool_calls[0]["error"] == msg.invalid_tool_calls[0]["error"]


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {"properties": {"city": {"type": "string"}}, "required": ["city"], "type": "object"},
    },
}
FIND = {
    "type": "function",
    "function": {
        "name": "find_person",
        "description": "Look up a person's city, job and parent.",
        "parameters": {"properties": {"person": {"type": "string"}}, "required": ["person"], "type": "object"},
    },
}


@pytest.mark.parametrize(
    ("deltas", "tools", "call"),
    [  # what the model wrote -> the exact call
        (
            ['<tool_call>{"name": "find_persn", "arguments": {"nme": "Dube"}}</tool_call>'],
            [FIND],
            ("find_person", {"person": "Dube"}),
        ),
        (
            ['<tool_call>{"name": "find_person", "arguments": {"person": "Dube", "x": 1}}</tool_call>'],
            [WEATHER, FIND],
            ("find_person", {"person": "Dube"}),
        ),
        (
            ['<tool_call>{"name": "get_weather", "arguments": {"place": "Kelso"', "}}</tool_call>"],
            [FIND, WEATHER],
            ("get_weather", {"city": "Kelso"}),
        ),
        (['<tool_call>{"name": "find_person", "arguments": {"person": "Du'], [FIND], ("find_person", None)),
        (['<tool_call>{"arguments": {}}</tool_call>'], [FIND], ("find_person", None)),
    ],
)
def test_a_call_the_model_writes_is_made_exact(
    monkeypatch: pytest.MonkeyPatch, deltas: list[str], tools: list[dict[str, Any]], call: tuple[str, Any]
) -> None:
    from llada_sdk.text.schema import validate

    fake_stream_chat(monkeypatch, deltas)
    msg = ChatLLaDA().bind_tools(tools).invoke("Where does Dube live?")
    assert not msg.invalid_tool_calls and str(msg.content) == "" and len(msg.tool_calls) == 1
    name, args = call
    assert msg.tool_calls[0]["name"] == name
    spec = next(t["function"] for t in tools if t["function"]["name"] == name)
    validate(msg.tool_calls[0]["args"], spec["parameters"])  # filled schema-exact when nothing usable was written
    if args is not None:
        assert msg.tool_calls[0]["args"] == args
