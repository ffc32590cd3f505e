"""What the text API returns and streams: results and events (no torch, no model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = [
    "BlockEvent",
    "CanvasEvent",
    "Choice",
    "DoneEvent",
    "Event",
    "ResultEvent",
    "StepEvent",
    "TextEvent",
    "TextResult",
]


@dataclass
class StepEvent:
    """One denoising step. ``filled[row]`` lists ``(position, token)`` committed in this step."""

    block: int
    step: int
    filled: list[list[tuple[int, int]]]
    forward_passes: int


@dataclass
class BlockEvent:
    """A block finished: canvas positions ``[start, end)`` hold no mask any more (but see ``stopped``)."""

    block: int
    start: int
    end: int
    forward_passes: int


@dataclass
class DoneEvent:
    """The run ended. ``forward_passes_saved`` counts the steps skipped by an early stop."""

    forward_passes: int
    forward_passes_saved: int = 0
    stopped_early: bool = False
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class TextResult:
    """What a text call returns.

    Attributes:
        text: the full text (infill: the text with every span filled; complete/chat: the new text).
        fills: infill only: the text of each span, in order (surrounding whitespace stripped).
        lengths: infill only: the token length of each span (chosen by the model for ``auto``).
        finish_reason: ``"eos"`` (the answer ended), ``"stop"`` (a stop sequence), ``"length"``.
        forward_passes: model calls made (a call on a CFG-doubled batch counts once).
        forward_passes_saved: steps skipped by the early stop.
        ids: the final canvas of this row (token ids).
        prompt_tokens: tokens of the canvas that were given (not written by the model).
        completion_tokens: tokens the model wrote that belong to the answer (up to its end).
        backend: what ran it (``Backend.info()``: backend name, device, providers...).
    """

    text: str
    fills: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    finish_reason: str = "length"
    forward_passes: int = 0
    forward_passes_saved: int = 0
    ids: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    backend: dict[str, object] = field(default_factory=dict)


@dataclass
class CanvasEvent:
    """First event of a stream: the canvas before denoising (``mask_id`` marks what will be written)."""

    ids: list[list[int]]
    mask_id: int
    region: tuple[int, int]


@dataclass
class TextEvent:
    """Text that became final when a block finished (concatenated deltas = the final text)."""

    row: int
    block: int
    delta: str


@dataclass
class ResultEvent:
    """Last event of a stream: one result per row."""

    results: list[TextResult]


Event: TypeAlias = CanvasEvent | StepEvent | BlockEvent | TextEvent | ResultEvent
"""Everything a ``stream_*`` call yields, in order: one ``CanvasEvent``, then ``StepEvent`` /
``BlockEvent`` / ``TextEvent`` as decoding goes, and one ``ResultEvent`` last."""


@dataclass
class Choice:
    """Result of ``LLaDA.choose``: the best choice and every choice's log-likelihood bound."""

    index: int
    text: str
    scores: list[float]
