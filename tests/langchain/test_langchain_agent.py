"""The agent loop offline: create_agent(ChatLLaDA(), tools=[lookup]) answers a held-out person's question."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain")

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage

from langchain_llada import ChatLLaDA
from recipes.bundled_model.agent_tasks import kb_lookup_tool
from recipes.bundled_model.corpus import build_corpus, lookup_result

CORPUS = build_corpus(0)


@pytest.mark.slow
@pytest.mark.parametrize("question", ["Where does {} live?", "Who is {}'s parent?"])
def test_the_agent_calls_the_tool_then_answers_from_its_result(question: str) -> None:
    person = next(p for p in CORPUS.people if p.held_out_chat)
    agent = create_agent(ChatLLaDA(), tools=[kb_lookup_tool(CORPUS)])
    out = agent.invoke({"messages": [{"role": "user", "content": question.format(person.name)}]})
    _human, call, result, answer = out["messages"]
    assert isinstance(call, AIMessage) and [(c["name"], c["args"]) for c in call.tool_calls] == [
        ("lookup", {"name": person.name})
    ]
    assert isinstance(result, ToolMessage) and result.content == lookup_result(person)
    expected = (
        f"{person.name} lives in {person.city}."
        if "live" in question
        else f"{person.name}'s parent is {person.parent}."
    )
    assert isinstance(answer, AIMessage) and answer.content == expected and not answer.tool_calls


async def test_the_agent_runs_async_too() -> None:
    person = next(p for p in CORPUS.people if p.held_out_chat)
    agent = create_agent(ChatLLaDA(), tools=[kb_lookup_tool(CORPUS)])
    out = await agent.ainvoke({"messages": [{"role": "user", "content": f"What does {person.name} do?"}]})
    assert out["messages"][-1].content == f"{person.name} works as a {person.job}."
