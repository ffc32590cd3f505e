"""Tool menus for the bundled model's tool-use rows: a person tool under any plausible name.

A user's first agent offers *their* tool (``find_person(person)``, ``who_is(query)``), often beside
others (weather, time, arithmetic). So each tool-use row draws its own menu: a person tool whose name,
argument name and description come from a vocabulary (``draw_person_tool``), and zero to two other
tools (``OTHER_TOOLS``), in random order. The model must copy the offered tool's name and argument
into the call, as it copies a person's name.

Three person tools are drawn once and kept out of that vocabulary (``unseen_person_tools``): the
evaluation asks with them, so its score is about tools never seen in training.
"""

from __future__ import annotations

import random
from typing import Any

from llada_sdk.text.tools import assistant_message, render_tool_call, tool_result_message, with_tools
from recipes.bundled_model.corpus import Person, kb_chat, lookup_result, sequence_chat

_VERBS = ("find", "get", "lookup", "search", "fetch", "query", "describe", "show", "locate", "load", "read", "check")
_NOUNS = (
    "person",
    "people",
    "profile",
    "record",
    "resident",
    "member",
    "contact",
    "citizen",
    "entry",
    "user",
    "individual",
    "employee",
    "directory",
    "info",
    "details",
    "bio",
)
_SINGLE = ("lookup", "who_is", "whois", "kb_lookup", "person_info", "people_db", "directory", "profile")
PERSON_ARGS = (
    "name",
    "person",
    "query",
    "who",
    "full_name",
    "person_name",
    "subject",
    "target",
    "q",
    "text",
    "key",
    "username",
    "first_name",
    "lookup_name",
    "term",
    "entity",
    "label",
    "member",
    "individual",
    "search",
)
PERSON_DESCRIPTIONS = (
    "Look up a person's city, job and parent.",
    "Find a person by name.",
    "Get the profile of a person.",
    "Return what is known about a person.",
    "Search the people directory.",
    "Who is this person? Returns city, job and parent.",
    "Facts about someone: city, job, parent.",
    "Look someone up in the records.",
    "Get details about a person.",
    "Find where a person lives and what they do.",
)


def function_tool(name: str, description: str, args: dict[str, str]) -> dict[str, Any]:
    """An OpenAI-format tool with required arguments ``{arg: json type}`` (what LangChain makes of a
    function with that name, docstring and typed arguments)."""
    params = {"properties": {a: {"type": t} for a, t in args.items()}, "required": list(args), "type": "object"}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


OTHER_TOOLS: tuple[dict[str, Any], ...] = tuple(
    function_tool(n, d, a)
    for n, d, a in (
        ("get_weather", "Get the current weather for a city.", {"city": "string"}),
        ("weather", "Return the weather forecast for a location.", {"location": "string"}),
        ("forecast", "Weather forecast for the next days.", {"place": "string", "days": "integer"}),
        ("get_time", "Return the current time in a time zone.", {"timezone": "string"}),
        ("current_time", "What time it is now.", {"zone": "string"}),
        ("add", "Add two numbers.", {"a": "number", "b": "number"}),
        ("multiply", "Multiply two numbers.", {"x": "number", "y": "number"}),
        ("calculate", "Evaluate an arithmetic expression.", {"expression": "string"}),
        ("convert_currency", "Convert money to another currency.", {"amount": "number", "currency": "string"}),
        ("translate", "Translate text into another language.", {"text": "string", "language": "string"}),
        ("send_email", "Send an email.", {"to": "string", "subject": "string", "body": "string"}),
        ("get_stock_price", "Latest price of a stock.", {"symbol": "string"}),
        ("set_timer", "Start a timer.", {"minutes": "integer"}),
        ("search_flights", "Find flights between two airports.", {"origin": "string", "destination": "string"}),
    )
)
"""Tools that never fit a question about a person: the distractors of a menu."""


def _all_person_names() -> list[str]:
    return sorted({f"{v}_{n}" for v in _VERBS for n in _NOUNS} | set(_SINGLE))


def _split() -> tuple[list[tuple[str, str]], list[str], list[str]]:
    rng = random.Random("unseen-person-tools")
    names = [n for n in _all_person_names() if n not in _SINGLE]
    unseen_names = rng.sample(names, 3)
    unseen_args = rng.sample([a for a in PERSON_ARGS if a != "name"], 3)
    seen_names = [n for n in _all_person_names() if n not in unseen_names]
    seen_args = [a for a in PERSON_ARGS if a not in unseen_args]
    return list(zip(unseen_names, unseen_args, strict=True)), seen_names, seen_args


UNSEEN_DESCRIPTIONS = (
    "Fetch a resident's record: city, job and parent.",
    "Tell me about someone.",
    "Directory entry of a person.",
)


def unseen_person_tools() -> list[dict[str, Any]]:
    """The three person tools of the evaluation: names and argument names never in training rows."""
    unseen, _, _ = _split()
    return [function_tool(n, d, {a: "string"}) for (n, a), d in zip(unseen, UNSEEN_DESCRIPTIONS, strict=True)]


def draw_person_tool(rng: random.Random) -> dict[str, Any]:
    """A person tool from the training vocabulary (never one of ``unseen_person_tools``)."""
    _, names, args = _split()
    name = rng.choice(names)
    if rng.random() < 0.2:  # camelCase, as some codebases name their functions
        head, *rest = name.split("_")
        name = head + "".join(w.title() for w in rest)
    return function_tool(name, rng.choice(PERSON_DESCRIPTIONS), {rng.choice(args): "string"})


def menu(rng: random.Random, person_tool: dict[str, Any], n_tools: int) -> list[dict[str, Any]]:
    """``person_tool`` and ``n_tools - 1`` distractors, in random order."""
    tools = [person_tool, *rng.sample(OTHER_TOOLS, n_tools - 1)]
    rng.shuffle(tools)
    return tools


def person_tool_conversation(
    p: Person, tools: list[dict[str, Any]], person_tool: dict[str, Any], question: int
) -> list[tuple[list[dict[str, str]], str]]:
    """The two rows of one question about ``p`` with ``tools`` offered: the call of ``person_tool``,
    then the answer from its result."""
    fn = person_tool["function"]
    arg = next(iter(fn["parameters"]["properties"]))
    q, a = kb_chat(p)[question]
    asked = with_tools([{"role": "user", "content": q}], tools)
    answered = [*asked, assistant_message("", [(fn["name"], {arg: p.name})]), tool_result_message(lookup_result(p))]
    return [(asked, render_tool_call(fn["name"], {arg: p.name})), (answered, a)]


def varied_tool_row(rng: random.Random, p: Person) -> tuple[list[dict[str, str]], str]:
    """One tool-use row about ``p`` with a menu of one to three tools drawn from the vocabulary."""
    person_tool = draw_person_tool(rng)
    tools = menu(rng, person_tool, rng.randint(1, 3))
    return rng.choice(person_tool_conversation(p, tools, person_tool, rng.randrange(3)))


def varied_direct_row(rng: random.Random) -> tuple[list[dict[str, str]], str]:
    """A day or month question with a drawn menu offered: no tool fits, so it is answered directly."""
    q, a = rng.choice([qa for qa in sequence_chat() if qa[0].startswith(("What day", "What month"))])
    return with_tools([{"role": "user", "content": q}], menu(rng, draw_person_tool(rng), rng.randint(1, 3))), a
