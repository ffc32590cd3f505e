"""``ChatSession``: a multi-turn conversation kept as token ids, on the public ``LLaDA`` API."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from llada_sdk.canvas import next_turn_ids
from llada_sdk.options import GenerationOptions
from llada_sdk.results import Event, ResultEvent, TextResult
from llada_sdk.runner import drain
from llada_sdk.tokenizer import Message
from llada_sdk.validate import check_messages, check_text

if TYPE_CHECKING:
    from llada_sdk.api import LLaDA


class ChatSession:
    """A multi-turn conversation. The history is kept as token ids: each turn appends the new user
    message (through the chat template) to the previous prompt and answer, as the official chat.py
    does, with the answer cut at its first EOS/EOT (correct for any batch size)."""

    def __init__(
        self,
        llm: LLaDA,
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
        if system is not None and not isinstance(system, str):
            raise TypeError(f"`system` must be a string or None, got {type(system).__name__}: {system!r}")
        self.messages = [dict(m) for m in check_messages(messages)] if messages else []
        self.dropped = []
        if system is not None:
            self.messages = [m for m in self.messages if m.get("role") != "system"]
            self.messages.insert(0, {"role": "system", "content": system})
        self._ids = None

    def prompt_ids(self, text: str) -> list[int]:
        """The canvas prompt of the next turn if the user says ``text``."""
        tok = self.llm.require_tokenizer()
        user = {"role": "user", "content": text}
        if self._ids is None:
            return tok.apply_chat_template([*self.messages, user])
        return self._ids + tok.apply_chat_template([user])[1:]

    def _fit(self, text: str, max_tokens: int) -> list[int]:
        """The next prompt, dropping the oldest user/assistant messages (the system prompt stays)
        while prompt + ``max_tokens`` would not fit the model's window (``config.context_window``: the
        trained window of the model card, else ``max_sequence_length``); they go to ``dropped``."""
        limit = self.llm.config.context_window
        prompt = self.prompt_ids(text)
        while len(prompt) + max_tokens > limit:
            oldest = next((i for i, m in enumerate(self.messages) if m.get("role") != "system"), None)
            if oldest is None:
                raise ValueError(
                    f"`text`: the message ({len(prompt)} tokens with the template) plus `max_tokens` ({max_tokens}) "
                    f"does not fit this model's context window of {limit} tokens even without history"
                )
            self.dropped.append(self.messages.pop(oldest))
            if oldest < len(self.messages) and self.messages[oldest].get("role") == "assistant":
                self.dropped.append(self.messages.pop(oldest))
            self._ids = None  # rebuilt from the remaining messages through the template
            prompt = self.prompt_ids(text)
        return prompt

    def stream(
        self, text: str, *, options: GenerationOptions | dict[str, Any] | None = None, **overrides: Any
    ) -> Iterator[Event]:
        """Send ``text`` as the user; yields the events of ``LLaDA.stream_chat`` and records the answer
        when the stream finishes (an abandoned stream leaves the history unchanged).

        When the history no longer fits the model's context window with ``max_tokens`` to write, the
        oldest turns are dropped (kept in ``dropped``); the system prompt always stays."""
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
