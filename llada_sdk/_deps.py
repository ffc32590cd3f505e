"""Optional dependencies: import them on use, with the exact ``pip install`` on failure."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from llada_sdk.errors import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ``MissingExtraError`` naming ``pip install 'llada-sdk[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module, extra) from exc


def require_torch() -> Any:
    """``torch``, or an error telling to ``pip install 'llada-sdk[torch]'``."""
    return require("torch", "torch")


def installed_entry_points(group: str) -> list[Any]:
    """The entry points of ``group`` from every installed distribution (not ``entry_points()``'s
    one-distribution-per-name view, in which a stale ``*.egg-info`` in the working directory hides the
    installed metadata)."""
    from importlib import metadata

    return [ep for dist in metadata.distributions() for ep in dist.entry_points if ep.group == group]
