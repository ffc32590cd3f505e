"""The live canvas view: masked positions as dim ``░``, each step's new tokens highlighted (rich.live).

``run_stream`` drains a stream of the Python API (``stream_infill``, ``stream_complete``,
``stream_chat``, ``ChatSession.stream``) and returns its ``TextResult``; with a console it draws the
canvas while it denoises, and the drawing disappears when the text is final (the caller prints it).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from llada_sdk import CanvasEvent, ResultEvent

if TYPE_CHECKING:
    from llada_sdk import TextResult

MASK = "░"
END = "·"
MASK_STYLE = "grey50"
FRESH_STYLE = "bold black on bright_green"
END_STYLE = "grey50"
STATUS_STYLE = "dim"
REFRESH_S = 1 / 30


class CanvasView:
    """The state of one canvas row, updated from stream events and rendered as rich ``Text``.

    Args:
        decode: one token id -> its text.
        hidden: ids never drawn outside the generated region (BOS, EOS, chat-template tokens...).
        context: also draw the text around the generated region (infill, completion); chat draws the
            answer region only.
    """

    def __init__(self, decode: Callable[[int], str], hidden: Callable[[int], bool], *, context: bool) -> None:
        self._decode = decode
        self._hidden = hidden
        self._context = context
        self._pieces: dict[int, str] = {}
        self.ids: list[int] = []
        self.mask_id = -1
        self.region = (0, 0)
        self.fresh: set[int] = set()
        self.steps = 0
        self.forward_passes = 0

    def update(self, event: Any) -> bool:
        """Apply ``event``; True when the picture changed."""
        if isinstance(event, CanvasEvent):
            self.ids = list(event.ids[0])
            self.mask_id = event.mask_id
            self.region = event.region
            self.fresh = set()
            return True
        filled = getattr(event, "filled", None)
        if filled is None:
            return False
        self.steps += 1
        self.forward_passes = int(getattr(event, "forward_passes", self.forward_passes))
        self.fresh = set()
        for pos, tok in filled[0]:
            self.ids[pos] = tok
            self.fresh.add(pos)
        return True

    def _piece(self, tok: int) -> str:
        if tok not in self._pieces:
            self._pieces[tok] = self._decode(tok)
        return self._pieces[tok]

    def render(self) -> Group:
        """The canvas as styled text, plus a status line."""
        text = Text()
        start, end = self.region
        positions = range(len(self.ids)) if self._context else range(start, end)
        masked = 0
        for pos in positions:
            tok = self.ids[pos]
            inside = start <= pos < end
            if tok == self.mask_id:
                masked += 1
                text.append(MASK, style=MASK_STYLE)
            elif self._hidden(tok):
                if inside:
                    text.append(END, style=FRESH_STYLE if pos in self.fresh else END_STYLE)
            else:
                text.append(self._piece(tok), style=FRESH_STYLE if pos in self.fresh else "")
        status = Text(f"step {self.steps} · {masked} masked · {self.forward_passes} forward passes", style=STATUS_STYLE)
        return Group(text, status)


def run_stream(events: Iterable[Any], *, view: CanvasView | None = None, console: Console | None = None) -> TextResult:
    """Drain ``events`` and return the (first row's) ``TextResult``; draw ``view`` live on ``console``."""
    if view is None or console is None:
        for ev in events:
            if isinstance(ev, ResultEvent):
                return ev.results[0]
        raise RuntimeError("the stream ended without a result")
    last = 0.0
    with Live(console=console, auto_refresh=False, transient=True) as live:
        for ev in events:
            if isinstance(ev, ResultEvent):
                return ev.results[0]
            if view.update(ev):
                now = time.monotonic()
                if isinstance(ev, CanvasEvent) or now - last >= REFRESH_S:
                    live.update(view.render(), refresh=True)
                    last = now
    raise RuntimeError("the stream ended without a result")


def canvas_view(llm: Any, *, context: bool) -> CanvasView:
    """A ``CanvasView`` decoding with ``llm``'s tokenizer."""
    tok = llm.tokenizer
    return CanvasView(lambda t: tok.decode([t]), tok.is_special, context=context)


def present(llm: Any, events: Iterable[Any], *, live: bool, context: bool, waiting: str | None = None) -> TextResult:
    """``run_stream`` with the live view on stdout when ``live``, silently otherwise.

    ``waiting``: a spinner message (stderr, on a terminal) until the first event, for streams that
    think before they draw (``[MASK:auto]`` tries every length first).
    """
    if waiting:
        from llada_cli.common import busy

        stream = iter(events)
        with busy(waiting):
            first = next(stream, None)
        events = itertools.chain([] if first is None else [first], stream)
    if not live:
        return run_stream(events)
    return run_stream(events, view=canvas_view(llm, context=context), console=Console(highlight=False))
