"""``llada generate``: the reference-compatible ``generate`` call on raw text or token ids."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from llada_cli.common import TEXT, emit_json, json_option, load_model, model_options, text_or_stdin
from llada_cli.genopts import generation_options, resolve_options
from llada_sdk.options import REFERENCE_PRESET

NOT_USED = ("early_stop", "stop", "max_auto_length")  # text-call options the reference call has no use for


def parse_ids(text: str) -> list[int]:
    """``"0 38 271"``, ``"0,38,271"`` or ``"[0, 38, 271]"`` -> ids; ``ValueError`` otherwise."""
    stripped = text.strip()
    try:
        items: Any = json.loads(stripped) if stripped.startswith("[") else re.split(r"[\s,]+", stripped)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON list of token ids ({exc.msg})") from exc
    try:
        ids = [int(i) for i in items if str(i) != ""]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"token ids must be integers separated by spaces or commas, got {text!r}") from exc
    if not ids or min(ids) < 0:
        raise ValueError("give at least one token id, each >= 0")
    return ids


@click.command(short_help="The reference generate() call on text or token ids.")
@click.argument("text", required=False, type=TEXT)
@click.option("--ids", "as_ids", is_flag=True, help='TEXT is token ids ("0 38 271", "0,38" or a JSON list).')
@click.option("--chat", "as_chat", is_flag=True, help="Wrap TEXT in the chat template as one user message.")
@model_options
@generation_options(exclude=NOT_USED, defaults=REFERENCE_PRESET)
@json_option("Print one JSON object: text, ids (generated) and prompt_ids.")
@click.pass_context
def generate(
    ctx: click.Context,
    text: str | None,
    as_ids: bool,
    as_chat: bool,
    model: str | None,
    device: str | None,
    dtype: str,
    as_json: bool,
) -> None:
    """Run the reference generate() on TEXT (read from stdin when omitted); its gen_length is
    --max-tokens. The answer is decoded as the reference example does (every generated token,
    special tokens skipped), not cut at EOS; reference_compat is on by default.

    Text is encoded as [BOS] TEXT, or through the chat template with --chat; with --ids TEXT is
    the prompt's token ids as they are. --json adds the prompt and generated ids.

    \b
    Examples:
      llada generate "Zapur lives in" --max-tokens 16 --block-length 16
      llada generate --chat "Where does Zapur live?" --json
      llada generate --ids "0 63 70 85 390" --max-tokens 8
    """
    options = resolve_options(ctx)
    if as_ids and as_chat:
        raise click.UsageError("--ids and --chat exclude each other", ctx)
    text = text_or_stdin(text, "TEXT")
    try:
        ids = parse_ids(text) if as_ids else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param_hint="'TEXT'") from exc
    llm = load_model(model, device, dtype)
    tok = llm.tokenizer
    if ids is None:
        if tok is None:
            where = llm.source.describe() if llm.source else "the model directory"
            raise click.ClickException(f"this model has no tokenizer files ({where}); give token ids with --ids")
        bos = [] if llm.config.bos_token_id is None else [llm.config.bos_token_id]
        ids = tok.apply_chat_template([{"role": "user", "content": text}]) if as_chat else bos + tok.encode(text)
    elif max(ids) >= (llm.config.embedding_size or llm.config.vocab_size):
        raise click.BadParameter(f"token id {max(ids)} is outside the vocabulary", ctx, param_hint="'TEXT'")
    out = llm.generate([ids], options=options, generator=_generator(llm, options.seed))[0, len(ids) :].tolist()
    answer = None if tok is None else tok.decode(out)
    if as_json:
        emit_json({"text": answer, "ids": out, "prompt_ids": ids})
    else:
        click.echo(answer if answer is not None else " ".join(map(str, out)))


def _generator(llm: Any, seed: int | None) -> Any:
    """A seeded RNG of the backend's kind, or None (the reference's global RNG)."""
    if seed is None:
        return None
    return llm.backend.ops.generator(seed, like=llm.backend.asarray([[0]]))
