"""Training: the LLaDA pre-training and SFT objectives, a tokenizer trainer, and resumable checkpoints.

Run ``python -m llada_sdk.training --out DIR`` (or ``llada train``) to reproduce the bundled model.

Objectives (GUIDELINES.md of the official repository):
- pre-training rows: per row ``t ~ U(0, 1)``, ``p = (1 - eps) t + eps``; each token is masked with
  probability ``p``; loss = sum over masked tokens of ``CE / p``, divided by the row length;
- SFT rows: the same, but prompt tokens are never masked; the answer, its ``<|eot_id|>`` and the
  ``<|endoftext|>`` padding are; the row's sum is divided by its answer length (answer + EOT + pads);
- the batch loss is the mean over rows.

Checkpoints use the official layout (``config.json``, ``model.safetensors`` with ``model.transformer.*``
names) plus ``trainer_state.safetensors`` / ``trainer_state.json`` (optimizer moments, step, RNG state) so a
run resumes exactly. Nothing is pickled.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from llada_sdk.config import LLaDAConfig
from llada_sdk.corpus import (
    EXTRACTION_TEMPLATES,
    N_SYNTHETIC,
    Corpus,
    Person,
    build_corpus,
    extraction_doc,
    extraction_json,
    extraction_sentence,
    synthetic_people,
    tokenizer_training_text,
    tool_conversations,
    tool_direct_conversations,
)
from llada_sdk.model import LLaDAModel
from llada_sdk.tools import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

SPECIAL_TOKENS = [
    "<|startoftext|>",
    "<|endoftext|>",
    "<|mdm_mask|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
# The chat template of GSAI-ML/LLaDA-8B-Instruct, verbatim.
LLADA_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
)
EPS = 1e-3
SFT_TAIL = 40  # EOS positions kept after the longest answer of an SFT batch (chat canvases hold 32 masks)


# ---------------------------------------------------------------------------------------------
# tokenizer


def train_tokenizer(
    texts: list[str], vocab_size: int = 1024, tool_tokens: bool = False, split_spaces: bool = False
) -> Any:
    """Byte-level BPE, one token per digit, the LLaDA special tokens at ids 0..5; with ``tool_tokens``
    also the tool-call tags ``<tool_call>`` / ``</tool_call>`` as two added tokens after the BPE vocabulary.

    ``split_spaces``: every whitespace character is a pre-token of its own, so a word is the same
    tokens after a space, after a quote or at the start of a line (``" Kelso"`` -> ``Ġ`` ``Kelso``, and
    ``"Kelso"`` in JSON -> ``"`` ``Kelso`` ``"``). Copying a name from a sentence into a tool call or a
    JSON value is then an identity on tokens, which a small model can learn; with the GPT-2 split the
    model would have to learn the spelling of every space-prefixed token (4 % more tokens per text)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    steps: list[Any] = [pre_tokenizers.Digits(individual_digits=True)]
    if split_spaces:
        steps.append(pre_tokenizers.Split(Regex(r"\s"), "isolated"))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if tool_tokens:  # the tool-call tags of llada_sdk.tools as single (non-special) tokens, as in Qwen's vocabulary
        tok.add_tokens([AddedToken(t, normalized=False) for t in (TOOL_CALL_OPEN, TOOL_CALL_CLOSE)])
    return tok


def tokenizer_config() -> dict[str, Any]:
    """tokenizer_config.json in the layout of the official checkpoints."""
    return {
        "add_bos_token": False,
        "add_eos_token": False,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "chat_template": LLADA_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


# ---------------------------------------------------------------------------------------------
# data


@dataclass
class Batch:
    ids: torch.Tensor  # [B, T]
    prompt_len: torch.Tensor  # [B]; 0 for pre-training rows
    is_sft: torch.Tensor  # [B] bool


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
    ) -> None:
        self.seq_len, self.sft_fraction, self.tool_fraction = seq_len, sft_fraction, tool_fraction
        self.pretrain_len = pretrain_len or seq_len
        # fresh_people: every tool-use and extraction row is about a newly drawn person, so nothing can
        # be memorised and only copying (the name into the call, the fact out of the result) lowers the loss
        self.fresh_people, self.kinds = fresh_people, kinds
        # extract_sft: share of the tool-kind SFT rows that are extraction rows -- prompt = BOS, the
        # sentence and a newline; answer = the JSON (what ``fill_schema`` asks for) and EOS
        self.extract_sft = extract_sft
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
        text = "".join(
            f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>" for m in messages
        )
        text = f"<|startoftext|>{text}<|start_header_id|>assistant<|end_header_id|>\n\n"
        return self.enc_text(text), [*self.enc_text(answer), self.eot_id]

    def _fresh_person(self) -> Person:
        while True:
            p = synthetic_people(self.rng.randrange(2**31), 1, exclude=self.taken)[0]
            if p.name not in self.taken:
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
                if self.rng.random() < share:
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


