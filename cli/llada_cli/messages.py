"""Chat messages as JSON: ``[{"role": ..., "content": ...}, ...]`` (``/save``, ``/load``, ``--load``, ``--jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")


def check_messages(value: Any, where: str) -> list[dict[str, str]]:
    """``value`` as a message list (a list, or ``{"messages": [...]}``); ``ValueError`` naming ``where``."""
    if isinstance(value, dict) and "messages" in value:
        value = value["messages"]
    if not isinstance(value, list):
        raise ValueError(f'{where}: expected a JSON list of {{"role", "content"}} messages')
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"{where}: message {i} must be an object with string 'role' and 'content'")
        if m["role"] not in ROLES:
            raise ValueError(f"{where}: message {i} has role {m['role']!r}; use one of {', '.join(ROLES)}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def parse_messages(text: str, where: str) -> list[dict[str, str]]:
    """Parse JSON ``text`` as a message list."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    return check_messages(value, where)


def save_messages(path: str | Path, messages: list[dict[str, str]]) -> None:
    """Write ``messages`` as indented JSON."""
    Path(path).write_text(json.dumps(messages, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
