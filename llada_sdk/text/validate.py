"""Checks of what users pass to the text API: types, roles, id shapes. Errors name the parameter,
what is accepted and what was given."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: tokenizer.py imports this module
    from llada_sdk.tokenizer import Message

# a UTF-16 surrogate code point: never valid in text; what undecodable bytes become under
# errors="surrogateescape" (argv, os.fsdecode), and what tokenizers refuses with a bare TypeError
_SURROGATE = re.compile(r"[\ud800-\udfff]")

ROLES = ("system", "user", "assistant", "tool")
"""Message roles the text API accepts."""


def check_unicode(value: str, name: str) -> str:
    """``value`` unless it holds a lone surrogate (text decoded with ``errors="surrogateescape"``
    from bytes that are not UTF-8); ValueError naming ``name``, the character and its index."""
    bad = _SURROGATE.search(value)
    if bad is not None:
        raise ValueError(
            f"{name} is not valid Unicode text: lone surrogate {bad.group()!r} at index {bad.start()} "
            "(decode bytes with errors='replace' first)"
        )
    return value


def check_text(value: Any, name: str, *, allow_empty: bool = True) -> str:
    """``value`` if it is a string of valid Unicode; TypeError naming ``name`` otherwise (bytes: decode
    them first), ValueError for a lone surrogate."""
    if isinstance(value, (bytes, bytearray)):
        raise TypeError(f"`{name}` must be text (str), got bytes: decode it first, e.g. value.decode('utf-8')")
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be a string, got {type(value).__name__}: {value!r:.80}")
    check_unicode(value, f"`{name}`")
    if not allow_empty and not value.strip():
        raise ValueError(f"`{name}` must not be empty")
    return value


def check_messages(messages: Any, name: str = "messages") -> list[Message]:
    """A list of ``{"role", "content"}`` dicts (roles: system, user, assistant, tool)."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(
            f"`{name}` must be a list of {{'role': ..., 'content': ...}} dicts, got {type(messages).__name__}: {messages!r:.80}"
        )
    out: list[Message] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise TypeError(
                f"`{name}[{i}]` must be a dict with 'role' and 'content', got {type(m).__name__}: {m!r:.80}"
            )
        if m.get("role") not in ROLES:
            raise ValueError(f"`{name}[{i}]['role']` must be one of {', '.join(ROLES)}, got {m.get('role')!r}")
        if not isinstance(m.get("content"), str):
            raise TypeError(f"`{name}[{i}]['content']` must be a string, got {type(m.get('content')).__name__}")
        check_unicode(m["content"], f"`{name}[{i}]['content']`")
        out.append(m)
    return out


def as_id_rows(value: Any, name: str) -> Any:
    """Token ids ``[B, L]`` as given (nested lists or an array), refusing text and ragged rows."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"`{name}` must be token ids [batch, length] (e.g. [[0, 38, 271]]), got text {value!r:.60}")
    if hasattr(value, "shape"):
        return value
    if (
        not isinstance(value, Sequence)
        or not value
        or not all(isinstance(r, Sequence) and not isinstance(r, str) for r in value)
    ):
        raise TypeError(f"`{name}` must be token ids [batch, length] (a list of lists of ints), got {value!r:.60}")
    if len({len(r) for r in value}) != 1:
        raise ValueError(f"`{name}` rows must all have the same length (left-pad and pass an attention_mask)")
    return value


def is_batch(messages: Any) -> bool:
    return isinstance(messages, Sequence) and bool(messages) and isinstance(messages[0], (list, tuple))


def as_batch(messages: Any) -> list[list[Message]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(
            f"`messages` must be a list of {{'role': ..., 'content': ...}} dicts (or a list of such lists), got {type(messages).__name__}: {messages!r:.80}"
        )
    if not messages:
        raise ValueError("`messages` must not be empty")
    return [list(c) for c in messages] if is_batch(messages) else [list(messages)]


def positive_length(value: Any, name: str, upper: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= upper:
        raise ValueError(f"`{name}` must be 'auto' or an integer in [1, {upper}], got {value!r}")
    return value
