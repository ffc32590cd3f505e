"""``llada train``: train a small model on a JSON-lines file (``llada_sdk.training``)."""

from __future__ import annotations

import click


@click.command(
    short_help="Train a model (python -m llada_sdk.training).",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(args: tuple[str, ...]) -> None:
    """Train a LLaDA model on a data file: every ARG goes to python -m llada_sdk.training.

    --data FILE holds one JSON object per line: {"text": ...} documents (pre-training rows) and
    {"messages": [..., {"role": "assistant", "content": ...}]} chats (the last message is the answer
    trained on). `llada train -- --help` lists the options (--out DIR is required; an existing
    checkpoint in DIR is resumed; --init-from DIR starts from a model and its tokenizer). Load the
    result with -m DIR. The bundled model's own recipe is recipes/bundled_model in the repository.

    \b
    Example:
      llada train --data my_data.jsonl --out runs/tiny --steps 2000
    """
    from llada_sdk.training import main

    main(list(args), prog="llada train")
