"""An agent with your own tools, offline: ``create_agent(ChatLLaDA(), tools=[get_weather, find_person])``.

The bundled model was never trained on these tool names or this argument name, nor to answer questions
about this person in chat: it picks the tool that fits the question from the ones offered, calls it (in
the documented ``<tool_call>`` format, made exact against the tool's schema), then answers from the
tool's result. Run: ``python examples/langchain_agent.py``.
"""

from __future__ import annotations

import torch
from langchain.agents import create_agent
from langchain_core.tools import tool

from langchain_llada import ChatLLaDA

torch.set_num_threads(1)

PEOPLE = {"Dube": "city: Duskmere, job: miner, parent: Gotrir"}


@tool
def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"{city}: sunny, 21 C"


@tool
def find_person(person: str) -> str:
    """Look up where a person lives, their job and their parent."""
    return PEOPLE.get(person, f"unknown person: {person}")


agent = create_agent(ChatLLaDA(), tools=[get_weather, find_person])
result = agent.invoke({"messages": [{"role": "user", "content": "Where does Dube live?"}]})
for message in result["messages"]:
    calls = [(c["name"], c["args"]) for c in getattr(message, "tool_calls", [])]
    print(f"{message.type}: {message.content or calls}")