# ---------------------------------------------------------------------------------------------
# objectives


def forward_process(
    ids: torch.Tensor, prompt_len: torch.Tensor, mask_id: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask each non-prompt token with a per-row probability ``p = (1 - eps) t + eps``.

    Returns ``(noisy [B, T], masked [B, T] bool, p [B])``. Prompt positions are never masked.
    """
    B, T = ids.shape
    t = torch.rand(B, generator=generator)
    p = (1 - EPS) * t + EPS
    masked = torch.rand(B, T, generator=generator) < p[:, None]
    masked &= torch.arange(T)[None, :] >= prompt_len[:, None]
    return torch.where(masked, torch.full_like(ids, mask_id), ids), masked, p


def llada_loss(
    logits: torch.Tensor, ids: torch.Tensor, masked: torch.Tensor, p: torch.Tensor, prompt_len: torch.Tensor
) -> torch.Tensor:
    """Mean over rows of ``sum_masked CE / p`` divided by the row's answer length (all tokens for
    pre-training rows, ``T - prompt_len`` for SFT rows)."""
    T = ids.shape[1]
    ce = F.cross_entropy(logits.float().transpose(1, 2), ids, reduction="none")  # [B, T]
    per_row = (ce * masked).sum(1) / p / (T - prompt_len).clamp(min=1)
    return per_row.mean()


def causal_loss(logits: torch.Tensor, ids: torch.Tensor, prompt_len: torch.Tensor) -> torch.Tensor:
    """Next-token CE for the autoregressive twin of the reversal benchmark (prompt tokens not scored)."""
    T = ids.shape[1]
    ce = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:], reduction="none")
    keep = torch.arange(1, T)[None, :] >= prompt_len[:, None].clamp(min=1)
    return (ce * keep).sum() / keep.sum()


# ---------------------------------------------------------------------------------------------
# training loop


@dataclass
class TrainConfig:
    """Every knob of a training run; stored in trainer_state.json."""

    steps: int = 8000
    batch_size: int = 32
    seq_len: int = 96
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup: int = 100
    decay_fraction: float = 0.25
    sft_fraction: float = 0.3
    seed: int = 0
    threads: int = 1
    save_every: int = 500
    vocab_size: int = 512
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_hidden_size: int = 352
    n_people: int = 40
    causal: bool = False
    # the tool recipe (issue 10): tool-use conversations, extraction documents, small talk, the two
    # tool-call tokens, and batches of one kind (pre-training rows of `pretrain_len`, SFT rows padded
    # to their longest + SFT_TAIL). False = the shipped model's recipe, bit for bit.
    tools: bool = False
    tool_fraction: float = 0.4
    extract_fraction: float = 0.1
    pretrain_len: int = 0
    fresh_people: bool = False
    # the copying recipe (issue 10): whitespace split from words in the tokenizer, and a share of the
    # tool-kind SFT rows that are extraction rows (sentence -> its JSON, a fresh person each)
    split_spaces: bool = False
    extract_sft: float = 0.0
    # start from the weights of this checkpoint (same tokenizer and sizes), e.g. a model that already
    # copies (benchmarks/copy_probe.py --save DIR); "" = the seeded initialisation
    init_from: str = ""
    # train only the parameters whose names contain one of these comma-separated fragments (e.g.
    # "q_proj,k_proj,v_proj,attn_out": attention only, the MLPs and embeddings that hold the knowledge
    # base frozen); "" = every parameter
    train_only: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive = (
            "steps",
            "batch_size",
            "threads",
            "save_every",
            "d_model",
            "n_layers",
            "n_heads",
            "mlp_hidden_size",
            "n_people",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.vocab_size < 262:
            raise ValueError(f"`vocab_size` must be >= 262 (256 bytes + 6 special tokens), got {self.vocab_size}")
        if not self.lr > 0:
            raise ValueError(f"`lr` must be > 0, got {self.lr}")
        for name in ("decay_fraction", "sft_fraction", "tool_fraction", "extract_fraction", "extract_sft"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"`{name}` must be in [0, 1], got {getattr(self, name)}")
        if self.pretrain_len < 0:
            raise ValueError(f"`pretrain_len` must be >= 0 (0 = `seq_len`), got {self.pretrain_len}")
        if self.d_model % self.n_heads:
            raise ValueError(f"`d_model` ({self.d_model}) must be divisible by `n_heads` ({self.n_heads})")
        fragments = self.trained_fragments()
        if self.train_only and not fragments:
            raise ValueError(f"`train_only` must name parameter fragments separated by commas, got {self.train_only!r}")

    def trained_fragments(self) -> list[str]:
        """``train_only`` as a list of name fragments ([] = every parameter trains)."""
        return [f.strip() for f in self.train_only.split(",") if f.strip()]

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        decay_start = int(self.steps * (1 - self.decay_fraction))
        if step < decay_start:
            return self.lr
        return self.lr * max(0.0, (self.steps - step) / max(1, self.steps - decay_start))


def init_weights(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for name, param in sorted(model.named_parameters()):
        if name.endswith("norm.weight") or name.endswith("ln_f.weight"):
            param.data.fill_(1.0)
        else:
            param.data.copy_(torch.randn(param.shape, generator=g) * 0.02)


def model_config(cfg: TrainConfig, tok: Any) -> LLaDAConfig:
    return LLaDAConfig(
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        n_layers=cfg.n_layers,
        n_kv_heads=cfg.n_heads,
        mlp_hidden_size=cfg.mlp_hidden_size,
        vocab_size=tok.get_vocab_size(),
        embedding_size=tok.get_vocab_size(),
        max_sequence_length=cfg.seq_len * 4,
        mask_token_id=tok.token_to_id("<|mdm_mask|>"),
        eos_token_id=tok.token_to_id("<|endoftext|>"),
    )


def save_tokenizer(tok: Any, out: Path) -> None:
    """``tokenizer.json`` and ``tokenizer_config.json`` (the official layout) into ``out``."""
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW at ``cfg.lr``, betas (0.9, 0.95); weight decay on matrices only (not norms); only the
    parameters that require a gradient (see ``freeze_except``)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return torch.optim.AdamW(
        [
            {"params": [p for _, p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for _, p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )


def freeze_except(model: torch.nn.Module, fragments: list[str]) -> None:
    """Freeze every parameter whose name contains none of ``fragments`` (none frozen if it is empty)."""
    if not fragments:
        return
    trained = {n for n, _ in model.named_parameters() if any(f in n for f in fragments)}
    if not trained:
        names = sorted({n.split(".")[-2] for n, _ in model.named_parameters()})
        raise ValueError(f"`train_only` {fragments} matches no parameter; the names hold e.g. {names}")
    for name, param in model.named_parameters():
        param.requires_grad_(name in trained)


def checkpoint_state(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of ``folder/model.safetensors`` under the model's own names (``model.`` prefix removed)."""
    return {k.removeprefix("model."): v for k, v in load_file(str(folder / "model.safetensors")).items()}


