"""Training a LLaDA model here: the objectives, a tokenizer trainer, training rows and resumable
checkpoints in the official layout.

Run ``python -m llada_sdk.training --out DIR`` (or ``llada train``) to reproduce the bundled model
(``docs/train_bundled.sh`` has its four phases). ``tokens`` (the tokenizer), ``data`` (rows from the
synthetic corpus), ``losses`` (the objectives), ``loop`` (a run and its checkpoints), ``cli`` (the
command line).
"""

from __future__ import annotations

from llada_sdk.training.cli import main, parse_args
from llada_sdk.training.data import Batch, RowSampler
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
    "RowSampler",
    "TrainConfig",
    "causal_loss",
    "checkpoint_state",
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
