"""``llada models``: the bundled model and the LLaDA models in the Hugging Face Hub cache (offline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from llada_cli.common import emit_json, json_option
from llada_sdk.loading import BUNDLED_DIR, BUNDLED_MODEL


@click.command(short_help="The bundled model and the cached LLaDA Hub models.")
@json_option('Print one JSON object: {"models": [...]}.')
def models(as_json: bool) -> None:
    """List the bundled model and the LLaDA models in the local Hugging Face Hub cache.

    Only cached repos whose config.json has model_type "llada" are listed; nothing is downloaded
    (the cache is HF_HUB_CACHE, or HF_HOME/hub, or ~/.cache/huggingface/hub). Pass a NAME to
    -m/--model of the other commands.
    """
    found = [_entry(BUNDLED_MODEL, "bundled", None, _size(BUNDLED_DIR), BUNDLED_DIR), *hub_models()]
    if as_json:
        emit_json({"models": found})
        return
    header = {"name": "NAME", "source": "SOURCE", "revision": "REVISION", "size": "SIZE", "path": "PATH"}
    shown = [header, *({**m, "size": _human(m["size"]), "revision": m["revision"] or "-"} for m in found)]
    widths = {k: max(len(str(m[k])) for m in shown) for k in ("name", "source", "revision", "size")}
    for m in shown:
        click.echo("  ".join(f"{m[k]!s:<{widths[k]}}" for k in widths) + f"  {m['path']}")


def hub_models() -> list[dict[str, Any]]:
    """Cached model repos whose config.json says ``"model_type": "llada"`` (one entry per revision)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir()
    except CacheNotFound:
        return []
    out = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            config = next((f.file_path for f in rev.files if f.file_name == "config.json"), None)
            if config is None or not _is_llada(config):
                continue
            refs = ",".join(sorted(rev.refs)) or rev.commit_hash[:12]
            out.append(_entry(repo.repo_id, "hub", refs, rev.size_on_disk, rev.snapshot_path))
    return out


def _is_llada(config: Path) -> bool:
    try:
        data = json.loads(Path(config).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and str(data.get("model_type", "")).lower() == "llada"


def _entry(name: str, source: str, revision: str | None, size: int, path: Path) -> dict[str, Any]:
    return {"name": name, "source": source, "revision": revision, "size": size, "path": str(path)}


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover
