"""The eval tasks that need LangChain: an agent with a knowledge-base tool, and structured extraction.

``python -m recipes.bundled_model.eval`` runs them when LangChain is installed:

- ``agent_heldout_people``: the held-out people questions through ``langchain.agents.create_agent(
  ChatLLaDA(), tools=[lookup])``: the model must call the tool, then answer from its result.
- ``agent_unseen_tool``: the same questions with a person tool whose name and argument name never
  appear in training (``recipes.bundled_model.tool_menus.unseen_person_tools``: three tools, each question asked
  with each).
- ``agent_two_three_tools``: the same questions with an unseen person tool beside one or two other tools
  (weather, time, arithmetic...), in a seeded random order.
- ``agent_no_call_syntax``: every final answer of the three agent tasks: the share that holds no
  tool-call syntax (``<tool_call>``, ``</tool_call>``, ``"arguments"``); target 100 %.
- ``extract_person``: ``ChatLLaDA().with_structured_output(Person)`` on a sentence about a person never
  seen in training -> name, city, job; the score of an item is the fraction of fields exact.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial
from typing import Any

from llada_sdk.text.tools import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from recipes.bundled_model.corpus import (
    EXTRACTION_TEMPLATES,
    N_SYNTHETIC,
    Corpus,
    extraction_sentence,
    lookup_result,
    synthetic_people,
)
from recipes.bundled_model.tool_menus import OTHER_TOOLS, unseen_person_tools

Task = tuple[str, Callable[[Any], float]]


def kb_lookup_tool(corpus: Corpus) -> Any:
    """The knowledge-base lookup tool of ``agent_heldout_people`` (a LangChain tool named ``lookup``)."""
    from langchain_core.tools import tool

    known = {p.name: p for p in corpus.people}

    @tool
    def lookup(name: str) -> str:
        """Look up a person's city, job and parent."""
        person = known.get(name.strip())
        return lookup_result(person) if person else f"unknown person: {name}"

    return lookup


def _chat_model(m: Any) -> Any:
    from langchain_llada import ChatLLaDA

    return ChatLLaDA.from_llada(m)


def langchain_tool(spec: dict[str, Any], corpus: Corpus) -> Any:
    """A LangChain tool with ``spec``'s name, description and string arguments. A person tool (one
    argument, a person tool of ``tool_menus``) answers from the knowledge base; another tool says
    it cannot help."""
    from langchain_core.tools import StructuredTool
    from pydantic import create_model

    fn = spec["function"]
    args = list(fn["parameters"]["properties"])
    types: dict[str, Any] = {"string": str, "number": float, "integer": int}
    fields: dict[str, Any] = {a: (types[fn["parameters"]["properties"][a]["type"]], ...) for a in args}
    schema = create_model(f"{fn['name']}_args", **fields)
    known = {p.name: p for p in corpus.people}
    person = spec not in OTHER_TOOLS

    def run(**kwargs: Any) -> str:
        if not person:
            return "this tool cannot answer that"
        found = known.get(str(kwargs.get(args[0], "")).strip())
        return lookup_result(found) if found else f"unknown person: {kwargs.get(args[0])}"

    return StructuredTool.from_function(run, name=fn["name"], description=fn["description"], args_schema=schema)


class _AgentRuns:
    """The final answers of agent runs, each run once however many tasks read it."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus, self.answers = corpus, dict[tuple[int, str, tuple[str, ...]], str]()

    def answer(self, m: Any, question: str, specs: tuple[dict[str, Any], ...] | None) -> str:
        from langchain.agents import create_agent
        from langgraph.errors import GraphRecursionError

        names = tuple(s["function"]["name"] for s in specs) if specs is not None else ("lookup",)
        key = (id(m), question, names)
        if key not in self.answers:
            tools = (
                [langchain_tool(s, self.corpus) for s in specs] if specs is not None else [kb_lookup_tool(self.corpus)]
            )
            agent = create_agent(_chat_model(m), tools=tools)
            try:
                out = agent.invoke({"messages": [{"role": "user", "content": question}]}, {"recursion_limit": 8})
                self.answers[key] = str(out["messages"][-1].content)
            except (ValueError, GraphRecursionError) as exc:  # calls in a loop until the window or the limit
                self.answers[key] = f"(no answer: {type(exc).__name__})"
        return self.answers[key]

    def correct(self, m: Any, question: str, specs: tuple[dict[str, Any], ...] | None, expected: str) -> bool:
        return self.answer(m, question, specs).strip() == expected

    def clean(self, m: Any, question: str, specs: tuple[dict[str, Any], ...] | None) -> bool:
        text = self.answer(m, question, specs)
        return not any(mark in text for mark in (TOOL_CALL_OPEN, TOOL_CALL_CLOSE, '"arguments"'))


def _extract_fields(m: Any, sentence: str, expected: dict[str, str]) -> float:
    from pydantic import create_model

    person = create_model("Person", name=(str, ...), city=(str, ...), job=(str, ...))
    got = _chat_model(m).with_structured_output(person).invoke(sentence).model_dump()
    return float(sum(got[k] == v for k, v in expected.items()) / len(expected))


def tasks(llm: Any, corpus: Corpus, seed: int = 0) -> dict[str, list[Task]]:
    """``{task: [(description, check(llm) -> score)]}`` for the LangChain tasks."""
    runs = _AgentRuns(corpus)
    out: dict[str, list[Task]] = {
        k: [] for k in ("agent_heldout_people", "agent_unseen_tool", "agent_two_three_tools", "agent_no_call_syntax")
    }
    unseen = unseen_person_tools()
    rng = random.Random(f"tool-menus-{seed}")
    for i, (q, ans) in enumerate(corpus.held_out_chat):
        menus: list[tuple[str, tuple[dict[str, Any], ...] | None]] = [("agent_heldout_people", None)]
        menus += [("agent_unseen_tool", (tool,)) for tool in unseen]
        for n in (2, 3):
            offered = [unseen[(i + n) % len(unseen)], *rng.sample(OTHER_TOOLS, n - 1)]
            rng.shuffle(offered)
            menus.append(("agent_two_three_tools", tuple(offered)))
        for task, specs in menus:
            label = q if specs is None else f"{q} [{', '.join(s['function']['name'] for s in specs)}]"
            out[task].append((label, partial(runs.correct, question=q, specs=specs, expected=ans)))
            out["agent_no_call_syntax"].append((label, partial(runs.clean, question=q, specs=specs)))
    out["extract_person"] = []
    # people never seen in training: the synthetic generator's next 40 (the corpus uses the first N_SYNTHETIC)
    kb_names = {n for p in corpus.people for n in (p.name, p.parent)}
    fresh = synthetic_people(seed, N_SYNTHETIC + 40, exclude=kb_names)[N_SYNTHETIC:]
    for i, p in enumerate(fresh):
        sentence = extraction_sentence(p, i % len(EXTRACTION_TEMPLATES))
        expected = {"name": p.name, "city": p.city, "job": p.job}
        out["extract_person"].append((sentence, partial(_extract_fields, sentence=sentence, expected=expected)))
    return out
