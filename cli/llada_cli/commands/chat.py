"""``llada chat``: an interactive multi-turn REPL on a terminal, one answer (or one per line) otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from llada_cli.common import (
    TEXT,
    emit_json,
    emit_result,
    json_option,
    load_model,
    model_options,
    read_history,
    result_dict,
    stdin_is_terminal,
    stdin_lines,
    text_or_stdin,
    view_option,
    wants_view,
)
from llada_cli.genopts import generation_options, resolve_options
from llada_cli.messages import parse_messages
from llada_sdk.loading import BUNDLED_MODEL


@click.command(short_help="Chat: a multi-turn REPL, or one answer to stdin.")
@click.argument("message", required=False, type=TEXT)
@click.option("--system", default=None, type=TEXT, help="System prompt.")
@click.option(
    "--load",
    "load_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Start from the messages of a JSON file (as written by /save).",
)
@click.option(
    "--jsonl", is_flag=True, help="Read one JSON message list per stdin line; print one JSON answer per line."
)
@click.option("-i", "--interactive", is_flag=True, help="Run the REPL even when stdin is not a terminal.")
@model_options
@generation_options()
@view_option
@json_option()
@click.pass_context
def chat(
    ctx: click.Context,
    message: str | None,
    system: str | None,
    load_path: Path | None,
    jsonl: bool,
    interactive: bool,
    model: str | None,
    device: str | None,
    dtype: str,
    view: bool | None,
    as_json: bool,
) -> None:
    """Chat with the model.

    On a terminal: a multi-turn REPL with history. /help lists its commands (/set KEY VALUE,
    /system, /reset, /save FILE, /load FILE, /exit); \"\"\" starts and ends multi-line input;
    Ctrl-C cancels the answer being written and keeps the conversation; Ctrl-D leaves.

    With MESSAGE, or with stdin not a terminal, it answers once without a prompt: MESSAGE or the
    whole of stdin is one user message. With --jsonl each stdin line is a JSON list of
    {"role", "content"} messages, answered on its own output line.

    \b
    Examples:
      llada chat
      llada chat "Where does Zapur live?"
      echo "What day comes after Monday?" | llada chat --json
    """
    options = resolve_options(ctx)
    if jsonl and (message is not None or interactive or load_path is not None):
        raise click.UsageError(
            "--jsonl reads the conversations from stdin: drop MESSAGE, --interactive and --load", ctx
        )
    history = _history(ctx, load_path)
    repl = message is None and not jsonl and (interactive or stdin_is_terminal())
    text = None if repl or jsonl else text_or_stdin(message, "MESSAGE")
    llm = load_model(model, device, dtype)
    if jsonl:
        _answer_lines(ctx, llm, options, system)
        return
    session = llm.session(system=system, messages=history, options=options)
    live = wants_view(view, as_json)
    if repl:
        from llada_cli.repl import ChatRepl

        if stdin_is_terminal():
            try:
                import readline  # noqa: F401 - line editing and history for input()
            except ImportError:  # pragma: no cover - e.g. Windows without pyreadline
                pass
        ChatRepl(llm, session, live=live, as_json=as_json).run(
            banner=f"llada chat · {model or BUNDLED_MODEL} · /help for commands · Ctrl-D or /exit to leave"
        )
        return
    from llada_cli.view import present

    assert text is not None
    emit_result(present(llm, session.stream(text), live=live, context=False), as_json)


def _history(ctx: click.Context, path: Path | None) -> list[dict[str, str]] | None:
    if path is None:
        return None
    try:
        return read_history(path)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {str(path)!r}: {exc.strerror}", ctx, param_hint="'--load'") from exc
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param_hint="'--load'") from exc


def _answer_lines(ctx: click.Context, llm: Any, options: Any, system: str | None) -> None:
    """``--jsonl``: one conversation per stdin line, one JSON answer per output line."""
    for number, line in stdin_lines("--jsonl"):
        if not line.strip():
            continue
        try:
            messages = parse_messages(line, f"stdin line {number}")
        except ValueError as exc:
            raise click.UsageError(str(exc), ctx) from exc
        if system is not None and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        emit_json(result_dict(llm.chat(messages, options=options)))
