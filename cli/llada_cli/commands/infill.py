"""``llada infill``: fill the masked spans of a text."""

from __future__ import annotations

import click

from llada_cli.common import (
    TEXT,
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
@click.argument("text", required=False, type=TEXT)
@model_options
@generation_options()
@view_option
@json_option()
@click.pass_context
@click.option(
    "--schema",
    "schema_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="JSON-schema file: TEXT is the prompt, the output is a JSON object that always validates "
    "(the skeleton is fixed text, the model writes the values).",
)
def infill(
    ctx: click.Context,
    text: str | None,
    model: str | None,
    device: str | None,
    dtype: str,
    view: bool | None,
    as_json: bool,
    schema_file: str | None = None,
) -> None:
    """Fill the masked spans of TEXT (read from stdin when omitted).

    Spans: [MASK] is one token, [MASK:8] eight tokens, [MASK:auto] lets the model choose the
    length (up to --max-auto-length); \\[MASK] is a literal [MASK]. All spans are decoded together.

    \b
    Examples:
      llada infill "Zapur lives in [MASK:2] and works as a [MASK:2]."
      llada infill "Zapur's parent is [MASK:auto]." --json
      llada infill "Zapur lives in Duskmere." --schema person.json
    """
    from llada_sdk.text.canvas import parse_masked_text

    options = resolve_options(ctx)
    text = text_or_stdin(text, "TEXT")
    if schema_file is not None:
        _fill_schema(ctx, text, schema_file, model, device, dtype, options, as_json)
        return
    try:
        parse_masked_text(text)  # checked before the model loads
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param_hint="'TEXT'") from exc
    llm = load_model(model, device, dtype)
    from llada_cli.view import present

    events = llm.stream_infill(text, options=options)
    waiting = "Choosing span lengths…" if "[MASK:auto]" in text else None
    emit_result(present(llm, events, live=wants_view(view, as_json), context=True, waiting=waiting), as_json)


def _fill_schema(
    ctx: click.Context,
    text: str,
    schema_file: str,
    model: str | None,
    device: str | None,
    dtype: str,
    options: object,
    as_json: bool,
) -> None:
    """``--schema``: fill the JSON schema of ``schema_file`` from TEXT (``llada_sdk.text.structured``)."""
    import json

    from llada_cli.common import read_text_file
    from llada_sdk.text.structured import fill_schema_result, skeleton

    try:
        schema = json.loads(read_text_file(schema_file))
        skeleton(schema)  # checked before the model loads
    except OSError as exc:
        raise click.BadParameter(f"cannot read {schema_file!r}: {exc.strerror}", ctx, param_hint="'--schema'") from exc
    except (json.JSONDecodeError, ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), ctx, param_hint="'--schema'") from exc
    llm = load_model(model, device, dtype)
    res = fill_schema_result(llm, text, schema, options=options)
    if as_json:
        click.echo(json.dumps({"text": res.text, "data": res.data, "fills": res.fills}, ensure_ascii=False))
    else:
        click.echo(res.text)
