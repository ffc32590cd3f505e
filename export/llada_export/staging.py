"""Where an export goes: the checks on ``out`` (never the source model, never the working directory, and
``overwrite`` replaces only an llada bundle), and the swap of the finished bundle from its staging
folder beside ``out``. Nothing here deletes what the export did not write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llada_export.sidecar import FORMAT, MAX_SIDECAR_BYTES, SIDECAR


def _within(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved)."""
    return path == folder or folder in path.parents


def _is_bundle(folder: Path) -> bool:
    """Whether ``folder`` holds an llada-onnx sidecar (``format`` only: a bundle whose export was
    interrupted, or that an older version wrote, is still one that ``--overwrite`` may replace)."""
    path = folder / SIDECAR
    try:
        if not path.is_file() or path.stat().st_size > MAX_SIDECAR_BYTES:
            return False
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and raw.get("format") == FORMAT


def source_of(model: Any) -> Path | None:
    """The model folder ``export`` will read, when known without loading it (a Hub id: after loading)."""
    from llada_sdk.loading import BUNDLED_DIR, BUNDLED_MODEL

    if model is None or (isinstance(model, str | os.PathLike) and os.fspath(model) == BUNDLED_MODEL):
        return BUNDLED_DIR
    if isinstance(model, str | os.PathLike):
        path = Path(model).expanduser()
        return path if path.is_dir() else None
    source = getattr(model, "source", None)
    return getattr(source, "path", None)


def check_out(out: Path, target: Path, source: Path | None, overwrite: bool) -> None:
    """Refuse an ``out`` that the export must not replace. ``target``: ``out`` resolved (symlinks too).

    Raises:
        ValueError: naming ``out`` and why.
    """
    cwd = Path.cwd().resolve()
    if _within(cwd, target):
        what = "is" if target == cwd else "contains"
        raise ValueError(
            f"`out` {out} {what} the current working directory {cwd}; export into a new folder, e.g. ./llada-onnx"
        )
    if source is not None:
        src = source.expanduser().resolve()
        if _within(target, src) or _within(src, target):
            what = "is" if target == src else ("lies inside" if _within(target, src) else "contains")
            raise ValueError(f"`out` {out} {what} the source model folder {src}; pick a folder outside it")
    if not target.exists():
        return
    if not target.is_dir():
        raise ValueError(f"`out` {out} exists and is not a folder; pick another path")
    if not any(target.iterdir()):
        return  # an empty folder may be used
    if not overwrite:
        raise ValueError(
            f"`out` {out} exists and is not empty; pass overwrite=True (--overwrite) to replace an llada bundle"
        )
    if not _is_bundle(target):
        raise ValueError(
            f"`out` {out} is not an llada bundle (no {SIDECAR} with format {FORMAT!r}); overwrite replaces only "
            "a bundle written by `llada export`: pick another path or empty the folder yourself"
        )


def swap_in(new: Path, target: Path, stage: Path, out: Path, overwrite: bool) -> None:
    """Move the finished bundle ``new`` to ``target``: into its place, or over an empty folder, or, with
    ``overwrite``, over an old bundle: the old one moves aside into ``stage`` first (its deletion is the
    caller's deletion of ``stage``), and back if the move in fails. Same filesystem: renames are atomic."""
    if target.is_dir() and any(target.iterdir()):
        if not (overwrite and _is_bundle(target)):  # changed since the checks at the start
            raise ValueError(f"`out` {out} changed during the export and is no longer a bundle to replace")
        old = stage / "old"
        os.rename(target, old)
        try:
            os.rename(new, target)
        except BaseException:
            os.rename(old, target)
            raise
        return
    if target.is_dir():
        target.rmdir()  # empty: rmdir removes nothing else
    os.rename(new, target)
