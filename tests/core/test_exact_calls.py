"""Exact tool calls: what a model wrote as a call, read back and mapped onto an offered tool's schema."""

from __future__ import annotations

from typing import Any

import pytest

from llada_sdk.text.exact_calls import is_exact, map_arguments, written_calls
from llada_sdk.text.tools import ParsedToolCall, parse_tool_calls, tool_spec

PARAMS = {
    "type": "object",
    "properties": {"person": {"type": "string"}, "limit": {"type": "integer"}, "exact": {"type": "boolean"}},
    "required": ["person"],
}
TOOL = {"type": "function", "function": {"name": "find_person", "description": "", "parameters": PARAMS}}


@pytest.mark.parametrize(
    ("written", "mapped"),
    [
        ({"person": "Dube"}, {"person": "Dube"}),  # already right
        ({"name": "Dube"}, {"person": "Dube"}),  # a wrong key: the value goes to the required parameter
        ({"n": 3, "who": "Dube"}, {"person": "Dube", "limit": 3}),  # by type, required first
        ({"limit": 2, "q": True, "z": "Dube"}, {"limit": 2, "person": "Dube", "exact": True}),
        ({"q": 3}, {"limit": 3}),  # no string: the required parameter stays empty (then it is filled)
        ({"flag": True, "n": 1.5}, {"exact": True}),  # 1.5 is not an integer; True is not a number
        ({}, {}),
    ],
)
def test_written_values_go_under_the_schema_keys_by_name_then_by_type(
    written: dict[str, Any], mapped: dict[str, Any]
) -> None:
    assert map_arguments(written, PARAMS) == mapped


def test_complete_pairs_are_read_out_of_a_malformed_call_and_a_cut_value_is_not() -> None:
    text = '<tool_call>{"name": "find_persn", "arguments": {"nme": "Dube", "limit": 3, "x": "Du'
    _content, calls, invalid = parse_tool_calls(text)
    assert not calls and len(invalid) == 1
    assert written_calls(calls, invalid) == [("find_persn", {"nme": "Dube", "limit": 3})]
    _content, calls, invalid = parse_tool_calls('<tool_call>{"arguments": {"a": "\\"q\\""}}</tool_call>')
    assert written_calls(calls, invalid) == [(None, {"a": '"q"'})]


def test_a_call_is_exact_when_it_names_an_offered_tool_and_validates() -> None:
    specs = [tool_spec(TOOL)]
    assert is_exact(ParsedToolCall("find_person", {"person": "Dube"}), specs)
    assert not is_exact(ParsedToolCall("find_persn", {"person": "Dube"}), specs)
    assert not is_exact(ParsedToolCall("find_person", {}), specs)  # `person` is required
    assert not is_exact(ParsedToolCall("find_person", {"person": 3}), specs)
    assert not is_exact(ParsedToolCall("find_person", {"person": "Dube", "x": 1}), specs)  # a key it does not take
