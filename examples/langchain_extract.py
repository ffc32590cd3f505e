"""Structured extraction: ``ChatLLaDA().with_structured_output(Person)``.

The JSON skeleton of ``Person`` is fixed text on the canvas and the model writes only the values, so
every answer parses and validates. Run: ``python examples/langchain_extract.py``.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel

from langchain_llada import ChatLLaDA

torch.set_num_threads(1)


class Person(BaseModel):
    name: str
    city: str
    job: str


extract = ChatLLaDA().with_structured_output(Person)
for sentence in (
    "Zibrou is a pilot who lives in Kelso.",
    "Marelin works as a baker and lives in Orlan.",
):
    print(repr(extract.invoke(sentence)))
