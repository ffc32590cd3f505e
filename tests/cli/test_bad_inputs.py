"""The bad-input corpus: every entry point answers nonsense with a clear error.

Each case asserts the exception type (Python API) or the exit code (CLI: 2 usage, 1 runtime), that
no traceback is printed, and that the message names the parameter or file at fault. Add a case
whenever a new entry point appears.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llada_cli.common import MAX_INPUT_BYTES
from llada_cli.main import cli
from llada_sdk import LLaDA
from llada_sdk.errors import CheckpointError, ConfigError, ModelNotFoundError
from llada_sdk.loading import BUNDLED_DIR

USER = [{"role": "user", "content": "Where does Zapur live?"}]

# (id, call on the bundled model, exception type, words the message must contain)
API_CASES: list[tuple[str, Callable[[Any], Any], type[BaseException], tuple[str, ...]]] = [
    ("infill-int", lambda m: m.infill(123), TypeError, ("`text`", "int")),
    ("infill-bytes", lambda m: m.infill(b"x [MASK]"), TypeError, ("`text`", "decode")),
    ("infill-none", lambda m: m.infill(None), TypeError, ("`text`",)),
    ("infill-no-span", lambda m: m.infill("no span here"), ValueError, ("`text`", "[MASK]")),
    ("infill-zero-span", lambda m: m.infill("a [MASK:0] b"), ValueError, ("[MASK:0]",)),
    ("infill-bad-span", lambda m: m.infill("a [MASK:abc] b"), ValueError, ("[MASK:abc]",)),
    ("infill-huge-span", lambda m: m.infill("a [MASK:100000] b"), ValueError, ("100", "context window", "384")),
    (
        "infill-allowed-count",
        lambda m: m.infill("a [MASK] b [MASK]", allowed_tokens=[None]),
        ValueError,
        ("`allowed_tokens`", "2"),
    ),
    ("complete-int", lambda m: m.complete(42), TypeError, ("`prefix`", "int")),
    ("score-surrogate", lambda m: m.score("a\udcff", " b"), ValueError, ("`prompt`", "Unicode")),
    (
        "schema-surrogate",
        lambda m: m.fill_schema("a\udcff", {"type": "object", "properties": {"a": {"type": "string"}}}),
        ValueError,
        ("`prompt`", "Unicode"),
    ),
    ("complete-suffix-int", lambda m: m.complete(suffix=42), TypeError, ("`suffix`",)),
    ("complete-nothing", lambda m: m.complete(), ValueError, ("`prefix`", "`suffix`")),
    ("complete-length-0", lambda m: m.complete("a", "b", length=0), ValueError, ("`length`", "0")),
    ("complete-length-text", lambda m: m.complete("a", "b", length="long"), ValueError, ("`length`", "long")),
    ("complete-100kb", lambda m: m.complete("Zapur lives in Duskmere. " * 4000), ValueError, ("context window", "384")),
    ("max-tokens-0", lambda m: m.complete("a", max_tokens=0), ValueError, ("max_tokens",)),
    (
        "max-tokens-window",
        lambda m: m.complete("a", max_tokens=512, block_length=None),
        ValueError,
        ("context window",),
    ),
    ("options-int", lambda m: m.complete("a", options=5), TypeError, ("`options`", "GenerationOptions", "int")),
    ("options-unknown", lambda m: m.complete("a", options={"bogus": 1}), ValueError, ("bogus",)),
    ("override-unknown", lambda m: m.complete("a", temprature=0.5), ValueError, ("temprature",)),
    ("temperature-nan", lambda m: m.complete("a", temperature=float("nan")), ValueError, ("temperature", "finite")),
    ("temperature-negative", lambda m: m.complete("a", temperature=-1), ValueError, ("temperature",)),
    (
        "steps-over-tokens",
        lambda m: m.complete("a", steps=64, max_tokens=32),
        ValueError,
        ("`steps` (64)", "`max_tokens` (32)"),
    ),
    ("stop-empty", lambda m: m.complete("a", stop=[""]), ValueError, ("`stop`",)),
    ("cache-cfg", lambda m: m.complete("a", cache="prefix", cfg_scale=1.0), ValueError, ("`cache`", "`cfg_scale`")),
    (
        "block-divides",
        lambda m: m.complete("a", max_tokens=16, block_length=7),
        ValueError,
        ("`block_length` (7)", "16"),
    ),
    ("remasking", lambda m: m.complete("a", remasking="best"), ValueError, ("remasking", "best")),
    ("generate-text", lambda m: m.generate("Zapur lives in"), TypeError, ("`prompt_ids`",)),
    ("generate-ragged", lambda m: m.generate([[0, 5, 6], [0, 5]]), ValueError, ("`prompt_ids`", "same length")),
    ("generate-ints", lambda m: m.generate([0, 5, 6]), TypeError, ("`prompt_ids`",)),
    (
        "generate-gen-length",
        lambda m: m.generate([[0, 5]], gen_length=16, block_length=7),
        ValueError,
        ("`block_length` (7)", "`gen_length` is `max_tokens`"),
    ),
    ("chat-string", lambda m: m.chat("a string"), TypeError, ("`messages`", "str")),
    ("chat-empty", lambda m: m.chat([]), ValueError, ("`messages`", "empty")),
    ("chat-role", lambda m: m.chat([{"role": "robot", "content": "x"}]), ValueError, ("role", "robot", "user")),
    ("chat-no-content", lambda m: m.chat([{"role": "user"}]), TypeError, ("content",)),
    ("chat-content-int", lambda m: m.chat([{"role": "user", "content": 5}]), TypeError, ("content", "int")),
    ("chat-item-str", lambda m: m.chat(["hello"]), TypeError, ("`messages[0]`", "str")),
    (
        "chat-batch-role",
        lambda m: m.chat([USER, [{"role": "bot", "content": "x"}]]),
        ValueError,
        ("`messages[1][0]['role']`",),
    ),
    ("session-system-int", lambda m: m.session(system=123), TypeError, ("`system`", "int")),
    ("session-messages-str", lambda m: m.session(messages="hi"), TypeError, ("`messages`",)),
    ("session-send-int", lambda m: m.session().send(123), TypeError, ("`text`",)),
    ("session-send-bytes", lambda m: m.session().send(b"hi"), TypeError, ("`text`", "decode")),
    ("session-options", lambda m: m.session(options=[1]), TypeError, ("`options`",)),
    ("score-bytes", lambda m: m.score("a", b"b"), TypeError, ("`continuation`",)),
    ("score-mixed", lambda m: m.score("a", [1, 2]), TypeError, ("both be text or both be token ids",)),
    (
        "score-batch",
        lambda m: m.score("a", " b", mc_num=10, batch_size=4),
        ValueError,
        ("`batch_size` (4)", "`mc_num` (10)"),
    ),
    ("score-options", lambda m: m.score("a", " b", options=3), TypeError, ("`options`", "ScoreOptions")),
    ("score-empty", lambda m: m.score([0, 5], []), ValueError, ("`continuation`",)),
    ("choose-string", lambda m: m.choose("a", "bc"), TypeError, ("`choices`", "str")),
    ("choose-empty", lambda m: m.choose("a", []), ValueError, ("`choices`",)),
    ("choose-item", lambda m: m.choose("a", [" b", 3]), TypeError, ("`choices[1]`", "int")),
    # text that is not Unicode (undecodable bytes decoded with errors="surrogateescape")
    ("complete-surrogate", lambda m: m.complete("abc\udcff"), ValueError, ("`prefix`", "lone surrogate", "index 3")),
    ("suffix-surrogate", lambda m: m.complete("a", "\udcff"), ValueError, ("`suffix`", "lone surrogate")),
    ("infill-surrogate", lambda m: m.infill("\udcff [MASK]"), ValueError, ("`text`", "lone surrogate")),
    (
        "chat-surrogate",
        lambda m: m.chat([{"role": "user", "content": "\ud800"}]),
        ValueError,
        ("`messages[0]['content']`", "lone surrogate"),
    ),
    ("session-send-surrogate", lambda m: m.session().send("\udcff"), ValueError, ("`text`", "lone surrogate")),
    ("session-system-surrogate", lambda m: m.session(system="\udcff"), ValueError, ("`system`", "lone surrogate")),
    ("choose-surrogate", lambda m: m.choose("\udcff", [" a"]), ValueError, ("`prompt`", "lone surrogate")),
    ("score-surrogate", lambda m: m.score("a", " \udcff"), ValueError, ("lone surrogate", "index 1")),
    # far more text than the context window holds: refused before it is tokenized whole
    ("complete-10mb", lambda m: m.complete("Zapur " * 2_000_000), ValueError, ("12,000,000 characters", "384")),
    (
        "chat-10mb",
        lambda m: m.chat([{"role": "user", "content": "Zapur " * 2_000_000}]),
        ValueError,
        ("`messages`", "context window", "384"),
    ),
    ("session-10mb", lambda m: m.session().send("Zapur " * 2_000_000), ValueError, ("`text`", "context window", "384")),
]


@pytest.mark.parametrize(("call", "exc", "words"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_rejects(
    bundled: Any, call: Callable[[Any], Any], exc: type[BaseException], words: tuple[str, ...]
) -> None:
    with pytest.raises(exc) as info:
        call(bundled)
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)


def test_options_as_a_dict_are_accepted(bundled: Any) -> None:
    a = bundled.complete("Zapur lives in", options={"max_tokens": 8})
    b = bundled.complete("Zapur lives in", max_tokens=8)
    assert a.ids == b.ids and len(a.ids) == len(b.ids)


LOAD_CASES: list[tuple[str, dict[str, Any], type[BaseException], tuple[str, ...]]] = [
    ("backend", {"backend": "tpu"}, ValueError, ("`backend`", "'torch'", "tpu")),
    ("backend-type", {"backend": 3}, TypeError, ("`backend`",)),
    ("device", {"device": "toaster"}, ValueError, ("`device`", "toaster")),
    ("device-cuda", {"device": "cuda"}, ValueError, ("CUDA is not available",)),
    ("dtype", {"dtype": "int4"}, ValueError, ("`dtype`", "int4")),
    ("torch-option", {"providers": ["CPU"]}, TypeError, ("providers",)),
]


@pytest.mark.parametrize(("kwargs", "exc", "words"), [c[1:] for c in LOAD_CASES], ids=[c[0] for c in LOAD_CASES])
def test_loading_rejects(kwargs: dict[str, Any], exc: type[BaseException], words: tuple[str, ...]) -> None:
    with pytest.raises(exc) as info:
        LLaDA.from_pretrained(**kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def _broken_checkpoint(tmp: Path, name: str) -> tuple[Path, str]:
    """A copy of the bundled model broken in one way; returns it and the file its error must name."""
    folder = tmp / name
    shutil.copytree(BUNDLED_DIR, folder)
    config = json.loads((folder / "config.json").read_text())
    if name == "config-not-json":
        (folder / "config.json").write_text("{ not json")
        return folder, "config.json"
    if name == "config-a-list":
        (folder / "config.json").write_text("[1, 2]")
        return folder, "config.json"
    if name == "config-missing":
        (folder / "config.json").unlink()
        return folder, "config.json"
    if name == "config-unsupported":
        config["alibi"] = True
        (folder / "config.json").write_text(json.dumps(config))
        return folder, "alibi"
    if name == "config-bad-heads":
        config["n_heads"] = 3
        (folder / "config.json").write_text(json.dumps(config))
        return folder, "n_heads"
    if name == "weights-truncated":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
        return folder, "model.safetensors"
    if name == "weights-missing":
        (folder / "model.safetensors").unlink()
        return folder, "model.safetensors"
    if name == "weights-garbage":
        (folder / "model.safetensors").write_bytes(b"\x00" * 64)
        return folder, "model.safetensors"
    if name == "tokenizer-corrupt":
        (folder / "tokenizer.json").write_text("{ broken")
        return folder, "tokenizer.json"
    raise AssertionError(name)


CHECKPOINTS = {
    "config-not-json": ConfigError,
    "config-a-list": ConfigError,
    "config-missing": ConfigError,
    "config-unsupported": ConfigError,
    "config-bad-heads": ConfigError,
    "weights-truncated": CheckpointError,
    "weights-missing": CheckpointError,
    "weights-garbage": CheckpointError,
    "tokenizer-corrupt": Exception,
}


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_broken_checkpoints_name_the_file(tmp_path: Path, name: str) -> None:
    folder, names = _broken_checkpoint(tmp_path, name)
    with pytest.raises(CHECKPOINTS[name]) as info:
        LLaDA.from_pretrained(folder, device="cpu")
    assert names in str(info.value)
    result = CliRunner().invoke(cli, ["info", "-m", str(folder)])
    assert result.exit_code in (1, 2), result.output
    assert_one_line(result.output, names)


def test_missing_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="nowhere"):
        LLaDA.from_pretrained(tmp_path / "nowhere")


def assert_one_line(output: str, *words: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ") and "Traceback" not in output, output
    for word in words:
        assert word in lines[0], (word, output)


CLI_CASES: list[tuple[str, list[str], str | bytes | None, int, tuple[str, ...]]] = [
    ("steps-0", ["infill", "x [MASK]", "--steps", "0"], None, 2, ("--steps",)),
    ("temperature-nan", ["infill", "x [MASK]", "--temperature", "nan"], None, 2, ("--temperature", "finite")),
    ("temperature-inf", ["complete", "x", "--temperature", "inf"], None, 2, ("--temperature", "finite")),
    ("temperature-negative", ["infill", "x [MASK]", "--temperature", "-1"], None, 2, ("--temperature",)),
    (
        "block-divides",
        ["infill", "x [MASK]", "--block-length", "7", "--max-tokens", "16"],
        None,
        2,
        ("--block-length", "--max-tokens"),
    ),
    ("unknown-flag", ["infill", "x [MASK]", "--bogus"], None, 2, ("--bogus",)),
    ("no-span", ["infill", "no span here"], None, 2, ("TEXT", "[MASK]")),
    ("huge-span", ["infill", "x [MASK:100000]"], None, 2, ("context window", "384")),
    ("empty-text", ["infill", ""], None, 2, ("TEXT", "empty")),
    ("empty-chat", ["chat", ""], None, 2, ("MESSAGE", "empty")),
    ("blank-stdin", ["complete"], "   \n", 2, ("TEXT", "stdin is empty")),
    ("bad-utf8-stdin", ["infill"], b"\xff\xfe x [MASK]", 2, ("TEXT", "UTF-8")),
    ("bad-utf8-chat", ["chat"], b"caf\xe9?", 2, ("MESSAGE", "UTF-8")),
    ("stop-empty", ["complete", "x", "--stop", ""], None, 2, ("--stop", "empty")),
    (
        "steps-over-tokens",
        ["complete", "x", "--steps", "64", "--max-tokens", "32"],
        None,
        2,
        ("--steps", "--max-tokens"),
    ),
    ("cache-cfg", ["complete", "x", "--cache", "prefix", "--cfg-scale", "1"], None, 2, ("--cache", "--cfg-scale")),
    (
        "generate-cache-cfg",
        ["generate", "x", "--cache", "prefix", "--cfg-scale", "1"],
        None,
        2,
        ("--cache", "--cfg-scale"),
    ),
    ("generate-bad-ids", ["generate", "--ids", "a b"], None, 2, ("TEXT", "token ids")),
    ("generate-negative-ids", ["generate", "--ids", "0 -5"], None, 2, ("TEXT",)),
    ("generate-ids-chat", ["generate", "--ids", "--chat", "0 5"], None, 2, ("--ids", "--chat")),
    ("max-tokens-0", ["complete", "x", "--max-tokens", "0"], None, 2, ("--max-tokens",)),
    (
        "max-tokens-window",
        ["complete", "x", "--max-tokens", "512", "--block-length", "none"],
        None,
        2,
        ("context window",),
    ),
    ("model-missing", ["infill", "x [MASK]", "-m", "/no/such/dir"], None, 2, ("--model", "/no/such/dir")),
    (
        "model-file",
        ["infill", "x [MASK]", "-m", str(BUNDLED_DIR / "config.json")],
        None,
        2,
        ("--model", "config.json", "file"),
    ),
    ("device", ["infill", "x [MASK]", "--device", "toaster"], None, 2, ("--device", "toaster")),
    ("dtype", ["infill", "x [MASK]", "--dtype", "int4"], None, 2, ("--dtype", "int4")),
    ("score-batch", ["score", "a", " b", "--mc-num", "10", "--batch-size", "4"], None, 2, ("--batch-size", "--mc-num")),
    ("score-both", ["score", "a", " b", "-c", " c"], None, 2, ("CONTINUATION", "--choice")),
    ("score-nan", ["score", "a", " b", "--cfg-scale", "nan"], None, 2, ("--cfg-scale", "finite")),
    ("option-unknown", ["chat", "-o", "nope", "1", "hi"], None, 2, ("nope",)),
    ("option-bad-value", ["infill", "x [MASK]", "-o", "steps", "many"], None, 2, ("steps", "many")),
    ("length-0", ["complete", "--prefix", "a", "--suffix", "b", "--length", "0"], None, 2, ("--length",)),
    ("remasking", ["infill", "x [MASK]", "--remasking", "best"], None, 2, ("--remasking", "best")),
    ("threshold", ["infill", "x [MASK]", "--threshold", "2"], None, 2, ("--threshold",)),
    ("seed", ["infill", "x [MASK]", "--seed", "-3"], None, 2, ("--seed",)),
    ("no-command", ["frobnicate"], None, 2, ("frobnicate",)),
    # argv bytes that are not UTF-8 reach click as lone surrogates
    ("complete-bad-utf8-arg", ["complete", "abc\udcff\udcfe"], None, 2, ("TEXT", "not valid UTF-8", "0xff")),
    ("suffix-bad-utf8", ["complete", "--suffix", "\udcff"], None, 2, ("--suffix", "UTF-8")),
    ("system-bad-utf8", ["chat", "--system", "\udcff", "hi"], None, 2, ("--system", "UTF-8")),
    ("stop-bad-utf8", ["complete", "x", "--stop", "\udcff"], None, 2, ("--stop", "UTF-8")),
    ("choice-bad-utf8", ["score", "a", "-c", "\udcff"], None, 2, ("--choice", "UTF-8")),
    # inputs over the 1 MiB limit: stdin and arguments are refused, not read whole
    ("stdin-over-limit", ["chat"], b"x" * (MAX_INPUT_BYTES + 1), 2, ("MESSAGE", "stdin", str(MAX_INPUT_BYTES))),
    ("arg-over-limit", ["infill", "x" * (MAX_INPUT_BYTES + 1)], None, 2, ("TEXT", str(MAX_INPUT_BYTES))),
    ("chat-max-tokens-window", ["chat", "--max-tokens", "1024", "hi"], None, 2, ("`max_tokens` (1024)", "384")),
]


@pytest.mark.parametrize(("args", "stdin", "code", "words"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_rejects(args: list[str], stdin: str | bytes | None, code: int, words: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, args, input=stdin)
    assert result.exit_code == code, result.output
    assert_one_line(result.output, *words)


CHAT_FILES: list[tuple[str, str, tuple[str, ...]]] = [
    ("not-json", "{ nope", ("--load",)),
    ("not-a-list", '{"role": "user"}', ("--load", "list")),
    ("no-role", '[{"content": "hi"}]', ("--load", "role")),
    ("bad-role", '[{"role": "robot", "content": "hi"}]', ("--load", "robot")),
    ("content-int", '[{"role": "user", "content": 5}]', ("--load", "content")),
    ("not-utf8", b"\xff\xfe[]".decode("latin-1"), ("--load",)),
    ("surrogate", '[{"role": "user", "content": "\\udcff"}]', ("--load", "message 0", "UTF-8")),
    ("over-limit", "[" + " " * MAX_INPUT_BYTES + "]", ("--load", str(MAX_INPUT_BYTES))),
]


@pytest.mark.parametrize(("content", "words"), [c[1:] for c in CHAT_FILES], ids=[c[0] for c in CHAT_FILES])
def test_bad_chat_files(tmp_path: Path, content: str, words: tuple[str, ...]) -> None:
    path = tmp_path / "chat.json"
    path.write_text(content, encoding="latin-1")
    result = CliRunner().invoke(cli, ["chat", "--load", str(path), "hello"])
    assert result.exit_code == 2, result.output
    assert_one_line(result.output, *words)
    missing = CliRunner().invoke(cli, ["chat", "--load", str(tmp_path / "none.json"), "hello"])
    assert missing.exit_code == 2 and "none.json" in missing.output


def test_the_corpus_is_large() -> None:
    total = len(API_CASES) + len(LOAD_CASES) + len(CHECKPOINTS) + len(CLI_CASES) + len(CHAT_FILES)
    assert total >= 60
