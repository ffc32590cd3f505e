"""The ``llada`` command line: every command through click's CliRunner (in process) and through the
installed executable and ``python -m llada_cli`` (subprocesses). Offline, on the bundled model.

Outputs of the bundled model are not asserted (its weights will be retrained); structure and exit codes
are. Bad input and its one-line errors: tests/cli/test_bad_inputs.py; the chat REPL: tests/cli/test_chat_repl.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from llada_cli.main import cli
from llada_sdk import GenerationOptions
from llada_sdk.loading import BUNDLED_DIR

LLADA = shutil.which("llada")
INFILL = "Alice lives in [MASK:2] and works as a teacher."
SUFFIX = " lives in Duskmere and works as a weaver."
RESULT_KEYS = {"text", "fills", "lengths", "finish_reason", "forward_passes", "forward_passes_saved"}


# -- helpers ----------------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """Offline, no model or debug from the caller's environment, one torch thread (the model is tiny:
    thread start-up costs more than it saves, a lot more on a busy machine)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LLADA_MODEL", "LLADA_DEBUG", "NO_COLOR")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """The in-process runs on one torch thread too (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """``llada ARGS`` in process (stdin is never a terminal here)."""
    return CliRunner().invoke(
        cli, list(args), input=input, env={"LLADA_MODEL": None, "LLADA_DEBUG": None, **(env or {})}
    )


def exe(
    *args: str, input: str | None = None, module: bool = False, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``llada ARGS`` (or ``python -m llada_cli ARGS``) in a subprocess."""
    if module:
        command = [sys.executable, "-m", "llada_cli", *args]
    else:
        assert LLADA is not None, "the `llada` executable is not installed (pip install -e .)"
        command = [LLADA, *args]
    return subprocess.run(
        command,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
    )


def one_json(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


def assert_one_line_error(stderr: str, *names: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    for name in names:
        assert name in lines[0], (name, stderr)
    assert "Traceback" not in stderr


# -- help and start-up ------------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("infill", "complete", "chat", "generate", "score", "info", "models", "train"):
        assert command in result.stdout


def test_generation_flags_are_derived_from_the_options_model() -> None:
    import click

    from llada_cli.genopts import GenerationOption

    command = cli.commands["infill"]
    flags = {p.field_name: p for p in command.params if isinstance(p, GenerationOption)}
    assert list(flags) == list(GenerationOptions.model_fields)
    for name, field in GenerationOptions.model_fields.items():
        option = flags[name]
        assert option.help is not None and option.help.startswith((field.description or "").replace("`", ""))
        default = [] if field.default_factory is not None else field.default
        assert (list(option.default) if option.multiple else option.default) == default  # type: ignore[arg-type]
        for bound in field.metadata:
            if isinstance(option.type, (click.IntRange, click.FloatRange)):
                assert option.type.min == getattr(bound, "ge", getattr(bound, "gt", option.type.min))
                assert option.type.max == getattr(bound, "le", option.type.max)
    help_text = " ".join(run("infill", "--help").stdout.split())
    for name in GenerationOptions.model_fields:
        assert "--" + name.replace("_", "-") in help_text
    field = GenerationOptions.model_fields["max_tokens"]
    ge, le = (next(getattr(m, b) for m in field.metadata if hasattr(m, b)) for b in ("ge", "le"))
    assert f"[default: {field.default}; {ge}<=x<={le}]" in help_text  # the model's default and range, shown


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from llada_cli.main import cli\n"
        "for args in (['--help'], *[[c, '--help'] for c in cli.commands]):\n"
        "    assert cli.main(args, prog_name='llada', standalone_mode=False) == 0, args\n"
        "print([m for m in ('torch', 'rich', 'llada_sdk.api', 'llada_sdk.decoding.engine') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=clean_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("module", [False, True], ids=["llada", "python -m llada_cli"])
def test_executable_help_imports_no_torch(module: bool) -> None:
    assert LLADA is not None
    command = [sys.executable, "-X", "importtime", "-m", "llada_cli"] if module else [LLADA]
    for args in (["--help"], ["infill", "--help"], ["chat", "--help"]):
        out = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=60, env=clean_env(), stdin=subprocess.DEVNULL
        )
        assert out.returncode == 0, out.stderr
        assert "Usage: llada" in out.stdout
        if module:
            imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
            assert "torch" not in imported and "rich" not in imported


# -- the contract -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("module", [False, True], ids=["llada", "python -m llada_cli"])
def test_contract_json_commands(module: bool) -> None:
    out = exe("infill", INFILL, "--json", module=module)
    assert out.returncode == 0, out.stderr
    obj = one_json(out.stdout)
    assert RESULT_KEYS <= obj.keys() and obj["lengths"] == [2]
    assert obj["text"].startswith("Alice lives in") and obj["text"].endswith("works as a teacher.")

    out = exe("complete", "--suffix", SUFFIX, "--json", module=module)
    assert out.returncode == 0, out.stderr
    assert isinstance(one_json(out.stdout)["text"], str)

    out = exe("chat", "--json", input="Hello\n", module=module)
    assert out.returncode == 0, out.stderr
    assert isinstance(one_json(out.stdout)["text"], str)


# -- infill and complete ----------------------------------------------------------------------------


def test_infill_plain_text_from_stdin() -> None:
    result = run("infill", "--no-view", input="Zapur lives in [MASK:2] and works as a [MASK:2].\n")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Zapur lives in") and "[MASK" not in lines[0]


def test_infill_options_reach_the_call() -> None:
    result = run(
        "infill", "Zapur [MASK:6] in Duskmere.", "--steps", "4", "-o", "temperature", "0.5", "--seed", "3", "--json"
    )
    assert result.exit_code == 0, result.stderr
    obj = one_json(result.stdout)
    assert obj["forward_passes"] == 4 and obj["lengths"] == [6]


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (["Zapur lives in"], lambda o: o["lengths"] == []),
        (["--prefix", "Zapur lives in", "--max-tokens", "16"], lambda o: o["forward_passes"] <= 16),
        (["--suffix", SUFFIX], lambda o: len(o["lengths"]) == 1),
        (
            ["--prefix", "Zapur lives in", "--suffix", "and works as a weaver.", "--length", "2"],
            lambda o: o["lengths"] == [2],
        ),
    ],
    ids=["forward-text", "forward-prefix", "backward", "middle"],
)
def test_complete_directions(args: list[str], check: Any) -> None:
    result = run("complete", *args, "--json")
    assert result.exit_code == 0, result.stderr
    obj = one_json(result.stdout)
    assert RESULT_KEYS <= obj.keys() and isinstance(obj["text"], str)
    assert check(obj)


@pytest.mark.slow
def test_complete_and_infill_executables() -> None:
    out = exe("complete", "Zapur lives in", "--no-view", "--max-tokens", "8")
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("\n") and out.stderr == ""
    out = exe("infill", "--no-view", input=INFILL)
    assert out.returncode == 0, out.stderr
    assert "works as a teacher." in out.stdout


# -- chat -------------------------------------------------------------------------------------------


def test_chat_answers_stdin_and_message() -> None:
    result = run("chat", "--no-view", input="Where does Zapur live?\n")
    assert result.exit_code == 0, result.stderr
    assert ">>>" not in result.stdout
    result = run("chat", "What day comes after Monday?", "--system", "Be brief.", "--json")
    assert result.exit_code == 0, result.stderr
    assert RESULT_KEYS <= one_json(result.stdout).keys()


def test_chat_jsonl() -> None:
    lines = [
        json.dumps([{"role": "user", "content": "Where does Zapur live?"}]),
        "",
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "What day comes after Monday?"},
                ]
            }
        ),
    ]
    result = run("chat", "--jsonl", input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 2 and all(RESULT_KEYS <= a.keys() for a in answers)


def test_chat_load_flag_continues_a_saved_conversation(tmp_path: Path) -> None:
    history = tmp_path / "h.json"
    history.write_text(
        json.dumps(
            [
                {"role": "user", "content": "Where does Zapur live?"},
                {"role": "assistant", "content": "Zapur lives in Duskmere."},
            ]
        )
    )
    result = run("chat", "--load", str(history), "What does Zapur do?", "--json")
    assert result.exit_code == 0, result.stderr
    assert RESULT_KEYS <= one_json(result.stdout).keys()


# -- generate, score, info, models, train -----------------------------------------------------------


def test_generate_text_chat_and_ids() -> None:
    result = run("generate", "Zapur lives in", "--max-tokens", "16", "--block-length", "16", "--json")
    assert result.exit_code == 0, result.stderr
    obj = one_json(result.stdout)
    assert len(obj["ids"]) == 16 and obj["prompt_ids"][0] == 0 and isinstance(obj["text"], str)

    result = run("generate", "--chat", "Where does Zapur live?", "--max-tokens", "8", "--json")
    assert result.exit_code == 0, result.stderr
    assert len(one_json(result.stdout)["ids"]) == 8

    result = run("generate", "--ids", "0, 63 471", "--max-tokens", "8", "--steps", "4", "--block-length", "4")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith("\n")


def test_generate_ids_without_a_tokenizer_prints_the_generated_ids(no_tokenizer_model: Path) -> None:
    result = run("generate", "--ids", "0 5 6", "-m", str(no_tokenizer_model), "--max-tokens", "8")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.split()) == 8 and all(t.isdigit() for t in result.stdout.split())


def test_score_and_choose() -> None:
    result = run("score", "Zapur lives in", " Duskmere.", "--mc-num", "32", "--json")
    assert result.exit_code == 0, result.stderr
    obj = one_json(result.stdout)
    assert obj["log_likelihood"] <= 0

    result = run(
        "score", "Zapur lives in", "-c", " Duskmere.", "-c", " Quillby.", "-c", " Wexford.", "--mc-num", "32", "--json"
    )
    assert result.exit_code == 0, result.stderr
    obj = one_json(result.stdout)
    assert len(obj["scores"]) == 3 and obj["text"] == obj["choices"][obj["index"]]

    result = run("score", "Zapur lives in", "-c", " Duskmere.", "-c", " Quillby.", "--mc-num", "32")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and sum(line.startswith("*") for line in lines) == 1


def test_info() -> None:
    from llada_sdk.config import LLaDAConfig

    result = run("info", "--json")
    assert result.exit_code == 0, result.stderr
    obj = one_json(result.stdout)
    config = LLaDAConfig.from_json(BUNDLED_DIR / "config.json")
    assert obj["parameters"] == config.num_parameters()
    assert obj["dtype"] == "float32" and obj["device"] == "cpu" and obj["source"].startswith("bundled:")
    assert obj["special_ids"]["mask"] == config.mask_token_id and obj["tokenizer"] is True
    result = run("info", "--dtype", "bfloat16")
    assert result.exit_code == 0, result.stderr
    assert "bfloat16" in result.stdout and "special ids" in result.stdout


def _fake_hub_repo(cache: Path, repo_id: str, model_type: str) -> None:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    blob = repo / "blobs" / "cfg"
    blob.write_text(json.dumps({"model_type": model_type}))
    (snapshot / "config.json").symlink_to(os.path.relpath(blob, snapshot))


def test_models_lists_bundled_and_cached_llada_repos_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_hub_repo(tmp_path, "GSAI-ML/LLaDA-8B-Instruct", "llada")
    _fake_hub_repo(tmp_path, "someone/gpt2", "gpt2")

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("llada models must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    result = run("models", "--json", env={"HF_HUB_CACHE": str(tmp_path)})
    assert result.exit_code == 0, result.stderr
    found = one_json(result.stdout)["models"]
    assert [m["name"] for m in found] == ["llada-tiny-kb", "GSAI-ML/LLaDA-8B-Instruct"]
    assert found[1]["revision"] == "main" and found[1]["source"] == "hub"
    result = run("models", env={"HF_HUB_CACHE": str(tmp_path / "missing")})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["NAME", "SOURCE"] and "llada-tiny-kb" in result.stdout


def test_train_delegates_to_the_training_entry_point() -> None:
    result = run("train", "--", "--help")
    assert result.exit_code == 0
    assert "--out" in result.stdout and "--steps" in result.stdout
    assert "python -m llada_sdk.training" in " ".join(run("train", "--help").stdout.split())  # however click wraps it


@pytest.mark.slow
def test_other_commands_as_executables(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    chat = [{"role": "user", "content": "Where does Ana live?"}, {"role": "assistant", "content": "In Lima."}]
    data.write_text(json.dumps({"text": "Ana lives in Lima."}) + "\n" + json.dumps({"messages": chat}) + "\n")
    out = exe(
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--seq-len",
        "160",
        "--d-model",
        "32",
        "--n-layers",
        "1",
        "--n-heads",
        "2",
        "--mlp-hidden-size",
        "64",
        "--vocab-size",
        "300",
        "--warmup",
        "1",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["steps"] == 2
    out = exe("info", "-m", str(tmp_path / "run"), "--json", module=True)
    assert out.returncode == 0, out.stderr
    assert one_json(out.stdout)["config"]["d_model"] == 32
    out = exe(
        "generate", "--ids", "0 5", "--max-tokens", "4", "--block-length", "4", "-m", str(tmp_path / "run"), "--json"
    )
    assert out.returncode == 0, out.stderr
    assert len(one_json(out.stdout)["ids"]) == 4
    out = exe("score", "Zapur lives in", " Duskmere.", "--mc-num", "16")
    assert out.returncode == 0, out.stderr
    float(out.stdout)
    out = exe("models", module=True)
    assert out.returncode == 0 and "llada-tiny-kb" in out.stdout


# -- runtime errors ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_corrupt_checkpoint_is_a_runtime_error(no_tokenizer_model: Path) -> None:
    weights = no_tokenizer_model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    out = exe("info", "-m", str(no_tokenizer_model))
    assert out.returncode == 1
    assert_one_line_error(out.stderr, "model.safetensors")


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import llada_sdk._deps
    from llada_sdk.errors import MissingExtraError

    def missing() -> None:
        raise MissingExtraError("torch", "torch")

    monkeypatch.setattr(llada_sdk._deps, "require_torch", missing)
    result = run("info")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "pip install 'llada-sdk[torch]'")


@pytest.mark.slow
def test_debug_shows_the_traceback(no_tokenizer_model: Path) -> None:
    result = run("--debug", "infill", INFILL, "-m", str(no_tokenizer_model))
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "TokenizerError" in result.stderr
    out = exe("--debug", "infill", INFILL, "-m", str(no_tokenizer_model))
    assert out.returncode == 1 and "Traceback" in out.stderr


# -- the live view ----------------------------------------------------------------------------------


def test_the_view_says_when_it_cannot_run() -> None:
    result = run("complete", "Zapur lives in", "--view")
    assert result.exit_code == 0
    assert "note: --view ignored (stdout is not a terminal)" in result.stderr


def test_canvas_view_marks_masks_and_highlights_the_latest_step() -> None:
    from llada_cli.view import FRESH_STYLE, MASK, MASK_STYLE, CanvasView
    from llada_sdk import CanvasEvent
    from llada_sdk.decoding.engine import StepEvent

    words = {10: "Zapur", 11: " lives", 12: " in", 13: " Duskmere", 14: "."}
    view = CanvasView(lambda t: words.get(t, "?"), lambda t: t in (0, 1), context=True)
    assert view.update(CanvasEvent(ids=[[0, 10, 11, 12, 2, 2, 1]], mask_id=2, region=(4, 6)))
    assert view.render().renderables[0].plain == f"Zapur lives in{MASK}{MASK}"  # type: ignore[union-attr]
    assert view.update(StepEvent(block=0, step=0, filled=[[(4, 13)]], forward_passes=1))
    text = view.render().renderables[0]
    assert text.plain == f"Zapur lives in Duskmere{MASK}"  # type: ignore[union-attr]
    styles = {text.plain[s.start : s.end]: str(s.style) for s in text.spans}  # type: ignore[union-attr]
    assert styles == {" Duskmere": FRESH_STYLE, MASK: MASK_STYLE}
    view.update(StepEvent(block=0, step=1, filled=[[(5, 14)]], forward_passes=2))
    text = view.render().renderables[0]
    styles = {text.plain[s.start : s.end]: str(s.style) for s in text.spans}  # type: ignore[union-attr]
    assert styles == {".": FRESH_STYLE}  # the previous step's token is no longer highlighted


def test_live_view_on_a_terminal_console(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from llada_cli import view as view_module
    from llada_sdk import LLaDA

    monkeypatch.setattr(view_module, "REFRESH_S", 0.0)
    llm = LLaDA.from_pretrained(None, device="cpu")
    buffer = StringIO()
    console = Console(force_terminal=True, file=buffer, width=100, color_system="standard")
    result = view_module.run_stream(
        llm.stream_infill("Zapur lives in [MASK:3] and works as a weaver."),
        view=view_module.canvas_view(llm, context=True),
        console=console,
    )
    drawn = buffer.getvalue()
    assert view_module.MASK in drawn and "\x1b[" in drawn  # masks drawn, with styles
    assert "\x1b[1;30;102m" in drawn  # bold black on bright green: the latest step's tokens
    assert drawn.rstrip().endswith("\x1b[2K") or "\x1b[2K" in drawn[drawn.rindex(view_module.MASK) :]  # cleared
    assert result.text.startswith("Zapur lives in") and "[MASK" not in result.text
