"""The paths around the happy ones: a REPL that survives bad settings and long histories, the
default dtype per device, the live view's word when it cannot run, the context window."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from llada_cli.main import cli
from llada_sdk import LLaDA
from llada_sdk.backends import torch_backend as tb
from llada_sdk.loading import BUNDLED_DIR


def repl(*lines: str) -> str:
    result = CliRunner().invoke(cli, ["chat", "--interactive", "--no-view"], input="\n".join([*lines, "/exit"]) + "\n")
    assert result.exit_code == 0, result.output
    return result.output


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


def test_a_history_that_outgrows_the_window_drops_the_oldest_turns(bundled: Any) -> None:
    s = bundled.session(system="Be brief.")
    for _ in range(12):
        s.send("Where does Zapur live?", max_tokens=16, block_length=8)
    assert bundled.config.trained_window == 192  # the bundled model's trained rows (config.json)
    assert s.dropped, "twelve turns of ~30 tokens must outgrow 192 - 16 tokens"
    assert s.messages[0] == {"role": "system", "content": "Be brief."}
    n = len(s.dropped)
    res = s.send("Where does Zapur live?", max_tokens=16, block_length=8)
    # the mechanics, not the answer: the bundled model was trained on one- and two-turn chats, and with
    # four or more turns in its window its answers drift (README, "The bundled model")
    assert res.text and len(s.dropped) >= n + 2  # one more turn (a question and its answer) dropped
    assert res.prompt_tokens + 16 <= bundled.config.trained_window


def test_a_message_too_long_for_the_window_is_refused(bundled: Any) -> None:
    s = bundled.session(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    with pytest.raises(ValueError, match=r"`max_tokens` \(16\) does not fit this model's context window of 384 tokens"):
        s.send("Zapur " * 400, max_tokens=16, block_length=8)
    assert len(s.messages) == 2 and not s.dropped  # a refused message leaves the conversation as it was


def test_the_view_says_when_it_cannot_run() -> None:
    result = CliRunner().invoke(cli, ["complete", "Zapur lives in", "--view"])
    assert result.exit_code == 0
    assert "note: --view ignored (stdout is not a terminal)" in result.output


def _bf16_copy(tmp: Path) -> Path:
    folder = tmp / "bf16"
    shutil.copytree(BUNDLED_DIR, folder)
    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in weights.items()}, str(folder / "model.safetensors"))
    return folder


def test_half_precision_checkpoints_load_as_float32_on_a_cpu_without_fast_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _bf16_copy(tmp_path)
    monkeypatch.setattr(tb, "cpu_has_fast_half", lambda: False)
    slow_cpu = LLaDA.from_pretrained(folder, device="cpu")
    assert slow_cpu.model.dtype == torch.float32 and "no native bfloat16" in slow_cpu.backend.info()["dtype_note"]
    monkeypatch.setattr(tb, "cpu_has_fast_half", lambda: True)
    fast_cpu = LLaDA.from_pretrained(folder, device="cpu")
    assert (
        fast_cpu.model.dtype == torch.bfloat16 and fast_cpu.backend.info()["dtype_note"] == "the checkpoint's own dtype"
    )
    asked = LLaDA.from_pretrained(folder, device="cpu", dtype="bfloat16")
    assert asked.model.dtype == torch.bfloat16
    out = CliRunner().invoke(cli, ["info", "-m", str(folder), "--json"])
    assert json.loads(out.output)["dtype"] in ("float32", "bfloat16") and json.loads(out.output)["dtype_note"]


def test_the_trained_window_is_read_from_the_model_card(tmp_path: Path) -> None:
    folder = tmp_path / "card"
    shutil.copytree(BUNDLED_DIR, folder)
    config = json.loads((folder / "config.json").read_text())
    config["trained_sequence_length"] = 96
    (folder / "config.json").write_text(json.dumps(config))
    llm = LLaDA.from_pretrained(folder, device="cpu")
    assert (llm.config.trained_window, llm.config.context_window) == (96, 384)
    s = llm.session()
    results = [s.send("Where does Zapur live?", max_tokens=16, block_length=8) for _ in range(4)]
    assert s.dropped and all(r.prompt_tokens + 16 <= 96 for r in results)  # the session keeps to the trained window
    assert "trained window  96 tokens" in CliRunner().invoke(cli, ["info", "-m", str(folder)]).output


@pytest.mark.slow
def test_the_wheel_holds_every_module(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).parents[2]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        timeout=300,
    )
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    for source in ("llada_sdk", "export/llada_export", "integrations/langchain_llada", "cli/llada_cli"):
        for path in (root / source).rglob("*.py"):
            rel = path.relative_to(root / source).as_posix()
            package = source.split("/")[-1]
            assert f"{package}/{rel}" in names, f"{package}/{rel} is missing from the wheel"
    assert "llada_sdk/bundled/llada-tiny-kb/model.safetensors" in names
