"""``ChatSession``: a multi-turn conversation kept as token ids, on the text calls of a ``TextModel``
(``LLaDA``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from llada_sdk.options import GenerationOptions
from llada_sdk.results import Event, ResultEvent, TextResult
from llada_sdk.text.canvas import next_turn_ids
from llada_sdk.text.runner import drain
from llada_sdk.text.validate import check_messages, check_text
from llada_sdk.tokenizer import Message, Overflow, Tokenizer

if TYPE_CHECKING:
    from llada_sdk.text.parts import TextModel


class _NoRoom(Exception):
    """The new message and the system prompts alone are over the room: no history can be kept."""


class ChatSession:
    """A multi-turn conversation. The history is kept as token ids: each turn appends the new user
    message (through the chat template) to the previous prompt and answer, as the official chat.py
    does, with the answer cut at its first EOS/EOT (correct for any batch size)."""

    def __init__(
        self,
        llm: TextModel,
        system: str | None = None,
        messages: Sequence[Message] | None = None,
        options: GenerationOptions | dict[str, Any] | None = None,
    ) -> None:
        self.llm = llm
        self.options = GenerationOptions.coerce(options) or llm.options
        self.messages: list[Message] = []
        self.dropped: list[Message] = []
        self._ids: list[int] | None = None
        self.reset(system=system, messages=messages)

    def reset(self, system: str | None = None, messages: Sequence[Message] | None = None) -> None:
        """Forget the history (keep ``system`` or start from ``messages``)."""
        if system is not None:
            check_text(system, "system")
        self.messages = [dict(m) for m in check_messages(messages)] if messages else []
        self.dropped = []
        if system is not None:
            self.messages = [m for m in self.messages if m.get("role") != "system"]
            self.messages.insert(0, {"role": "system", "content": system})
        self._ids = None

    def prompt_ids(self, text: str) -> list[int]:
        """The canvas prompt of the next turn if the user says ``text`` (before any trimming)."""
        tok = self.llm.require_tokenizer()
        user = {"role": "user", "content": text}
        if self._ids is None:
            return tok.apply_chat_template([*self.messages, user], bounded=False)
        return self._ids + tok.apply_chat_template([user], bounded=False)[1:]

    def windows(self) -> tuple[int, int]:
        """``(keep, limit)``: the history is trimmed to ``keep`` tokens (prompt + ``max_tokens``), the
        model's trained window when config.json gives one (longer canvases lose quality), else its
        context window; ``limit`` is the context window (``max_sequence_length``), past which nothing
        is decoded."""
        cfg = self.llm.config
        return cfg.trained_window or cfg.context_window, cfg.context_window

    def check_max_tokens(self, max_tokens: int) -> int:
        """ValueError when ``max_tokens`` leaves no room in the context window for the system prompt
        and a one-character message; returns the tokens those take."""
        tok = self.llm.require_tokenizer()
        _, limit = self.windows()
        kept = [m for m in self.messages if m.get("role") == "system"]
        least = tok.chat_ids([*kept, {"role": "user", "content": "?"}], True, limit)
        used = least.tokens if isinstance(least, Overflow) else len(least)
        if used + max_tokens > limit:
            raise ValueError(
                f"`max_tokens` ({max_tokens}) does not fit this model's context window of {limit} tokens "
                f"(`max_sequence_length` in config.json): a one-character message takes {used} with the chat "
                f"template{' and the system prompt' if kept else ''}, leaving at most {max(limit - used, 0)}"
            )
        return used

    def _groups(self) -> list[list[int]]:
        """The order in which history goes when it outgrows the window: the oldest message that is not
        a system prompt, with the assistant answer right after it."""
        msgs, groups, taken = self.messages, [], set()
        for i, m in enumerate(msgs):
            if m.get("role") == "system" or i in taken:
                continue
            group = [i, i + 1] if i + 1 < len(msgs) and msgs[i + 1].get("role") == "assistant" else [i]
            taken.update(group)
            groups.append(group)
        return groups

    def _fit(self, text: str, max_tokens: int) -> list[int]:
        """The next prompt, dropping the oldest user/assistant messages (the system prompt stays) while
        prompt + ``max_tokens`` would not fit the window the history is kept in (``windows``); they go
        to ``dropped``. A message that does not fit even alone is sent without history as long as it
        fits the context window (the backend warns past the trained window); past it, ValueError.

        Linear in the history: every message is rendered and counted once (``Tokenizer.chat_frame``)
        and the kept ones once more together, which must give the counted ids; a template without
        that structure falls back to a binary search of the cut (O(log n) renderings)."""
        tok = self.llm.require_tokenizer()
        keep, limit = self.windows()
        room = keep - max_tokens
        user = {"role": "user", "content": text}
        first = 0
        if self._ids is not None:  # the usual turn: the history's ids plus the new message
            turn = tok.chat_ids([user], True, max(room, 0) + 1)
            if not isinstance(turn, Overflow) and len(self._ids) + len(turn) - 1 <= room:
                return self._ids + turn[1:]
            first = 1  # the ids did not fit: rebuild from messages, at least one turn shorter
        groups = self._groups()
        try:
            cut = self._cut_by_counts(tok, user, groups, first, room)
            if cut is None:
                cut = self._cut_by_search(tok, user, groups, first, room)
        except _NoRoom:
            cut = None
        if cut is None:  # not even the message alone fits `keep`: try it without history in the context window
            kept = self._kept(groups, len(groups))
            alone = tok.chat_ids([*kept, user], True, limit - max_tokens)
            if isinstance(alone, Overflow) or len(alone) + max_tokens > limit:
                n = alone.tokens if isinstance(alone, Overflow) else len(alone)
                size = f"at least {n:,}" if isinstance(alone, Overflow) and alone.partial else f"{n:,}"
                raise ValueError(
                    f"`text`: the message ({size} tokens with the chat template"
                    f"{' and the system prompt' if kept else ''}) plus `max_tokens` ({max_tokens}) does not fit "
                    f"this model's context window of {limit} tokens (`max_sequence_length` in config.json), "
                    "even without the conversation's history"
                )
            cut = (len(groups), alone)
        count, prompt = cut
        for group in groups[:count]:
            self.dropped += [self.messages[i] for i in group]
        gone = {i for group in groups[:count] for i in group}
        if gone or first:
            self.messages = [m for i, m in enumerate(self.messages) if i not in gone]
            self._ids = None
        return prompt

    def _kept(self, groups: list[list[int]], count: int) -> list[Message]:
        """The messages left once the first ``count`` groups are dropped."""
        gone = {i for group in groups[:count] for i in group}
        return [m for i, m in enumerate(self.messages) if i not in gone]

    def _cut_by_counts(
        self, tok: Tokenizer, user: Message, groups: list[list[int]], first: int, room: int
    ) -> tuple[int, list[int]] | None:
        """``(groups to drop, prompt)`` from per-message token counts, newest first; None when the
        template is not a frame of pieces or the counted prompt is not what it renders."""
        frame = tok.chat_frame()
        if frame is None:
            return None
        lead, tail = frame

        def piece(message: Message) -> list[int] | None:  # None: over the room by itself
            out = tok.chat_ids([message], True, room + len(lead) + len(tail))
            if isinstance(out, Overflow):
                return None
            if out[: len(lead)] != lead or out[len(out) - len(tail) :] != tail:
                raise LookupError  # this message does not render as a piece of the frame
            return out[len(lead) : len(out) - len(tail)]

        try:
            grouped = {i for group in groups for i in group}
            pieces = {i: piece(m) for i, m in enumerate(self.messages) if i not in grouped}  # system prompts
            new = piece(user)
            if new is None or any(p is None for p in pieces.values()):
                raise _NoRoom  # the message or a system prompt alone is over the room
            used = len(lead) + len(tail) + len(new) + sum(len(p or ()) for p in pieces.values())
            if used > room:
                raise _NoRoom
            count = len(groups)
            for g in range(len(groups) - 1, first - 1, -1):
                for i in groups[g]:
                    pieces[i] = piece(self.messages[i])
                sizes = [pieces[i] for i in groups[g]]
                if any(p is None for p in sizes) or used + sum(len(p or ()) for p in sizes) > room:
                    break
                used += sum(len(p or ()) for p in sizes)
                count = g
        except LookupError:
            return None
        gone = {i for group in groups[:count] for i in group}
        kept = [i for i in range(len(self.messages)) if i not in gone]
        prompt = tok.chat_ids([*(self.messages[i] for i in kept), user], True, room)
        counted = list(lead)
        for i in kept:
            counted += pieces[i] or []
        if prompt != counted + new + tail:  # the template is not a frame for these messages
            return None
        return count, prompt

    def _cut_by_search(
        self, tok: Tokenizer, user: Message, groups: list[list[int]], first: int, room: int
    ) -> tuple[int, list[int]] | None:
        """``(groups to drop, prompt)``: the fewest groups to drop for the prompt to fit ``room``,
        by binary search over the cut (a prompt shrinks as messages go); None when none fits."""

        def fits(count: int) -> list[int] | None:
            out = tok.chat_ids([*self._kept(groups, count), user], True, room)
            return None if isinstance(out, Overflow) else out

        lo, hi = first, len(groups)
        best = fits(hi)
        if best is None:
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            out = fits(mid)
            if out is None:
                lo = mid + 1
            else:
                hi, best = mid, out
        return hi, best

    def stream(
        self, text: str, *, options: GenerationOptions | dict[str, Any] | None = None, **overrides: Any
    ) -> Iterator[Event]:
        """Send ``text`` as the user; yields the events of ``LLaDA.stream_chat`` and records the answer
        when the stream finishes (an abandoned stream leaves the history unchanged).

        When the history no longer fits the window it is kept in (``windows``: the trained window when
        the model card gives one) with ``max_tokens`` to write, the oldest turns are dropped (kept in
        ``dropped``); the system prompt always stays."""
        check_text(text, "text")
        opts = (GenerationOptions.coerce(options) or self.options).with_overrides(**overrides)
        prompt = self._fit(text, opts.max_tokens)
        events = self.llm.stream_prompt_ids([prompt], options=opts)
        return self._record(events, prompt, text, opts)

    def _record(
        self, events: Iterator[Event], prompt: list[int], text: str, opts: GenerationOptions
    ) -> Iterator[Event]:
        cfg = self.llm.config
        for ev in events:
            if isinstance(ev, ResultEvent):
                res = ev.results[0]
                self._ids = next_turn_ids(
                    prompt,
                    res.ids[len(prompt) :],
                    [0],
                    eos_id=cfg.eos_token_id,
                    eot_id=cfg.eot_token_id,
                    reference_compat=opts.reference_compat,
                )
                self.messages += [{"role": "user", "content": text}, {"role": "assistant", "content": res.text}]
            yield ev

    def send(
        self, text: str, *, options: GenerationOptions | dict[str, Any] | None = None, **overrides: Any
    ) -> TextResult:
        """Send ``text`` as the user and return the answer."""
        return drain(self.stream(text, options=options, **overrides))[0]
