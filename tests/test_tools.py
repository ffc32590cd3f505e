"""The one tool-call format (llada_sdk.tools): rendering, parsing, and that the corpus uses it."""

from __future__ import annotations

import pytest

from llada_sdk.corpus import KB_LOOKUP_TOOL, build_corpus, lookup_result
from llada_sdk.tools import (
    INSTRUCTION,
    ParsedToolCall,
    assistant_message,
    parse_tool_calls,
    partial_call_start,
    render_tool_call,
    render_tools,
    signature,
    tool_result_message,
    tool_spec,
    transcript,
    with_tools,
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Get the weather\n  for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["C", "F"]},
                "days": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["city"],
        },
    },
}


def test_tools_render_as_the_instruction_then_one_signature_per_tool() -> None:
    assert render_tools([KB_LOOKUP_TOOL, WEATHER]) == (
        'To call a tool, reply <tool_call>{"name": ..., "arguments": {...}}</tool_call>\n'
        "lookup(name: string): Look up a person's city, job and parent.\n"
        'weather(city: string, unit?: "C"|"F", days?: list[integer]): Get the weather for a city.'
    )
    assert render_tools([WEATHER["function"]]) == render_tools([WEATHER])  # the bare function object works too
    assert signature({"name": "ping"}) == "ping()"


def test_a_tool_call_is_one_line_of_compact_json_between_tags() -> None:
    assert render_tool_call("lookup", {"name": "Zapur"}) == (
        '<tool_call>{"name": "lookup", "arguments": {"name": "Zapur"}}</tool_call>'
    )
    assert (
        render_tool_call("f", {"city": "Zürich"})
        == '<tool_call>{"name": "f", "arguments": {"city": "Zürich"}}</tool_call>'
    )


def test_parse_reads_back_every_call_and_keeps_the_rest_as_content() -> None:
    text = "Let me check.\n" + render_tool_call("lookup", {"name": "Zapur"}) + "\n" + render_tool_call("f", {})
    content, calls, invalid = parse_tool_calls(text)
    assert content == "Let me check."
    assert calls == [ParsedToolCall("lookup", {"name": "Zapur"}), ParsedToolCall("f", {})]
    assert invalid == []
    # an unclosed call at the very end still parses; "parameters" (Llama style) is read as the arguments
    _, calls, _ = parse_tool_calls('<tool_call>{"name": "g", "parameters": {"x": 1}}')
    assert calls == [ParsedToolCall("g", {"x": 1})]


def test_broken_calls_are_reported_not_raised() -> None:
    content, calls, invalid = parse_tool_calls(
        '<tool_call>{"name": "g", "arguments": [1]}</tool_call><tool_call>{oops</tool_call>'
    )
    assert content == "" and calls == []
    assert [i.text for i in invalid] == ['{"name": "g", "arguments": [1]}', "{oops"]
    assert invalid[0].error == '"arguments" must be an object, got list' and invalid[1].error.startswith("not JSON")


def test_partial_call_start_holds_back_a_possible_tag() -> None:
    assert partial_call_start("Hello") is None
    assert partial_call_start("Hello <tool") == 6
    assert partial_call_start("ab<tool_call>{") == 2
    assert partial_call_start("a<") == 1


def test_history_turns_and_the_system_message() -> None:
    msgs = with_tools([{"role": "user", "content": "Hi"}], [KB_LOOKUP_TOOL])
    assert msgs[0] == {"role": "system", "content": render_tools([KB_LOOKUP_TOOL])}
    merged = with_tools(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], [KB_LOOKUP_TOOL]
    )
    assert merged[0]["content"] == "Be brief.\n\n" + render_tools([KB_LOOKUP_TOOL]) and len(merged) == 2
    assert with_tools(msgs[1:], []) == msgs[1:]
    assert assistant_message("Sure.", [("lookup", {"name": "A"})]) == {
        "role": "assistant",
        "content": 'Sure.\n<tool_call>{"name": "lookup", "arguments": {"name": "A"}}</tool_call>',
    }
    assert tool_result_message("42") == {"role": "tool", "content": "42"}
    assert transcript([{"role": "user", "content": " x "}]) == "x"
    assert transcript([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]) == "system: s\nuser: u"


def test_bad_tools_name_the_parameter() -> None:
    with pytest.raises(TypeError, match=r"`tool` must be an OpenAI-format tool dict or a ToolSpec, got int: 3"):
        tool_spec(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r'`tool` must have a non-empty string "name"'):
        tool_spec({"type": "function", "function": {"description": "x"}})
    with pytest.raises(ValueError, match=r"`tools` names must be unique, got \['lookup', 'lookup'\]"):
        render_tools([KB_LOOKUP_TOOL, KB_LOOKUP_TOOL])
    with pytest.raises(ValueError, match=r"`tools` must hold at least one tool, got an empty list"):
        render_tools([])


def test_the_training_corpus_speaks_the_same_format() -> None:
    corpus = build_corpus(0, tools=True)
    calls = [(m, a) for m, a in corpus.conversations if a.startswith("<tool_call>")]
    answers = [(m, a) for m, a in corpus.conversations if m[-1]["role"] == "tool"]
    assert calls and answers
    messages, answer = calls[0]
    asked = next(p for p in corpus.synthetic if p.name in messages[-1]["content"])
    assert messages[0] == {"role": "system", "content": INSTRUCTION + "\n" + signature(KB_LOOKUP_TOOL)}
    assert messages[-1] == {"role": "user", "content": f"Where does {asked.name} live?"}
    assert answer == render_tool_call("lookup", {"name": asked.name})
    messages, answer = answers[0]
    assert messages[-2]["content"].startswith("<tool_call>") and messages[-1]["content"].startswith("city: ")
    person = next(p for p in corpus.synthetic if p.name in answer)
    assert messages[-1]["content"] == lookup_result(person)
    kb_names = {n for p in corpus.people for n in (p.name, p.parent)}
    assert not kb_names & {p.name for p in corpus.synthetic}  # tool rows never talk about knowledge-base people


def test_the_kb_tool_is_what_langchain_makes_of_the_eval_tool() -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from langchain_llada.eval_tasks import kb_lookup_tool

    assert convert_to_openai_tool(kb_lookup_tool(build_corpus(0))) == KB_LOOKUP_TOOL
