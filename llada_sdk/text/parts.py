"""What the text services need from a model, as protocols: they take these, never ``LLaDA`` itself.

``ModelParts`` is what the low-level services (infilling, scoring) use: the backend, the config and
the tokenizer. ``TextModel`` adds the text calls that the services built on top of them (schema-exact
output, the assistant turn, multi-turn chat) call back into. ``LLaDA`` satisfies both structurally.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from llada_sdk.backends.base import Backend
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.options import GenerationOptions, ScoreOptions
    from llada_sdk.results import Choice, Event, TextResult
    from llada_sdk.tokenizer import Message, Tokenizer

__all__ = ["ModelParts", "TextModel", "bos_ids"]


@runtime_checkable
class ModelParts(Protocol):
    """A model's parts: ``backend`` (what predicts the masks), ``config`` (sizes, special ids, context
    window) and ``require_tokenizer()`` (the tokenizer, or a ``TokenizerError`` when there is none)."""

    @property
    def backend(self) -> Backend: ...

    @property
    def config(self) -> LLaDAConfig: ...

    def require_tokenizer(self) -> Tokenizer: ...


@runtime_checkable
class TextModel(ModelParts, Protocol):
    """``ModelParts`` with the default ``options`` and the text calls the higher services use."""

    @property
    def options(self) -> GenerationOptions: ...

    def infill(
        self,
        text: str,
        *,
        options: GenerationOptions | dict[str, Any] | None = None,
        allowed_tokens: Sequence[Collection[int] | None] | None = None,
        **overrides: Any,
    ) -> TextResult: ...

    def choose(
        self,
        prompt: str,
        choices: Sequence[str],
        *,
        options: ScoreOptions | dict[str, Any] | None = None,
        normalize: bool = False,
        progress: Callable[[int], None] | None = None,
        **overrides: Any,
    ) -> Choice: ...

    def stream_chat(
        self,
        messages: Sequence[Message] | Sequence[Sequence[Message]],
        *,
        options: GenerationOptions | dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Iterator[Event]: ...

    def stream_prompt_ids(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        options: GenerationOptions | dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Iterator[Event]: ...


def bos_ids(config: LLaDAConfig) -> list[int]:
    """``[BOS]`` if the tokenizer defines it, else ``[]``."""
    return [] if config.bos_token_id is None else [config.bos_token_id]
