"""Exceptions raised by llada-sdk. Every message names the offending parameter, file or key."""

from __future__ import annotations


class LLaDAError(Exception):
    """Base class of every error llada-sdk raises on purpose."""


class ConfigError(LLaDAError, ValueError):
    """A config.json value the runtime does not implement, or an invalid one."""


class CheckpointError(LLaDAError):
    """Missing, corrupt or mismatching checkpoint files or tensors."""


class ModelNotFoundError(CheckpointError, FileNotFoundError):
    """Neither a local directory nor a (cached) Hub repository could be resolved."""


class TokenizerError(LLaDAError):
    """A text API was called on a model without tokenizer files, or the tokenizer files are bad."""


class MissingExtraError(LLaDAError, ImportError):
    """An optional dependency group is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"this feature needs the '{module}' package, which is not installed; run: pip install 'llada-sdk[{extra}]'"
        )
        self.module = module
        self.extra = extra
