"""Training rows: what a run draws its batches from.

A run needs a ``TrainingData``: the texts its tokenizer is trained on (unless it starts from a model's
weights and tokenizer) and a ``RowSource`` that draws batches. ``JsonlData`` is the one ``llada train
--data FILE`` uses: a JSON-lines file of documents (``{"text": ...}``, packed into pre-training rows)
and chats (``{"messages": [...]}``, whose last message is the assistant's answer: an SFT row that never
masks the prompt). The bundled model's synthetic corpus is another (``recipes/bundled_model``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from llada_sdk.errors import LLaDAError


@dataclass
class Batch:
    ids: torch.Tensor  # [B, T]
    prompt_len: torch.Tensor  # [B]; 0 for pre-training rows
    is_sft: torch.Tensor  # [B] bool


class RowSource(Protocol):
    """Draws batches; ``rng`` is its only state (saved with a checkpoint, so a run resumes exactly)."""

    rng: random.Random

    def batch(self, size: int) -> Batch: ...


class TrainingData(Protocol):
    """What a run trains on."""

    tool_tokens: bool
    """Whether the tokenizer gets the two tool-call tokens."""

    def tokenizer_texts(self) -> list[str]:
        """The texts a fresh tokenizer is trained on."""
        ...

    def rows(self, tok: Any, seq_len: int, sft_fraction: float, seed: int) -> RowSource:
        """The row source of a run, on the run's tokenizer (a ``tokenizers.Tokenizer``)."""
        ...


def chat_text(messages: list[dict[str, str]]) -> str:
    """``messages`` as the LLaDA chat template renders them, up to the assistant header (what
    ``apply_chat_template(add_generation_prompt=True)`` writes; one piece, so it encodes the same)."""
    text = "".join(
        f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>" for m in messages
    )
    return f"<|startoftext|>{text}<|start_header_id|>assistant<|end_header_id|>\n\n"


class TrainingDataError(LLaDAError, ValueError):
    """A training-data file that cannot be used (names the line)."""


def _chat_row(line: int, obj: dict[str, Any]) -> list[dict[str, str]]:
    messages = obj["messages"]
    ok = isinstance(messages, list) and len(messages) >= 2
    ok = ok and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
    )
    if not ok or messages[-1]["role"] != "assistant":
        raise TrainingDataError(
            f"line {line}: `messages` must be a list of at least two {{'role', 'content'}} strings whose last "
            f"role is 'assistant' (the answer trained on); got {json.dumps(messages)[:200]}"
        )
    return [{"role": m["role"], "content": m["content"]} for m in messages]


class JsonlData:
    """Documents and chats from a JSON-lines file, one object per line: ``{"text": "..."}`` or
    ``{"messages": [{"role": ..., "content": ...}, ..., {"role": "assistant", "content": answer}]}``."""

    tool_tokens = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.docs: list[str] = []
        self.chats: list[list[dict[str, str]]] = []
        try:
            lines = self.path.open(encoding="utf-8")
        except OSError as exc:
            raise TrainingDataError(f"`data`: cannot read {self.path}: {exc.strerror or exc}") from exc
        with lines:
            for n, raw in enumerate(lines, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise TrainingDataError(f"`data` {self.path}, line {n}: not JSON ({exc.msg})") from exc
                if isinstance(obj, dict) and isinstance(obj.get("text"), str) and obj["text"].strip():
                    self.docs.append(obj["text"])
                elif isinstance(obj, dict) and "messages" in obj:
                    self.chats.append(_chat_row(n, obj))
                else:
                    raise TrainingDataError(
                        f'`data` {self.path}, line {n}: expected {{"text": non-empty string}} or '
                        f'{{"messages": [...]}}, got {raw.strip()[:200]}'
                    )
        if not self.docs and not self.chats:
            raise TrainingDataError(f"`data`: {self.path} holds no documents or chats")

    def tokenizer_texts(self) -> list[str]:
        return self.docs + [m["content"] for chat in self.chats for m in chat] + ["user", "assistant", "system"]

    def rows(self, tok: Any, seq_len: int, sft_fraction: float, seed: int) -> JsonlRows:
        return JsonlRows(self, tok, seq_len, sft_fraction, seed)


class JsonlRows:
    """Rows of ``seq_len`` tokens: packed ``BOS doc EOS`` documents, or (with probability
    ``sft_fraction`` when there are chats; always when there are no documents) one chat, padded with EOS."""

    def __init__(self, data: JsonlData, tok: Any, seq_len: int, sft_fraction: float, seed: int) -> None:
        self.rng, self.seq_len = random.Random(seed), seq_len
        self.bos, self.eos = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
        eot = tok.token_to_id("<|eot_id|>")

        def enc(text: str) -> list[int]:
            return list(tok.encode(text, add_special_tokens=False).ids)

        self.docs = [[self.bos, *enc(d), self.eos] for d in data.docs]
        self.chats = [(enc(chat_text(c[:-1])), [*enc(c[-1]["content"]), eot]) for c in data.chats]
        for i, (prompt, answer) in enumerate(self.chats):
            if len(prompt) + len(answer) > seq_len:
                raise TrainingDataError(
                    f"`seq_len` ({seq_len}) is too short: chat {i + 1} of {data.path} needs {len(prompt) + len(answer)} tokens"
                )
        longest = max((len(d) for d in self.docs), default=0)
        if longest > seq_len:
            raise TrainingDataError(
                f"`seq_len` ({seq_len}) is too short: a document of {data.path} needs {longest} tokens"
            )
        self.sft_fraction = sft_fraction if self.docs and self.chats else float(bool(self.chats))

    def _row(self) -> tuple[list[int], int]:
        if self.rng.random() < self.sft_fraction:
            prompt, answer = self.rng.choice(self.chats)
            return [*prompt, *answer] + [self.eos] * (self.seq_len - len(prompt) - len(answer)), len(prompt)
        ids: list[int] = []
        while True:
            doc = self.rng.choice(self.docs)
            if len(ids) + len(doc) > self.seq_len:
                break
            ids += doc
        return ids + [self.eos] * (self.seq_len - len(ids)), 0

    def batch(self, size: int) -> Batch:
        rows = [self._row() for _ in range(size)]
        return Batch(
            torch.tensor([r for r, _ in rows]),
            torch.tensor([p for _, p in rows]),
            torch.tensor([p > 0 for _, p in rows]),
        )
