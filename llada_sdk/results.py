"""What the text API returns and streams: results and events (no torch, no model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

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


class StepEvent:
    """One denoising step. ``filled[row]`` lists ``(position, token)`` committed in this step.

    The engine hands over the step's commit mask and the canvas; ``filled`` is read from them the
    first time it is asked for (committed tokens never change), so a consumer that does not look
    costs the loop nothing. ``StepEvent(block, step, filled, forward_passes)`` also works.
    """

    __slots__ = ("_canvas", "_chosen", "_filled", "_start", "block", "forward_passes", "step")

    def __init__(
        self,
        block: int,
        step: int,
        filled: list[list[tuple[int, int]]] | None = None,
        forward_passes: int = 0,
        *,
        chosen: Any = None,
        canvas: Any = None,
        start: int = 0,
    ) -> None:
        self.block, self.step, self.forward_passes = block, step, forward_passes
        self._filled, self._chosen, self._canvas, self._start = filled, chosen, canvas, start

    @property
    def filled(self) -> list[list[tuple[int, int]]]:
        if self._filled is None:
            rows = self._chosen.tolist()
            seg = self._canvas[:, self._start : self._start + len(rows[0])].tolist() if rows else []
            self._filled = [
                [(self._start + j, seg[r][j]) for j, hit in enumerate(row) if hit] for r, row in enumerate(rows)
            ]
            self._chosen = self._canvas = None
        return self._filled

    def __repr__(self) -> str:
        return f"StepEvent(block={self.block}, step={self.step}, forward_passes={self.forward_passes})"


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
