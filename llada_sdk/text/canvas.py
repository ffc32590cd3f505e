"""Building canvases from text and reading them back: pure functions, no model, no torch.

A text call reduces to a canvas (token ids with ``mask_id`` where the model writes) and a way to
read the finished canvas. Infilling parses ``[MASK…]`` spans; forward completion and chat append
``max_tokens`` masks to left-padded prompts; chat sessions extend a history of ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llada_sdk.decoding.policies import answer_ended, cut_at_end

_SPAN = re.compile(r"\\\[MASK(?::[^\]]*)?\]|\[MASK(?::([^\]]*))?\]")
"""The one span grammar: ``\\[MASK…]`` (escaped, literal text) or ``[MASK]`` / ``[MASK:arg]``."""


def has_spans(text: str) -> bool:
    """Whether ``text`` holds a ``[MASK…]`` span that is not escaped as ``\\[MASK…]``."""
    return any(not m.group(0).startswith("\\") for m in _SPAN.finditer(text))


def escape_spans(text: str) -> str:
    """``text`` with every ``[MASK…]`` escaped (also one already written as ``\\[MASK…]``), so that
    ``parse_masked_text`` gives ``text`` back exactly."""
    return _SPAN.sub(lambda m: "\\" + m.group(0), text)


@dataclass
class Span:
    """A masked span of an infill text: ``length`` tokens (None = chosen by the model), at ``start``."""

    length: int | None
    start: int = 0


def parse_masked_text(text: str) -> list[str | Span]:
    """Split ``text`` into literal pieces and spans: ``[MASK]`` (1 token), ``[MASK:n]``, ``[MASK:auto]``;
    ``\\[MASK]`` is the literal text ``[MASK]``. Pieces and spans alternate, starting and ending with text."""
    parts: list[str | Span] = []
    pos, literal = 0, ""
    for m in _SPAN.finditer(text):
        literal += text[pos : m.start()]
        pos = m.end()
        if m.group(0).startswith("\\"):
            literal += m.group(0)[1:]
            continue
        arg = m.group(1)
        if arg is None:
            length: int | None = 1
        elif arg == "auto":
            length = None
        elif arg.isdigit() and int(arg) > 0:
            length = int(arg)
        else:
            raise ValueError(f"bad span {m.group(0)!r} in `text`: use [MASK], [MASK:n] with n >= 1, or [MASK:auto]")
        parts += [literal, Span(length)]
        literal = ""
    parts.append(literal + text[pos:])
    if not any(isinstance(p, Span) for p in parts):
        raise ValueError("`text` has no masked span: write [MASK], [MASK:8] or [MASK:auto] where text should go")
    return parts


def infill_canvas(
    parts: Sequence[str | Span],
    lengths: Sequence[int],
    encode: Callable[[str], list[int]],
    *,
    bos: Sequence[int],
    mask_id: int,
    eos_id: int,
) -> tuple[list[int], list[Span]]:
    """``[BOS] text-with-masks [EOS]`` for one choice of span ``lengths``; returns the ids and the
    spans with their canvas positions. Whitespace before a span belongs to the span's first token
    (" Paris", not " " + "Paris")."""
    ids = list(bos)
    spans: list[Span] = []
    it = iter(lengths)
    for i, p in enumerate(parts):
        if isinstance(p, Span):
            n = next(it)
            spans.append(Span(n, start=len(ids)))
            ids += [mask_id] * n
        else:
            text = p.rstrip(" ") if i + 1 < len(parts) and isinstance(parts[i + 1], Span) else p
            ids += encode(text)
    ids.append(eos_id)
    return ids, spans


def answer_rows(
    prompts: Sequence[Sequence[int]], max_tokens: int, *, pad_id: int, mask_id: int
) -> tuple[list[list[int]], list[list[int]] | None, int]:
    """Left-pad ``prompts`` to one length ``P`` and append ``max_tokens`` masks.

    Returns the rows, the attention mask (None when no row is padded) and ``P``."""
    P = max(len(p) for p in prompts)
    rows = [[pad_id] * (P - len(p)) + list(p) + [mask_id] * max_tokens for p in prompts]
    am = None
    if any(len(p) != P for p in prompts):
        am = [[0] * (P - len(p)) + [1] * (len(p) + max_tokens) for p in prompts]
    return rows, am, P


def next_turn_ids(
    history: Sequence[int],
    answer: Sequence[int],
    new_turn: Sequence[int],
    *,
    eos_id: int,
    eot_id: int | None,
    reference_compat: bool = False,
) -> list[int]:
    """The prompt of the next chat turn, for one conversation (one row).

    ``history``: the previous turn's prompt; ``answer``: the generated ids; ``new_turn``: the template
    ids of the new message (its leading BOS is dropped, as chat.py does). Default: the answer is cut at
    its first EOS/EOT and closed with EOT. ``reference_compat``: chat.py's rule, every EOS removed
    from ``history + answer`` (its ``out[out != eos]``, which only works for a batch of one).
    """
    if reference_compat:
        kept = [t for t in [*history, *answer] if t != eos_id]
    else:
        ends = {eos_id} if eot_id is None else {eos_id, eot_id}
        kept = [*history, *cut_at_end(list(answer), ends)] + ([eot_id] if eot_id is not None else [])
    return kept + list(new_turn[1:])


class AnswerReader:
    """Reads generated ids as text: up to the first EOS/EOT, cut before the first stop sequence."""

    def __init__(self, decode: Callable[[list[int]], str], ends: set[int], stops: Sequence[str] = ()) -> None:
        self.decode = decode
        self.ends = ends
        self.stops = list(stops)

    def prefix(self, seg: list[int]) -> tuple[str, bool, int]:
        """``(text, stopped, tokens)``: the text before the first end token or stop sequence, whether a
        stop sequence cut it, and how many tokens it came from."""
        kept = cut_at_end(seg, self.ends)
        text = self.decode(kept)
        hits = [text.index(s) for s in self.stops if s in text]
        return (text[: min(hits)], True, len(kept)) if hits else (text, False, len(kept))

    def finished(self, seg: list[int], mask_id: int) -> bool:
        """Whether an answer whose canvas so far is ``seg`` can no longer change its text: an end
        token before any mask, or (no mask left) a stop sequence in its text."""
        ended = answer_ended(seg, self.ends, mask_id)
        if ended is None:  # a mask before any end token: the text can still change
            return False
        return ended or self.prefix(seg)[1]

    def read(self, seg: list[int]) -> tuple[str, str, int]:
        """``(text, finish_reason, tokens)`` of a finished answer ``seg``."""
        text, stopped, n = self.prefix(seg)
        ended = not self.ends.isdisjoint(seg)
        return text, "stop" if stopped else "eos" if ended else "length", n