def save_checkpoint(
    model: LLaDAModel, out: Path, tokenizer_dir: Path | None = None, dtype: torch.dtype = torch.float32
) -> None:
    """Write ``config.json`` + ``model.safetensors`` (official names) and copy the tokenizer files."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(model.config.to_hf_dict(), indent=2) + "\n")
    state = {f"model.{k}": v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer_dir is not None and tokenizer_dir.resolve() != out.resolve():
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(tokenizer_dir / name, out / name)


def _save_state(
    out: Path,
    step: int,
    cfg: TrainConfig,
    opt: torch.optim.Optimizer,
    model: torch.nn.Module,
    sampler: RowSampler,
    gen: torch.Generator,
    losses: list[float],
) -> None:
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {"rng/torch": gen.get_state()}
    for group in opt.param_groups:
        for param in group["params"]:
            st = opt.state.get(param, {})
            for key in ("exp_avg", "exp_avg_sq", "step"):
                if key in st:
                    tensors[f"opt/{names[id(param)]}/{key}"] = torch.as_tensor(st[key]).clone()
    save_file(tensors, str(out / "trainer_state.safetensors"))
    meta = {"step": step, "config": asdict(cfg), "python_rng": _jsonable(sampler.rng.getstate()), "losses": losses}
    (out / "trainer_state.json").write_text(json.dumps(meta) + "\n")


def _jsonable(state: Any) -> Any:
    return [_jsonable(s) for s in state] if isinstance(state, tuple) else state


def _tupled(state: Any) -> Any:
    return tuple(_tupled(s) for s in state) if isinstance(state, list) else state


def train(cfg: TrainConfig, out: str | Path, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) a model into ``out``; returns a summary with the loss curve."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    corpus = build_corpus(cfg.seed, cfg.n_people, tools=cfg.tools)
    tok_file = out / "tokenizer.json"
    if not tok_file.exists():
        tok = train_tokenizer(
            tokenizer_training_text(corpus), cfg.vocab_size, tool_tokens=cfg.tools, split_spaces=cfg.split_spaces
        )
        save_tokenizer(tok, out)
    from tokenizers import Tokenizer as HFTokenizer

    tok = HFTokenizer.from_file(str(tok_file))
    mcfg = model_config(cfg, tok)
    model = LLaDAModel(mcfg)
    if cfg.causal:
        set_causal(model)
    init_weights(model, cfg.seed)
    if cfg.init_from:
        _init_from(model, Path(cfg.init_from), tok_file)
    freeze_except(model, cfg.trained_fragments())
    opt = make_optimizer(model, cfg)
    sampler = RowSampler(
        corpus,
        tok,
        cfg.seq_len,
        cfg.sft_fraction,
        cfg.seed,
        cfg.tool_fraction if cfg.tools else 0.0,
        cfg.extract_fraction if cfg.tools else 0.0,
        cfg.pretrain_len or cfg.seq_len,
        cfg.fresh_people,
        kinds=cfg.tools,
        extract_sft=cfg.extract_sft if cfg.tools else 0.0,
    )
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    start, losses = 0, list[float]()
    if resume and (out / "trainer_state.json").exists():
        start, losses = _resume(out, model, opt, sampler, gen)
    iterator: Iterator[int] = iter(range(start, cfg.steps))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", mininterval=2.0)
    t0, ema = time.time(), losses[-1] if losses else None
    model.train()
    for step in iterator:
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(step)
        batch = sampler.batch(cfg.batch_size)
        if cfg.causal:
            loss = causal_loss(model(batch.ids), batch.ids, batch.prompt_len)
        else:
            noisy, masked, p = forward_process(batch.ids, batch.prompt_len, mcfg.mask_token_id, gen)
            loss = llada_loss(model(noisy), batch.ids, masked, p, batch.prompt_len)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # frozen parameters have no gradient
        opt.step()
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {step}")
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        if step % 10 == 0:
            losses.append(round(ema, 4))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.3f}", refresh=False)
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            save_checkpoint(model, out)
            _save_state(out, step + 1, cfg, opt, model, sampler, gen, losses)
    if bar is not None:
        bar.close()
    return {"steps": cfg.steps, "seconds": round(time.time() - t0, 1), "final_loss_ema": ema, "losses": losses}


def set_causal(model: LLaDAModel) -> None:
    """Turn a model into its autoregressive twin (causal attention), for the reversal baseline."""
    for block in model.transformer.blocks:
        block.causal = True  # type: ignore[union-attr,assignment]


def _init_from(model: LLaDAModel, source: Path, tok_file: Path) -> None:
    """Load ``source``'s weights into ``model``; its tokenizer must be the run's (same ids)."""
    theirs = source / "tokenizer.json"
    if not theirs.exists() or json.loads(theirs.read_text()) != json.loads(tok_file.read_text()):
        raise ValueError(f"`init_from`: {source} does not hold this run's tokenizer ({tok_file.name} differs)")
    state = checkpoint_state(source)
    mine = model.state_dict()
    if state.keys() != mine.keys() or any(state[k].shape != mine[k].shape for k in mine):
        raise ValueError(f"`init_from`: {source} is not a model of this run's sizes")
    model.load_state_dict(state)


def _resume(
    out: Path, model: LLaDAModel, opt: torch.optim.Optimizer, sampler: RowSampler, gen: torch.Generator
) -> tuple[int, list[float]]:
    meta = json.loads((out / "trainer_state.json").read_text())
    model.load_state_dict(checkpoint_state(out))
    tensors = load_file(str(out / "trainer_state.safetensors"))
    gen.set_state(tensors["rng/torch"])
    params = dict(model.named_parameters())
    for key, value in tensors.items():
        if key.startswith("opt/"):
            name, field_name = key[4:].rsplit("/", 1)
            opt.state[params[name]][field_name] = value
    sampler.rng.setstate(_tupled(meta["python_rng"]))
    return int(meta["step"]), list(meta["losses"])


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), like the ``llada`` command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"Error: {message} (see '{self.prog} --help')\n")


def parse_args(
    argv: list[str] | None = None, prog: str = "python -m llada_sdk.training"
) -> tuple[str, bool, TrainConfig]:
    """The command line as ``(out, resume, config)``; a bad flag or value exits 2 with one line."""
    parser = _OneLineErrors(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory (checkpoint + tokenizer)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    for name, f in TrainConfig.__dataclass_fields__.items():
        if f.type in (bool, "bool"):
            parser.add_argument(f"--{name.replace('_', '-')}", action="store_true")
        elif name != "extra":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = vars(parser.parse_args(argv))
    out, resume = args.pop("out"), not args.pop("no_resume")
    try:
        cfg = TrainConfig(**args)
    except ValueError as exc:
        parser.error(str(exc))
    return out, resume, cfg


def main(argv: list[str] | None = None, prog: str = "python -m llada_sdk.training") -> None:
    out, resume, cfg = parse_args(argv, prog)
    summary = train(cfg, out, resume=resume)
    print(json.dumps({k: v for k, v in summary.items() if k != "losses"}))  # noqa: T201


if __name__ == "__main__":
    main()
