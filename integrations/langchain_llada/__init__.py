"""LangChain objects for LLaDA masked-diffusion models: ``ChatLLaDA`` (chat model with tool calling and
schema-exact structured output) and ``LLaDALLM`` (completion LLM: forward, infill, backward)."""

from __future__ import annotations

from langchain_llada.chat_models import ChatLLaDA
from langchain_llada.llms import LLaDALLM

__all__ = ["ChatLLaDA", "LLaDALLM"]
