"""``llada chat --interactive``: the REPL's commands, and a conversation that survives bad settings and a
turn that fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llada_cli.main import cli


def repl(*lines: str) -> str:
    """The REPL's stdout for these input lines (then ``/exit``); it must exit 0."""
    result = CliRunner().invoke(
        cli,
        ["chat", "--interactive", "--no-view"],
        input="\n".join([*lines, "/exit"]) + "\n",
        env={"LLADA_MODEL": None, "LLADA_DEBUG": None},
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_chat_repl_commands(tmp_path: Path) -> None:
    saved = tmp_path / "conversation.json"
    out = repl(
        "/set max_tokens 16",
        "/set block_length 7",
        "/set nope 1",
        "/system Be brief.",
        "Where does Zapur live?",
        f"/save {saved}",
        "/reset",
        '"""What day',
        'comes after Monday?"""',
        "/bogus",
        f"/load {saved}",
        "/set",
        "/exit",
        "never read",
    )
    assert "max_tokens = 16" in out
    assert "error: `block_length` (7) must divide `max_tokens` (16)" in out
    assert "error: unknown option 'nope'" in out
    assert "system prompt set" in out and "conversation cleared" in out
    assert "... " in out  # the continuation prompt of the multi-line message
    assert "unknown command /bogus" in out
    assert f"loaded 3 messages from {saved}" in out
    assert "early_stop = True" in out  # /set alone lists the options
    messages = json.loads(saved.read_text())
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[0]["content"] == "Be brief." and messages[1]["content"] == "Where does Zapur live?"


def test_a_bad_combination_is_refused_at_set_and_the_conversation_goes_on() -> None:
    out = repl("/set cfg_scale 1", "/set cache prefix", "Where does Zapur live?")
    assert "cfg_scale = 1.0" in out
    assert "error: `cache` does not support classifier-free guidance" in out and "nothing was changed" in out
    assert "Zapur lives in Duskmere." in out  # the next message is answered with the valid settings


def test_dependent_values_are_set_together_or_not_at_all() -> None:
    out = repl("/set max_tokens 12", "/set max_tokens 12 block_length 4", "/set", "/set stop none")
    assert "error: `block_length` (8) must divide `max_tokens` (12)" in out
    assert "max_tokens = 12" in out and "block_length = 4" in out
    assert "stop = []" in out


def test_an_error_during_a_turn_ends_only_that_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    from llada_sdk.text import session as session_module

    real = session_module.ChatSession.stream
    calls = {"n": 0}

    def flaky(self: Any, text: str, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the backend fell over")
        return real(self, text, **kw)

    monkeypatch.setattr(session_module.ChatSession, "stream", flaky)
    out = repl("Where does Zapur live?", "Where does Zapur live?")
    assert "error: RuntimeError: the backend fell over" in out and "the conversation is unchanged" in out
    assert "Zapur lives in Duskmere." in out


def test_the_session_shown_in_the_docs_is_what_the_repl_prints(tmp_path: Path) -> None:
    """docs/cli.md's REPL session, replayed up to its Ctrl-C: the same answers and messages, line by line
    (on a non-terminal the REPL does not echo what is typed: a prompt is followed by the output)."""
    doc = (Path(__file__).parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    block = doc.split("```text\n$ llada chat --no-view\n", 1)[1].split("```", 1)[0]
    lines = block.split("\n^C\n", 1)[0].splitlines()
    banner, session = lines[0], lines[1:-1]  # the last line typed (the cancelled one) is not replayed
    saved = tmp_path / "zapur.json"
    typed, expected, prompt = [], [banner], ""
    for line in session:
        if line.startswith((">>> ", "... ")):
            typed.append(line[4:].replace("/tmp/zapur.json", str(saved)))
            prompt += line[:4]
        else:
            expected.append(prompt + line.replace("/tmp/zapur.json", str(saved)))
            prompt = ""
    out = repl(*typed)
    assert out.splitlines()[: len(expected)] == expected
    assert [m["role"] for m in json.loads(saved.read_text())] == ["user", "assistant"]
