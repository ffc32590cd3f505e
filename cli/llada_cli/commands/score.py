"""``llada score``: the log-likelihood of a continuation, or the best of several choices."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from llada_cli.common import TEXT, emit_json, json_option, load_model, model_options, text_or_stdin
from llada_cli.genopts import generation_options, resolve_model
from llada_sdk.options import ScoreOptions


@click.command(short_help="Log-likelihood of a continuation, or multiple choice.")
@click.argument("prompt", type=TEXT)
@click.argument("continuation", required=False, type=TEXT)
@click.option(
    "-c",
    "--choice",
    "choices",
    multiple=True,
    type=TEXT,
    metavar="TEXT",
    help="A choice to score after PROMPT (repeat it); prints every score and the best.",
)
@click.option("--normalize", is_flag=True, help="Divide each choice's score by its token count.")
@model_options
@generation_options(model=ScoreOptions, pairs=False)
@json_option("Print one JSON object with the score(s).")
@click.pass_context
def score(
    ctx: click.Context,
    prompt: str,
    continuation: str | None,
    choices: tuple[str, ...],
    normalize: bool,
    model: str | None,
    device: str | None,
    dtype: str,
    as_json: bool,
) -> None:
    """Score CONTINUATION after PROMPT: a Monte Carlo lower bound on log p(CONTINUATION | PROMPT).

    With --choice (repeated) instead of CONTINUATION: multiple choice, every choice scored with
    the same seed, the best marked with '*'. PROMPT '-' reads it from stdin. Trailing spaces of
    PROMPT move to the continuation.

    \b
    Examples:
      llada score "Zapur lives in" " Duskmere."
      llada score "Zapur lives in" -c " Duskmere." -c " Quillby." --json
    """
    options = resolve_model(ctx, ScoreOptions)
    if (continuation is None) == (not choices):
        raise click.UsageError("give CONTINUATION or --choice (at least one), not both", ctx)
    prompt = text_or_stdin(prompt, "PROMPT")
    llm = load_model(model, device, dtype)
    if continuation is not None:
        value = llm.score(prompt, continuation, options=options)
        if as_json:
            emit_json({"prompt": prompt, "continuation": continuation, "log_likelihood": value})
        else:
            click.echo(f"{value:.4f}")
        return
    with _progress(len(choices)) as advance:
        best = llm.choose(
            prompt,
            list(choices),
            options=options,
            normalize=normalize,
            progress=advance,
        )
    if as_json:
        emit_json(
            {"prompt": prompt, "choices": list(choices), "scores": best.scores, "index": best.index, "text": best.text}
        )
        return
    for i, (choice, value) in enumerate(zip(choices, best.scores)):
        click.echo(f"{'*' if i == best.index else ' '} {value:10.4f}  {choice}")


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A transient progress bar on stderr (a terminal, more than one choice); yields ``advance(done)``."""
    import sys

    if total < 2 or not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("Scoring choices", total=total)
        yield lambda done: bar.update(task, completed=done)
