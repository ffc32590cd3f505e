"""llada_server: LLaDA behind the OpenAI HTTP API, with step-level request batching.

``create_app(llm)`` is the FastAPI app (embed it, or run it with ``llada serve``); ``ServerSettings``
bounds what it admits. Needs ``pip install 'llada-sdk[serve]'``; it runs without torch on an exported
ONNX bundle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llada_server.settings import ServerSettings

if TYPE_CHECKING:
    from llada_server.app import create_app

__all__ = ["ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # imports FastAPI: only when asked for
        from llada_server.app import create_app

        return create_app
    raise AttributeError(f"module 'llada_server' has no attribute {name!r}")
