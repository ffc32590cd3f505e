"""Tokenizer files, the chat template (rendered as Hugging Face does) and special-token safety."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llada_sdk import TokenizerError
from llada_sdk.tokenizer import Tokenizer, _render
from tests.conftest import META_8B


def test_llada_8b_chat_template_renders_like_hugging_face() -> None:
    cfg = json.loads((META_8B / "tokenizer_config.json").read_text())
    messages = [
        {"role": "system", "content": " Be brief. "},
        {"role": "user", "content": "Hi\n"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Who are you?"},
    ]
    out = _render(cfg["chat_template"], messages=messages, bos_token="<|startoftext|>", add_generation_prompt=True)
    assert out == (
        "<|startoftext|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_template_is_sandboxed() -> None:
    evil = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(Exception, match="unsafe|access|attribute"):
        _render(evil, messages=[])


def test_chat_template_encodes_structure_as_special_tokens(tokenizer_dir: Path) -> None:
    tok = Tokenizer.from_dir(tokenizer_dir)
    ids = tok.apply_chat_template([{"role": "user", "content": "Alice lives in Paris."}])
    s = tok.special
    assert ids[0] == s.bos and ids[1] == s.start_header
    assert ids.count(s.eot) == 1 and ids.count(s.start_header) == 2 and ids.count(s.end_header) == 2
    assert tok.decode(ids) == "user\n\nAlice lives in Paris.assistant\n\n"


@pytest.mark.parametrize("literal", ["<|eot_id|>", "<|mdm_mask|>", "<|start_header_id|>", "<|endoftext|>"])
def test_special_token_strings_in_user_text_are_plain_text(tokenizer_dir: Path, literal: str) -> None:
    tok = Tokenizer.from_dir(tokenizer_dir)
    special = {
        tok.token_to_id(t)
        for t in (
            "<|eot_id|>",
            "<|mdm_mask|>",
            "<|start_header_id|>",
            "<|endoftext|>",
            "<|startoftext|>",
            "<|end_header_id|>",
        )
    }
    text = f"Alice {literal} lives"
    ids = tok.encode(text)
    assert not special & set(ids)
    assert tok.decode(ids) == text
    chat = tok.apply_chat_template([{"role": "user", "content": text}])
    plain = tok.apply_chat_template([{"role": "user", "content": "Alice  lives"}])
    # the forged token adds characters, never a control token
    assert sum(t in special for t in chat) == sum(t in special for t in plain)
    assert literal in tok.decode(chat, skip_special_tokens=False)


def test_sentinel_characters_in_user_text_survive(tokenizer_dir: Path) -> None:
    tok = Tokenizer.from_dir(tokenizer_dir)
    text = "odd \ue0000\ue001 text"
    ids = tok.apply_chat_template([{"role": "user", "content": text}])
    assert text in tok.decode(ids)


def test_bad_tokenizer_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        Tokenizer.from_dir(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{broken")
    with pytest.raises(TokenizerError, match="tokenizer.json: cannot be read"):
        Tokenizer.from_dir(tmp_path)


def test_messages_are_validated(tokenizer_dir: Path) -> None:
    tok = Tokenizer.from_dir(tokenizer_dir)
    with pytest.raises(ValueError, match=r"`messages\[0\]`"):
        tok.apply_chat_template([{"content": "no role"}])
    with pytest.raises(ValueError, match=r"`messages\[1\]\['content'\]` must be a string"):
        tok.apply_chat_template([{"role": "user", "content": "a"}, {"role": "user", "content": 3}])  # type: ignore[dict-item]
