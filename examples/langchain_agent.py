"""An agent with a tool, offline: ``create_agent(ChatLLaDA(), tools=[lookup])``.

The bundled model was never trained to answer questions about this person in chat; it calls the
knowledge-base tool (in the documented ``<tool_call>`` format), then answers from the tool's result.
Run: ``python examples/langchain_agent.py``.
"""

from __future__ import annotations

import torch
from langchain.agents import create_agent
from langchain_core.tools import tool

from langchain_llada import ChatLLaDA

torch.set_num_threads(1)

FACTS = {"Dube": "city: Duskmere, job: miner, parent: Gotrir"}


@tool
def lookup(name: str) -> str:
    """Look up a person's city, job and parent."""
    return FACTS.get(name, f"unknown person: {name}")


agent = create_agent(ChatLLaDA(), tools=[lookup])
result = agent.invoke({"messages": [{"role": "user", "content": "Where does Dube live?"}]})
for message in result["messages"]:
    calls = [(c["name"], c["args"]) for c in getattr(message, "tool_calls", [])]
    print(f"{message.type}: {message.content or calls}")
