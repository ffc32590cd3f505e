"""Training a small LLaDA model here: the objectives, a tokenizer trainer, training rows and resumable
checkpoints in the official layout.

Run ``llada train --data FILE.jsonl --out DIR`` (or ``python -m llada_sdk.training``). ``tokens`` (the
tokenizer), ``data`` (rows from a JSON-lines file, and the protocol any other source follows),
``losses`` (the objectives), ``loop`` (a run and its checkpoints), ``cli`` (the command line). The
bundled model's own recipe (a synthetic corpus, four phases) is in ``recipes/bundled_model``.
"""

from __future__ import annotations

from llada_sdk.training.cli import config_from, config_parser, main, parse_args
from llada_sdk.training.data import Batch, JsonlData, RowSource, TrainingData, TrainingDataError, chat_text
from llada_sdk.training.loop import (
    TrainConfig,
    checkpoint_state,
    freeze_except,
    init_weights,
    make_optimizer,
    model_config,
    save_checkpoint,
    set_causal,
    train,
)
from llada_sdk.training.losses import EPS, causal_loss, forward_process, llada_loss
from llada_sdk.training.tokens import (
    LLADA_CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    save_tokenizer,
    tokenizer_config,
    train_tokenizer,
)

__all__ = [
    "EPS",
    "LLADA_CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "Batch",
    "JsonlData",
    "RowSource",
    "TrainConfig",
    "TrainingData",
    "TrainingDataError",
    "causal_loss",
    "chat_text",
    "checkpoint_state",
    "config_from",
    "config_parser",
    "forward_process",
    "freeze_except",
    "init_weights",
    "llada_loss",
    "main",
    "make_optimizer",
    "model_config",
    "parse_args",
    "save_checkpoint",
    "save_tokenizer",
    "set_causal",
    "tokenizer_config",
    "train",
    "train_tokenizer",
]
