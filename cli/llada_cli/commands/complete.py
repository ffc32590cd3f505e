"""``llada complete``: write after a prefix, before a suffix (backward), or between both (middle)."""

from __future__ import annotations

from typing import Any

import click

from llada_cli.common import (
    TEXT,
    emit_result,
    json_option,
    load_model,
    model_options,
    stdin_is_terminal,
    text_or_stdin,
    view_option,
    wants_view,
)
from llada_cli.genopts import AnyParamType, generation_options, resolve_options


class SpanLength(AnyParamType):
    """``auto`` or a positive integer."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) or str(value).strip().lower() == "auto":
            return value if isinstance(value, int) else "auto"
        try:
            number = int(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither 'auto' nor an integer", param, ctx)
        if number < 1:
            self.fail(f"{number} is not >= 1", param, ctx)
        return number


@click.command(short_help="Write text after a prefix, before a suffix, or between.")
@click.argument("text", required=False, type=TEXT)
@click.option("--prefix", default=None, type=TEXT, help="Text before the new text (same as TEXT).")
@click.option("--suffix", default=None, type=TEXT, help="Text after the new text: write what comes before it.")
@click.option(
    "--length",
    type=SpanLength(),
    default="auto",
    show_default=True,
    help="With --suffix: tokens to write, or auto (the model picks, up to --max-auto-length).",
)
@model_options
@generation_options()
@view_option
@json_option()
@click.pass_context
def complete(
    ctx: click.Context,
    text: str | None,
    prefix: str | None,
    suffix: str | None,
    length: int | str,
    model: str | None,
    device: str | None,
    dtype: str,
    view: bool | None,
    as_json: bool,
) -> None:
    """Write text after a prefix (forward), before a suffix (backward) or between both (middle).

    TEXT is the prefix; it is read from stdin when neither TEXT, --prefix nor --suffix is given.
    Prints the new text only.

    \b
    Examples:
      llada complete "Zapur lives in"
      llada complete --suffix "'s parent is Lotrobar."
      llada complete --prefix "Zapur lives in" --suffix "and works as a weaver." --length 2
    """
    options = resolve_options(ctx)
    if text is not None and prefix is not None:
        raise click.UsageError("give the prefix once: as TEXT or as --prefix, not both", ctx)
    prefix = prefix if prefix is not None else text
    if prefix is None and suffix is None:
        if stdin_is_terminal():
            raise click.UsageError("give TEXT, --prefix or --suffix (or pipe the prefix on stdin)", ctx)
        prefix = text_or_stdin(None, "TEXT")
    if not prefix and not suffix:
        raise click.BadParameter("the prefix and the suffix are both empty", ctx, param_hint="'--prefix' / '--suffix'")
    if not suffix and ctx.get_parameter_source("length") is click.core.ParameterSource.COMMANDLINE:
        raise click.BadParameter(
            "applies with --suffix only (forward completion writes --max-tokens)", ctx, param_hint="'--length'"
        )
    if isinstance(length, int) and length > options.max_tokens:
        raise click.BadParameter(
            f"{length} is more than --max-tokens ({options.max_tokens})", ctx, param_hint="'--length'"
        )
    llm = load_model(model, device, dtype)
    from llada_cli.view import present

    events = llm.stream_complete(prefix, suffix, options=options, length=length)
    waiting = "Choosing the length…" if suffix and length == "auto" else None
    emit_result(present(llm, events, live=wants_view(view, as_json), context=True, waiting=waiting), as_json)
