"""Tokenizer files in the Hugging Face format and the chat template, without transformers.

``tokenizer.json`` is loaded with ``tokenizers``; ``tokenizer_config.json`` gives the special tokens and
the ``chat_template``, rendered in a sandboxed jinja2 environment the way Hugging Face renders it.

Text a user typed is always plain text: a string such as ``<|eot_id|>`` or ``<|mdm_mask|>`` inside a
prompt or a chat message is encoded as its characters, never as the control token. Only the chat
template itself may emit special tokens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from llada_sdk.chat_template import _render
from llada_sdk.errors import TokenizerError
from llada_sdk.text.validate import check_unicode

Message = dict[str, str]
_SENTINEL = re.compile("\ue000(\\d+)\ue001")


def _token_content(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


@dataclass
class SpecialTokens:
    """Ids of the tokens the runtime needs; ``None`` where the tokenizer does not define one."""

    bos: int | None
    eos: int | None
    mask: int | None
    eot: int | None
    start_header: int | None
    end_header: int | None


PROBE_CHARS_PER_TOKEN = 8
"""A text longer than ``8 x limit`` characters is measured on prefixes first (``8 x limit`` characters,
then twice as many...): a prefix already over the limit proves the text cannot fit, and the rest is
never tokenized. Any text that fits is tokenized whole, exactly."""

_PROBE_MARGIN = 16  # tokens a cut through a word may add to a prefix's count
_UNSET: Any = object()


class Overflow(NamedTuple):
    """A text proved longer than a token limit: its first ``chars`` characters make ``tokens`` tokens;
    ``partial``: the rest was not tokenized."""

    chars: int
    tokens: int
    partial: bool = False


def _cut(text: str, size: int) -> int:
    """``size``, moved back to just before a whitespace when one is near (pre-tokenizers split there)."""
    for i in range(size, max(size - 64, 0), -1):
        if text[i].isspace():
            return i
    return size


class Tokenizer:
    """A ``tokenizers.Tokenizer`` plus the special-token and chat-template facts of tokenizer_config.json.

    ``context_window``: the longest token sequence of the model these files belong to (None: unknown);
    ``encode`` and ``apply_chat_template`` refuse text over it without tokenizing all of it. ``from_dir``
    reads it from ``max_sequence_length`` in the folder's config.json; loaders may set it.
    """

    def __init__(self, backend: Any, config: dict[str, Any], context_window: int | None = None) -> None:
        self._tok = backend
        self.config = config
        self.context_window = context_window
        self._frame: Any = _UNSET
        self.chat_template: str | None = config.get("chat_template")
        if isinstance(self.chat_template, list):  # several named templates: take "default"
            named = {t.get("name"): t.get("template") for t in self.chat_template}
            self.chat_template = named.get("default")
        self._special_strings = sorted(
            {t.content for t in backend.get_added_tokens_decoder().values() if t.special},
            key=len,
            reverse=True,
        )
        # special-token strings (and the sentinel characters themselves) inside user text
        self._protected = re.compile("|".join(re.escape(t) for t in [*self._special_strings, "\ue000", "\ue001"]))
        self.bos_token = _token_content(config.get("bos_token"))
        self.eos_token = _token_content(config.get("eos_token"))
        self.special = SpecialTokens(
            bos=self.token_to_id(self.bos_token or "<|startoftext|>"),
            eos=self.token_to_id(self.eos_token or "<|endoftext|>"),
            mask=self.token_to_id("<|mdm_mask|>"),
            eot=self.token_to_id("<|eot_id|>"),
            start_header=self.token_to_id("<|start_header_id|>"),
            end_header=self.token_to_id("<|end_header_id|>"),
        )
        self._special_ids = {i for i, t in backend.get_added_tokens_decoder().items() if t.special}

    @classmethod
    def from_dir(cls, path: str | Path) -> Tokenizer:
        """Load ``tokenizer.json`` (+ optional ``tokenizer_config.json``) from a directory; the context
        window comes from ``max_sequence_length`` in its config.json, when there is one."""
        from tokenizers import Tokenizer as HFTokenizer

        path = Path(path)
        tok_file = path / "tokenizer.json"
        if not tok_file.is_file():
            raise TokenizerError(f"no tokenizer.json in {path}")
        try:
            backend = HFTokenizer.from_file(str(tok_file))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise TokenizerError(f"{tok_file}: cannot be read as a tokenizers file ({exc})") from exc
        config: dict[str, Any] = {}
        cfg_file = path / "tokenizer_config.json"
        if cfg_file.is_file():
            try:
                config = json.loads(cfg_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise TokenizerError(f"{cfg_file}: not valid JSON ({exc})") from exc
        return cls(backend, config, _window_of(path / "config.json"))

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def token_to_id(self, token: str) -> int | None:
        out = self._tok.token_to_id(token)
        return None if out is None else int(out)

    # -- encoding -------------------------------------------------------------------------------

    def encode(self, text: str, *, bounded: bool = True) -> list[int]:
        """Encode user text; special-token strings in it stay plain text. No BOS/EOS is added.

        ``bounded`` (default): a text of more tokens than ``context_window`` is refused (ValueError),
        a long one before it is tokenized whole (``PROBE_CHARS_PER_TOKEN``); ``False`` encodes any length.
        """
        check_unicode(text, "the text to encode")
        if not text:
            return []
        out = self._measure(text, self.context_window if bounded else None, self._encode_plain)
        if isinstance(out, Overflow):
            raise ValueError(f"a text of {len(text):,} characters {self._over(out)}")
        return out

    def _encode_plain(self, text: str) -> list[int]:
        self._tok.encode_special_tokens = True
        try:
            return list(self._tok.encode(text, add_special_tokens=False).ids)
        finally:
            self._tok.encode_special_tokens = False

    def _encode_trusted(self, text: str) -> list[int]:
        """Encode template output: special-token strings become control tokens."""
        if not text:
            return []
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    @staticmethod
    def _measure(text: str, limit: int | None, encode: Callable[[str], list[int]]) -> list[int] | Overflow:
        """``encode(text)``, or an ``Overflow`` once the text is proved to have more than ``limit``
        tokens: a long text is measured on prefixes of growing length and never tokenized whole when
        one of them is already over."""
        if limit is None:
            return encode(text)
        size = max(limit, 1) * PROBE_CHARS_PER_TOKEN
        while size < len(text):
            cut = _cut(text, size)
            n = len(encode(text[:cut]))
            if n > limit + _PROBE_MARGIN:
                return Overflow(cut, n, partial=True)
            size *= 2
        ids = encode(text)
        return Overflow(len(text), len(ids)) if len(ids) > limit else ids

    def _over(self, out: Overflow, what: str = "characters") -> str:
        """Why a text does not fit: its length and the window."""
        how = (
            f"its first {out.chars:,} {what} are already {out.tokens:,} tokens (the rest was not tokenized)"
            if out.partial
            else f"it is {out.tokens:,} tokens"
        )
        return (
            f"does not fit this model's context window of {self.context_window} tokens "
            f"(`max_sequence_length` in config.json): {how}"
        )

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids

    # -- chat -----------------------------------------------------------------------------------

    def apply_chat_template(
        self, messages: Sequence[Message], add_generation_prompt: bool = True, *, bounded: bool = True
    ) -> list[int]:
        """Render ``messages`` with the chat template and encode the result without added specials.

        Special-token strings inside message contents are swapped for private sentinels before
        rendering and encoded as plain text afterwards, so a user cannot forge a turn boundary.
        ``bounded``: as in ``encode``, a conversation over ``context_window`` is refused (ValueError).
        """
        out = self.chat_ids(messages, add_generation_prompt, self.context_window if bounded else None)
        if isinstance(out, Overflow):
            raise ValueError(f"`messages`: the conversation {self._over(out, 'rendered characters')}")
        return out

    def chat_ids(
        self, messages: Sequence[Message], add_generation_prompt: bool = True, limit: int | None = None
    ) -> list[int] | Overflow:
        """The ids of ``apply_chat_template``, or an ``Overflow`` as soon as they are proved to be more
        than ``limit`` (the rest of the rendered text is not tokenized)."""
        if not self.chat_template:
            raise TokenizerError("this tokenizer has no `chat_template` in tokenizer_config.json")
        table: list[str] = []

        def protect(text: str) -> str:
            def repl(m: re.Match[str]) -> str:
                table.append(m.group(0))
                return f"\ue000{len(table) - 1}\ue001"

            return self._protected.sub(repl, text)

        safe = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise ValueError(f"`messages[{i}]` must be a dict with 'role' and 'content', got {m!r}")
            if not isinstance(m["content"], str):
                raise ValueError(f"`messages[{i}]['content']` must be a string, got {type(m['content']).__name__}")
            check_unicode(m["content"], f"`messages[{i}]['content']`")
            safe.append({"role": protect(str(m["role"])), "content": protect(m["content"])})
        rendered = _render(
            self.chat_template,
            messages=safe,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
        )
        ids: list[int] = []
        pos = 0
        pieces: list[tuple[int, str, Callable[[str], list[int]]]] = []
        for hit in _SENTINEL.finditer(rendered):
            pieces += [(pos, rendered[pos : hit.start()], self._encode_trusted)]
            pieces += [(hit.start(), table[int(hit.group(1))], self._encode_plain)]
            pos = hit.end()
        pieces.append((pos, rendered[pos:], self._encode_trusted))
        for start, text, encode in pieces:
            if not text:
                continue
            out = self._measure(text, None if limit is None else max(limit - len(ids), 0), encode)
            if isinstance(out, Overflow):
                return Overflow(
                    start + out.chars, len(ids) + out.tokens, out.partial or start + out.chars < len(rendered)
                )
            ids += out
        return ids

    def chat_frame(self) -> tuple[list[int], list[int]] | None:
        """``(lead, tail)`` when the chat template renders a conversation as ``lead``, then one piece per
        message that does not depend on the other messages, then ``tail`` -- as LLaDA's template does
        (lead: BOS; tail: the assistant header). A message's piece is then its own rendering without
        lead and tail. None when the template does not (or cannot tell): checked once, on probe
        conversations rendered with the generation prompt."""
        if self._frame is _UNSET:
            self._frame = self._find_frame()
        frame: tuple[list[int], list[int]] | None = self._frame
        return frame

    def _find_frame(self) -> tuple[list[int], list[int]] | None:
        x, y = {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}
        try:
            rx, ry, rxy, rxyx = (self.apply_chat_template(c, bounded=False) for c in ([x], [y], [x, y], [x, y, x]))
        except (TokenizerError, ValueError):  # e.g. a template that refuses a conversation opening with "assistant"
            return None
        nx, ny = len(rxyx) - len(rxy), len(rxy) - len(rx)
        if nx <= 0 or ny <= 0:
            return None
        for start in range(len(rx) - nx + 1):  # the shortest lead that explains all four renderings
            lead, bx, tail = rx[:start], rx[start : start + nx], rx[start + nx :]
            by = rxy[start + nx : start + nx + ny]
            if rxy == lead + bx + by + tail and rxyx == lead + bx + by + bx + tail and ry == lead + by + tail:
                return lead, tail
        return None


def _window_of(config_json: Path) -> int | None:
    """``max_sequence_length`` of a model's config.json; None when absent or unreadable (loading reports that)."""
    try:
        value = json.loads(config_json.read_text(encoding="utf-8")).get("max_sequence_length")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
