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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llada_sdk.errors import TokenizerError

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


class Tokenizer:
    """A ``tokenizers.Tokenizer`` plus the special-token and chat-template facts of tokenizer_config.json."""

    def __init__(self, backend: Any, config: dict[str, Any]) -> None:
        self._tok = backend
        self.config = config
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
        """Load ``tokenizer.json`` (+ optional ``tokenizer_config.json``) from a directory."""
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
        return cls(backend, config)

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def token_to_id(self, token: str) -> int | None:
        out = self._tok.token_to_id(token)
        return None if out is None else int(out)

    # -- encoding -------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Encode user text; special-token strings in it stay plain text. No BOS/EOS is added."""
        if not text:
            return []
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

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids

    # -- chat -----------------------------------------------------------------------------------

    def apply_chat_template(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> list[int]:
        """Render ``messages`` with the chat template and encode the result without added specials.

        Special-token strings inside message contents are swapped for private sentinels before
        rendering and encoded as plain text afterwards, so a user cannot forge a turn boundary.
        """
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
        for hit in _SENTINEL.finditer(rendered):
            ids += self._encode_trusted(rendered[pos : hit.start()])
            ids += self.encode(table[int(hit.group(1))])
            pos = hit.end()
        ids += self._encode_trusted(rendered[pos:])
        return ids


def _render(template: str, **context: Any) -> str:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(**context)
    except TemplateError as exc:
        raise TokenizerError(f"chat template failed to render: {exc}") from exc
