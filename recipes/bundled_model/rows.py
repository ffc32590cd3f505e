"""The bundled model's training rows: packed pre-training documents and SFT chat/tool rows drawn from
the synthetic corpus (``corpus``), as batches."""

from __future__ import annotations

import random
from typing import Any

import torch

from llada_sdk.training.data import Batch, chat_text
from recipes.bundled_model.corpus import (
    EXTRACTION_TEMPLATES,
    N_SYNTHETIC,
    Corpus,
    Person,
    extraction_doc,
    extraction_json,
    extraction_sentence,
    synthetic_people,
    tool_conversations,
    tool_direct_conversations,
)
from recipes.bundled_model.tool_menus import varied_direct_row, varied_tool_row

SFT_TAIL = 40  # EOS positions kept after the longest answer of an SFT batch (chat canvases hold 32 masks)
LONG_NAME_TOKENS = 5  # a "long" name (``long_names``): about one drawn name in five is this long or longer


class RowSampler:
    """Draws training rows: packed ``BOS doc EOS`` pre-training rows and SFT chat rows.

    Pre-training documents come from four groups (knowledge base, counting, cycles, extraction),
    drawn with fixed weights; ``extract_fraction`` is the extraction group's share. SFT rows are a
    chat turn (a third of the time after a first turn as context) or, with probability
    ``tool_fraction``, a tool-use conversation (``Corpus.conversations``, rendered exactly as the
    chat template renders it).
    """

    def __init__(
        self,
        corpus: Corpus,
        tok: Any,
        seq_len: int,
        sft_fraction: float,
        seed: int,
        tool_fraction: float = 0.0,
        extract_fraction: float = 0.0,
        pretrain_len: int | None = None,
        fresh_people: bool = False,
        kinds: bool = False,
        extract_sft: float = 0.0,
        varied_tools: float = 0.0,
        long_names: float = 0.0,
    ) -> None:
        self.seq_len, self.sft_fraction, self.tool_fraction = seq_len, sft_fraction, tool_fraction
        self.pretrain_len = pretrain_len or seq_len
        # fresh_people: every tool-use and extraction row is about a newly drawn person, so nothing can
        # be memorised and only copying (the name into the call, the fact out of the result) lowers the loss
        self.fresh_people, self.kinds = fresh_people, kinds
        # extract_sft: share of the tool-kind SFT rows that are extraction rows -- prompt = BOS, the
        # sentence and a newline; answer = the JSON (what ``fill_schema`` asks for) and EOS
        self.extract_sft = extract_sft
        # varied_tools: share of the fresh-people tool rows whose menu is drawn (``tool_menus``): a
        # person tool under a drawn name, argument and description, beside zero to two other tools
        self.varied_tools = varied_tools
        # long_names: share of the fresh people whose name is at least LONG_NAME_TOKENS tokens -- the
        # names a model copies wrong first (cut short, a syllable repeated)
        self.long_names = long_names
        self.taken = {n for p in corpus.people for n in (p.name, p.parent)}
        if fresh_people:  # never draw a person of the `extract_person` evaluation (the generator's next 40)
            self.taken |= {p.name for p in synthetic_people(seed, N_SYNTHETIC + 100, exclude=set(self.taken))}
        self.synthetic = corpus.synthetic
        self._tok = tok
        self.eot_id = tok.token_to_id("<|eot_id|>")
        self.rng = random.Random(seed)
        self.bos, self.eos = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
        sh, eh, eot = (tok.token_to_id(t) for t in ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"))

        def enc(text: str) -> list[int]:
            return list(tok.encode(text, add_special_tokens=False).ids)

        nl = enc("\n\n")
        groups: dict[str, list[list[int]]] = {"kb": [], "count": [], "cycle": []}
        for doc in corpus.docs:
            key = "count" if doc.startswith("count:") else "cycle" if ":" in doc.split()[0] else "kb"
            groups[key].append([self.bos, *enc(doc), self.eos])
        rest = 1.0 - (extract_fraction if corpus.extraction else 0.0)
        self.groups = [(groups["kb"], 0.5 * rest), (groups["count"], 0.3 * rest), (groups["cycle"], 0.2 * rest)]
        self.extraction_group = len(self.groups) if corpus.extraction and extract_fraction > 0 else -1
        if corpus.extraction and extract_fraction > 0:
            self.groups.append(([[self.bos, *enc(d), self.eos] for d in corpus.extraction], extract_fraction))
        self.turns: list[tuple[list[int], list[int]]] = []
        for q, a in corpus.chat:
            # one turn in the LLaDA chat template: prompt = user header + question + assistant header
            prompt = [sh, *enc("user"), eh, *nl, *enc(q), eot, sh, *enc("assistant"), eh, *nl]
            self.turns.append((prompt, [*enc(a), eot]))
        longest = 1 + 2 * max(len(p) + len(a) for p, a in self.turns)  # BOS + two turns
        if longest > seq_len:
            raise ValueError(f"`seq_len` ({seq_len}) is too short: a two-turn chat row needs {longest} tokens")
        longest_doc = max(len(d) for docs, _ in self.groups for d in docs)
        if longest_doc > self.pretrain_len:
            raise ValueError(
                f"`pretrain_len` ({self.pretrain_len}) is too short: a pre-training document needs {longest_doc} tokens"
            )
        # tool-use conversations: the chat template's text, encoded in one piece (as apply_chat_template does)
        self.conversations: list[tuple[list[int], list[int]]] = []
        if tool_fraction > 0:
            for messages, answer in corpus.conversations:
                self.conversations.append(self._encode_conversation(messages, answer))
            self.direct = [self._encode_conversation(m, a) for m, a in tool_direct_conversations()]
            longest = max(len(p) + len(a) for p, a in self.conversations)
            if longest > seq_len:
                raise ValueError(f"`seq_len` ({seq_len}) is too short: a tool-use chat row needs {longest} tokens")

    def enc_text(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def _encode_conversation(self, messages: list[dict[str, str]], answer: str) -> tuple[list[int], list[int]]:
        """A conversation as the chat template renders it (one piece, as apply_chat_template encodes it)."""
        return self.enc_text(chat_text(messages)), [*self.enc_text(answer), self.eot_id]

    def _fresh_person(self) -> Person:
        # no draw at long_names == 0: the earlier phases' rows stay bit for bit
        long = self.long_names > 0 and self.rng.random() < self.long_names
        while True:
            p = synthetic_people(self.rng.randrange(2**31), 1, exclude=self.taken)[0]
            if p.name not in self.taken and (not long or len(self.enc_text(p.name)) >= LONG_NAME_TOKENS):
                return p

    def _doc(self) -> list[int]:
        r, acc = self.rng.random(), 0.0
        for k, (docs, weight) in enumerate(self.groups):
            acc += weight
            if r < acc:
                if self.fresh_people and k == self.extraction_group:
                    template = self.rng.randrange(len(EXTRACTION_TEMPLATES))
                    return [self.bos, *self.enc_text(extraction_doc(self._fresh_person(), template)), self.eos]
                return self.rng.choice(docs)
        return self.rng.choice(self.groups[-1][0])

    def _extraction_row(self) -> tuple[list[int], int]:
        p = self._fresh_person() if self.fresh_people else self.rng.choice(self.synthetic)
        sentence = extraction_sentence(p, self.rng.randrange(len(EXTRACTION_TEMPLATES)))
        prompt = [self.bos, *self.enc_text(sentence + "\n")]
        return prompt + self.enc_text(extraction_json(p)) + [self.eos], len(prompt)

    def _sft_row(self, tool: bool) -> tuple[list[int], int]:
        if tool and self.extract_sft > 0 and self.rng.random() < self.extract_sft:
            return self._extraction_row()
        if tool and self.fresh_people:
            share = len(self.direct) / (len(self.direct) + len(self.conversations))
            while True:
                if self.varied_tools and self.rng.random() < self.varied_tools:
                    if self.rng.random() < share:
                        prompt, answer = self._encode_conversation(*varied_direct_row(self.rng))
                    else:
                        prompt, answer = self._encode_conversation(*varied_tool_row(self.rng, self._fresh_person()))
                elif self.rng.random() < share:
                    prompt, answer = self.rng.choice(self.direct)
                else:
                    prompt, answer = self._encode_conversation(
                        *self.rng.choice(tool_conversations(self._fresh_person()))
                    )
                if len(prompt) + len(answer) <= self.seq_len:
                    break
        elif tool:
            prompt, answer = self.rng.choice(self.conversations)
        else:
            # one turn, or (a third of the time) a two-turn history whose first answer is context
            prompt, answer = self.rng.choice(self.turns)
            prompt = [self.bos, *prompt]
            if self.rng.random() < 1 / 3:
                first_q, first_a = self.rng.choice(self.turns)
                prompt = [self.bos, *first_q, *first_a, *prompt[1:]]
        return prompt + answer, len(prompt)

    def _pretrain_row(self, length: int) -> list[int]:
        ids: list[int] = []
        while True:
            doc = self._doc()
            if len(ids) + len(doc) > length:
                break
            ids += doc
        return ids + [self.eos] * (length - len(ids))

    def row(self) -> tuple[list[int], int, bool]:
        """One row, pre-training or (with probability ``sft_fraction``) a chat turn, ``seq_len`` long:
        the rows of the shipped model's recipe (``kinds=False``)."""
        if self.rng.random() < self.sft_fraction:
            row, prompt_len = self._sft_row(False)
            return row + [self.eos] * (self.seq_len - len(row)), prompt_len, True
        return self._pretrain_row(self.seq_len), 0, False

    def batch(self, size: int) -> Batch:
        """A batch. ``kinds=False`` (the shipped recipe): ``size`` rows drawn one by one (``row``).

        ``kinds=True`` (the tool recipe): one batch of a single kind: pre-training rows of ``pretrain_len`` tokens (probability
        ``1 - sft_fraction``), or SFT rows -- tool-use conversations (``tool_fraction`` of SFT
        batches) or chat turns -- padded with EOS to the longest row plus ``SFT_TAIL`` (at most
        ``seq_len``), so the model sees at least ``SFT_TAIL`` positions after every answer."""
        if not self.kinds:
            rows = [self.row() for _ in range(size)]
            return Batch(
                torch.tensor([r[0] for r in rows]),
                torch.tensor([r[1] for r in rows]),
                torch.tensor([r[2] for r in rows]),
            )
        if self.rng.random() >= self.sft_fraction:
            pre = [self._pretrain_row(self.pretrain_len) for _ in range(size)]
            return Batch(torch.tensor(pre), torch.zeros(size, dtype=torch.long), torch.zeros(size, dtype=torch.bool))
        tool = bool(self.conversations) and self.rng.random() < self.tool_fraction
        sft = [self._sft_row(tool) for _ in range(size)]
        length = min(self.seq_len, max(len(r) for r, _ in sft) + SFT_TAIL)
        return Batch(
            torch.tensor([r + [self.eos] * (length - len(r)) for r, _ in sft]),
            torch.tensor([p for _, p in sft]),
            torch.ones(size, dtype=torch.bool),
        )
