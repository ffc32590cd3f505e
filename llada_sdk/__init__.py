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

if TYPE_CHECKING:
    from llada_sdk.api import ChatSession, Choice, LLaDA, TextResult
    from llada_sdk.config import LLaDAConfig

_LAZY = {
    "LLaDA": "llada_sdk.api",
    "ChatSession": "llada_sdk.api",
    "TextResult": "llada_sdk.api",
    "Choice": "llada_sdk.api",
    "LLaDAConfig": "llada_sdk.config",
}

__all__ = [
    "ChatSession",
    "CheckpointError",
    "Choice",
    "ConfigError",
    "GenerationOptions",
    "LLaDA",
    "LLaDAConfig",
    "LLaDAError",
    "MissingExtraError",
    "ModelNotFoundError",
    "TextResult",
    "TokenizerError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'llada_sdk' has no attribute {name!r}")
