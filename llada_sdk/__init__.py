"""llada-sdk: run LLaDA masked-diffusion language models -- infill, complete in both directions, chat.

``import llada_sdk`` does not import torch; the PyTorch runtime is imported when a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llada_sdk.errors import (
    CheckpointError,
    ConfigError,
    LLaDAError,
    MissingExtraError,
    ModelNotFoundError,
    TokenizerError,
)
from llada_sdk.options import GenerationOptions

__version__ = "0.1.0"

from llada_sdk.options import ScoreOptions
from llada_sdk.results import (
    BlockEvent,
    CanvasEvent,
    Choice,
    Event,
    ResultEvent,
    StepEvent,
    TextEvent,
    TextResult,
)

if TYPE_CHECKING:
    from llada_sdk.api import LLaDA
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.text.session import ChatSession

_LAZY = {
    "LLaDA": "llada_sdk.api",
    "ChatSession": "llada_sdk.text.session",
    "LLaDAConfig": "llada_sdk.config",
}

__all__ = [
    "BlockEvent",
    "CanvasEvent",
    "ChatSession",
    "CheckpointError",
    "Choice",
    "ConfigError",
    "Event",
    "GenerationOptions",
    "LLaDA",
    "LLaDAConfig",
    "LLaDAError",
    "MissingExtraError",
    "ModelNotFoundError",
    "ResultEvent",
    "ScoreOptions",
    "StepEvent",
    "TextEvent",
    "TextResult",
    "TokenizerError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llada_sdk' has no attribute {name!r}")
