"""The tokenizer of a model trained here: byte-level BPE with the LLaDA special tokens and chat
template, saved in the official file layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llada_sdk.text.tools import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

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
    if (
        tool_tokens
    ):  # the tool-call tags of llada_sdk.text.tools as single (non-special) tokens, as in Qwen's vocabulary
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


def save_tokenizer(tok: Any, out: Path) -> None:
    """``tokenizer.json`` and ``tokenizer_config.json`` (the official layout) into ``out``."""
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")
