"""The one tool-call format (llada_sdk.text.tools): rendering, parsing, and that the corpus uses it."""

from __future__ import annotations

import pytest

from llada_sdk.text.tools import (
    INSTRUCTION,
    ParsedToolCall,
    assistant_message,
    parse_tool_calls,
    partial_call_start,
    render_tool_call,
    render_tools,
    signature,
    streamed_content,
    tool_result_message,
    tool_spec,
    transcript,
    with_tools,
)
from recipes.bundled_model.corpus import KB_LOOKUP_TOOL, build_corpus, lookup_result

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
    assert invalid[0].error == "`arguments` must be an object, got list"
    assert invalid[1].error == "not valid JSON: Expecting property name enclosed in double quotes at char 1"


@pytest.mark.parametrize(
    ("text", "content", "bad_text", "error"),
    [
        ('<tool_call>{"arguments": {}}</tool_call>', "", '{"arguments": {}}', "missing `name`"),
        ('<tool_call>{"name": 3}</tool_call>', "", '{"name": 3}', "`name` must be a string, got int: 3"),
        (
            "<tool_call>[1]</tool_call>",
            "",
            "[1]",
            'expected a JSON object {"name": str, "arguments": object}, got list',
        ),
        ("<tool_call> </tool_call>", "", "", 'empty `<tool_call>`: expected {"name": str, "arguments": object}'),
        (
            'A <tool_call>{"name": "f", "arguments": {"x" 1}',
            "A",
            '{"name": "f", "arguments": {"x" 1}',
            "not valid JSON: Expecting ':' delimiter at char 32 (no `</tool_call>`: the text ended inside the call)",
        ),
        ("Let me check <tool_c", "Let me check", "<tool_c", "unfinished `<tool_call>` tag at the end of the text"),
        (
            'Sure: {"name": "f"}</tool_call>\nBye',
            "Sure: \nBye",
            '{"name": "f"}',
            "`</tool_call>` without an opening `<tool_call>`",
        ),
        ("a </tool_call> b", "a  b", "", "`</tool_call>` without an opening `<tool_call>`"),
    ],
)
def test_no_piece_of_a_broken_call_stays_in_the_content(text: str, content: str, bad_text: str, error: str) -> None:
    got, calls, invalid = parse_tool_calls(text)
    assert (got, calls) == (content, [])
    assert [(i.text, i.error) for i in invalid] == [(bad_text, error)]
    assert "tool_call" not in got


def test_invalid_calls_come_in_the_order_of_the_text() -> None:
    text = '{"a": 1}</tool_call> x <tool_call>{oops</tool_call> y <tool_c'
    _, _, invalid = parse_tool_calls(text)
    assert [i.text for i in invalid] == ['{"a": 1}', "{oops", "<tool_c"]


def test_a_lone_angle_bracket_at_the_end_is_text() -> None:
    assert parse_tool_calls("a <") == ("a <", [], [])


@pytest.mark.parametrize(
    "text",
    [
        'Hi {"name": "f", "arguments": {}}</tool_call> ok',
        'Hi <tool_call>{"name": "f"}</tool_call> there </tool_call> end',
        "Dube lives in {a} set\nThen <tool_call>{bad</tool_call> more <tool_c",
        'a < b and c </ d {"x": 1}\n{"name": "f"}</tool_call>',
    ],
)
def test_streamed_content_only_grows_and_ends_as_the_parsed_content(text: str) -> None:
    previous = ""
    for end in range(len(text) + 1):
        now = streamed_content(text[:end])
        assert now.startswith(previous), (text[:end], previous, now)
        assert "tool_call>" not in now
        previous = now
    assert parse_tool_calls(text)[0].startswith(previous.rstrip())  # the rest is sent once the text is complete


def test_partial_call_start_holds_back_a_possible_tag() -> None:
    assert partial_call_start("Hello") is None
    assert partial_call_start("Hello <tool") == 6
    assert partial_call_start("ab<tool_call>{") == 2
    assert partial_call_start("a<") == 1
    assert partial_call_start("a </tool") == 2  # a closing tag is held back too
    assert partial_call_start('ok\nSure {"name": "f"') == 8  # JSON on the last line may end in </tool_call>
    assert partial_call_start("x {a}\ny") is None  # a finished line is final


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

    from recipes.bundled_model.agent_tasks import kb_lookup_tool

    assert convert_to_openai_tool(kb_lookup_tool(build_corpus(0))) == KB_LOOKUP_TOOL
