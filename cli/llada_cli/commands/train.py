"""``llada train``: train a model from scratch (``llada_sdk.training``)."""

from __future__ import annotations

import click


@click.command(
    short_help="Train a model (python -m llada_sdk.training).",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(args: tuple[str, ...]) -> None:
    """Train a LLaDA model: every ARG goes to python -m llada_sdk.training.

    `llada train -- --help` lists the training options (--out DIR is required; an existing
    checkpoint in DIR is resumed). Load the result with -m DIR.

    \b
    Example:
      llada train --out runs/tiny
    """
    from llada_sdk.training import main

    main(list(args), prog="llada train")
