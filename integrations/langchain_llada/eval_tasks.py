"""The eval tasks that need LangChain: an agent with a knowledge-base tool, and structured extraction.

``python -m llada_sdk.eval`` finds them through the ``llada_sdk.eval_tasks`` entry point (the core
never imports this package):

- ``agent_heldout_people``: the held-out people questions through ``langchain.agents.create_agent(
  ChatLLaDA(), tools=[lookup])``: the model must call the tool, then answer from its result.
- ``extract_person``: ``ChatLLaDA().with_structured_output(Person)`` on a sentence about a person never
  seen in training -> name, city, job; the score of an item is the fraction of fields exact.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from llada_sdk.corpus import (
    EXTRACTION_TEMPLATES,
    N_SYNTHETIC,
    Corpus,
    extraction_sentence,
    lookup_result,
    synthetic_people,
)

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


def _agent_is(m: Any, corpus: Corpus, question: str, expected: str) -> bool:
    from langchain.agents import create_agent

    agent = create_agent(_chat_model(m), tools=[kb_lookup_tool(corpus)])
    out = agent.invoke({"messages": [{"role": "user", "content": question}]}, {"recursion_limit": 8})
    return bool(str(out["messages"][-1].content).strip() == expected)


def _extract_fields(m: Any, sentence: str, expected: dict[str, str]) -> float:
    from pydantic import create_model

    person = create_model("Person", name=(str, ...), city=(str, ...), job=(str, ...))
    got = _chat_model(m).with_structured_output(person).invoke(sentence).model_dump()
    return float(sum(got[k] == v for k, v in expected.items()) / len(expected))


def tasks(llm: Any, corpus: Corpus, seed: int = 0) -> dict[str, list[Task]]:
    """``{task: [(description, check(llm) -> score)]}`` for the two LangChain tasks."""
    out: dict[str, list[Task]] = {"agent_heldout_people": [], "extract_person": []}
    for q, ans in corpus.held_out_chat:
        out["agent_heldout_people"].append((q, partial(_agent_is, corpus=corpus, question=q, expected=ans)))
    # people never seen in training: the synthetic generator's next 40 (the corpus uses the first N_SYNTHETIC)
    kb_names = {n for p in corpus.people for n in (p.name, p.parent)}
    fresh = synthetic_people(seed, N_SYNTHETIC + 40, exclude=kb_names)[N_SYNTHETIC:]
    for i, p in enumerate(fresh):
        sentence = extraction_sentence(p, i % len(EXTRACTION_TEMPLATES))
        expected = {"name": p.name, "city": p.city, "job": p.job}
        out["extract_person"].append((sentence, partial(_extract_fields, sentence=sentence, expected=expected)))
    return out
