"""ONNX export of LLaDA models (planned; see the README's roadmap). Nothing is exported yet."""

from __future__ import annotations

__all__: list[str] = []
