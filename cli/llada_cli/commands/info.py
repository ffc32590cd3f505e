"""``llada info``: what a model is -- sizes, parameter count, dtype, device, special ids, files."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from llada_cli.common import emit_json, json_option, load_model, model_options
from llada_sdk.loading import BUNDLED_MODEL


@click.command(short_help="Model config, parameter count, dtype, device, special ids.")
@model_options
@json_option("Print one JSON object with these facts and the whole config.")
def info(model: str | None, device: str | None, dtype: str, as_json: bool) -> None:
    """Show the model's config, parameter count, dtype, device, special token ids and where its files
    came from (loads the model).

    \b
    Examples:
      llada info
      llada info -m ./my-checkpoint --json
    """
    llm = load_model(model, device, dtype)
    facts = describe(llm, model or BUNDLED_MODEL)
    if as_json:
        emit_json(facts)
        return
    cfg = facts["config"]
    special = ", ".join(f"{k} {v}" for k, v in facts["special_ids"].items() if v is not None)
    rows = [
        ("model", facts["model"]),
        ("source", facts["source"]),
        ("parameters", f"{facts['parameters']:,} ({facts['parameters'] / 1e6:.2f} M)"),
        ("backend", facts["backend"]["backend"] + _providers(facts["backend"])),
        ("dtype", str(facts["dtype"]) + (f" ({facts['dtype_note']})" if facts.get("dtype_note") else "")),
        ("device", facts["device"]),
        (
            "layers",
            f"{cfg['n_layers']} x d_model {cfg['d_model']}, {cfg['n_heads']} heads "
            f"({cfg['n_kv_heads']} kv), mlp {cfg['mlp_hidden_size']}",
        ),
        ("vocabulary", f"{cfg['vocab_size']} (embedding rows {cfg['embedding_size']})"),
        ("context window", f"{facts['context_window']} tokens (max_sequence_length: longer canvases are refused)"),
        *(
            [
                (
                    "trained window",
                    f"{facts['trained_window']} tokens (trained_sequence_length: longer canvases lose quality; "
                    "chat keeps its history within it)",
                )
            ]
            if facts["trained_window"]
            else []
        ),
        ("rope theta", f"{cfg['rope_theta']:g}"),
        ("special ids", special),
        ("tokenizer", "yes" + (", chat template" if facts["chat_template"] else "") if facts["tokenizer"] else "no"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


def describe(llm: Any, name: str) -> dict[str, Any]:
    """The facts ``info`` prints, as a JSON-ready dict."""
    config = {k: v for k, v in asdict(llm.config).items() if k != "extra"}
    c = llm.config
    tok = llm.tokenizer
    backend = llm.backend.info()
    return {
        "model": name,
        "source": llm.source.describe() if llm.source else None,
        "parameters": c.num_parameters(),
        "backend": backend,
        "dtype": backend.get("dtype"),
        "dtype_note": backend.get("dtype_note"),
        "device": str(backend.get("device", llm.device)),
        "context_window": c.context_window,
        "trained_window": c.trained_window,
        "special_ids": {
            "mask": c.mask_token_id,
            "eos": c.eos_token_id,
            "eot": c.eot_token_id,
            "bos": c.bos_token_id,
            "pad": c.pad_token_id,
        },
        "tokenizer": tok is not None,
        "chat_template": bool(tok is not None and tok.chat_template),
        "config": config,
    }


def _providers(backend: dict[str, Any]) -> str:
    providers = backend.get("providers")
    return f" ({', '.join(map(str, providers))})" if providers else ""
