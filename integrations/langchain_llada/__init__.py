"""LangChain objects for LLaDA (planned; see the README's roadmap)."""

from __future__ import annotations

__all__: list[str] = []
