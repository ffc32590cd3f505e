"""``llada infill``: fill the masked spans of a text."""

from __future__ import annotations

import click

from llada_cli.common import (
    emit_result,
    json_option,
    load_model,
    model_options,
    text_or_stdin,
    view_option,
    wants_view,
)
from llada_cli.genopts import generation_options, resolve_options


@click.command(short_help="Fill the [MASK] spans of a text.")
@click.argument("text", required=False)
@model_options
@generation_options()
@view_option
@json_option()
@click.pass_context
def infill(
    ctx: click.Context,
    text: str | None,
    model: str | None,
    device: str | None,
    dtype: str,
    view: bool | None,
    as_json: bool,
) -> None:
    """Fill the masked spans of TEXT (read from stdin when omitted).

    Spans: [MASK] is one token, [MASK:8] eight tokens, [MASK:auto] lets the model choose the
    length (up to --max-auto-length); \\[MASK] is a literal [MASK]. All spans are decoded together.

    \b
    Examples:
      llada infill "Zapur lives in [MASK:2] and works as a [MASK]."
      llada infill "Zapur's parent is [MASK:auto]." --json
    """
    from llada_sdk.canvas import parse_masked_text

    options = resolve_options(ctx)
    text = text_or_stdin(text, "TEXT")
    try:
        parse_masked_text(text)  # checked before the model loads
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param_hint="'TEXT'") from exc
    llm = load_model(model, device, dtype)
    from llada_cli.view import present

    events = llm.stream_infill(text, options=options)
    waiting = "Choosing span lengths…" if "[MASK:auto]" in text else None
    emit_result(present(llm, events, live=wants_view(view, as_json), context=True, waiting=waiting), as_json)
