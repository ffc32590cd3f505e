"""LCEL with LLaDA: a prompt | chat model | parser chain, and the diffusion-native completion calls.

Runs offline on the bundled model: ``python examples/langchain_lcel.py``.
"""

from __future__ import annotations

import torch
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate

from langchain_llada import ChatLLaDA, LLaDALLM

torch.set_num_threads(1)

# 1. A chat chain: template -> ChatLLaDA -> string.
chain = ChatPromptTemplate.from_messages([("user", "Where does {name} live?")]) | ChatLLaDA() | StrOutputParser()
print(chain.invoke({"name": "Zapur"}))
print(chain.batch([{"name": "Zapur"}, {"name": "Kikouguth"}]))

# 2. Infilling: a prompt with [MASK...] spans is filled (the output is the whole text).
infill = PromptTemplate.from_template("{name} lives in [MASK:auto] and works as a [MASK:2].") | LLaDALLM()
print(infill.invoke({"name": "Zapur"}))

# 3. Backward completion: suffix= asks for what comes *before* a given ending.
backward = LLaDALLM().bind(suffix="'s parent is {parent}.".format(parent="Lotrobar"))
print(backward.invoke(""))

# 4. Streaming: one chunk per finished block.
for chunk in chain.stream({"name": "Zapur"}):
    print(repr(chunk))
