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
    ("score-prompt-surrogate", lambda m: m.score("a\udcff", " b"), ValueError, ("`prompt`", "Unicode")),
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
    ("score-continuation-surrogate", lambda m: m.score("a", " \udcff"), ValueError, ("lone surrogate", "index 1")),
    # far more text than the context window holds: refused before it is tokenized whole
    ("complete-10mb", lambda m: m.complete("Zapur " * 2_000_000), ValueError, ("12,000,000 characters", "384")),
    (
        "chat-10mb",
        lambda m: m.chat([{"role": "user", "content": "Zapur " * 2_000_000}]),
        ValueError,
        ("`messages`", "context window", "384"),
    ),
    ("session-10mb", lambda m: m.session().send("Zapur " * 2_000_000), ValueError, ("`text`", "context window", "384")),
    # costs that grow without bound are refused before any model call
    (
        "infill-five-auto",
        lambda m: m.infill("a [MASK:auto] b [MASK:auto] c [MASK:auto] d [MASK:auto] e [MASK:auto] f"),
        ValueError,
        ("`text`", "5 [MASK:auto] spans", "limit of 4"),
    ),
    # schema-exact: a range no value fits is an error naming the field
    (
        "schema-empty-range",
        lambda m: m.fill_schema(
            "x", {"type": "object", "properties": {"n": {"type": "integer", "minimum": 10, "maximum": 2}}}
        ),
        ValueError,
        ("$.n", "empty range", "minimum 10, maximum 2"),
    ),
    (
        "schema-exclusive-int",
        lambda m: m.fill_schema(
            "x",
            {"type": "object", "properties": {"n": {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 6}}},
        ),
        ValueError,
        ("$.n", "empty range", "x > 5 and x < 6"),
    ),
    # LangChain fields are checked when the model is built, not at its first call
    ("langchain-temperature", lambda m: _chat_llada(m, temperature=-1), ValueError, ("`temperature`", "-1")),
    ("langchain-max-tokens", lambda m: _chat_llada(m, max_tokens=-5), ValueError, ("max_tokens",)),
    ("langchain-seed", lambda m: _chat_llada(m, seed=2**70), ValueError, ("seed",)),
    ("langchain-timeout-nan", lambda m: _chat_llada(m, timeout=float("nan")), ValueError, ("timeout",)),
]


def _chat_llada(m: Any, **fields: Any) -> Any:
    from langchain_llada import ChatLLaDA

    return ChatLLaDA.from_llada(m, **fields)


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
    (
        "onnx-not-a-bundle",
        {"path_or_repo_id": BUNDLED_DIR, "backend": "onnx"},
        CheckpointError,
        ("not an ONNX bundle", "llada export"),
    ),
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


FILE = "<file>"  # in a case's arguments: a file holding the case's `file` bytes (missing when it has none)
NO_TOKENIZER = "<no-tokenizer>"  # in a case's arguments: the bundled model without its tokenizer files
MODEL_COPY = "<model-copy>"  # in a case's arguments: a copy of the bundled model (every file of it must survive)
FOLDER = "<folder>"  # in a case's arguments: a folder holding precious.txt (which must survive)
HOSTILE = "<hostile-template>"  # in a case's arguments: the bundled model with a chat template that never ends


def bad(
    id: str,
    args: list[str],
    *words: str,
    stdin: str | bytes | None = None,
    code: int = 2,
    env: dict[str, str] | None = None,
    file: bytes | None = None,
) -> Any:
    """A CLI case: ``llada ARGS`` exits with ``code`` (2 usage, 1 runtime) after one ``Error:`` line on
    stderr that holds every one of ``words``, and prints nothing on stdout."""
    return pytest.param(args, stdin, code, words, env or {}, file, id=id)


CLI_CASES = [
    # generation options: ranges, combinations, -o
    bad("steps-0", ["infill", "x [MASK]", "--steps", "0"], "--steps", "1<=x<=8192"),
    bad("temperature-nan", ["infill", "x [MASK]", "--temperature", "nan"], "--temperature", "finite"),
    bad("temperature-inf", ["complete", "x", "--temperature", "inf"], "--temperature", "finite"),
    bad("temperature-negative", ["infill", "x [MASK]", "--temperature", "-1"], "--temperature", "0.0<=x<=100.0"),
    bad(
        "block-divides",
        ["infill", "x [MASK]", "--block-length", "7", "--max-tokens", "16"],
        "--block-length",
        "--max-tokens",
    ),
    bad(
        "steps-per-block",
        ["infill", "x [MASK]", "--max-tokens", "12", "--steps", "5", "--block-length", "4"],
        "--steps",
        "divisible",
    ),
    bad("steps-over-tokens", ["complete", "x", "--steps", "64", "--max-tokens", "32"], "--steps", "--max-tokens"),
    bad("max-tokens-0", ["complete", "x", "--max-tokens", "0"], "--max-tokens"),
    bad("max-tokens-window", ["complete", "x", "--max-tokens", "512", "--block-length", "none"], "context window"),
    bad(
        "chat-max-tokens-window",
        ["chat", "--max-tokens", "1024", "hi"],
        "`max_tokens` (1024)",
        "384",
        "max_sequence_length",
    ),
    bad("stop-empty", ["complete", "x", "--stop", ""], "--stop", "empty"),
    bad("cache-cfg", ["complete", "x", "--cache", "prefix", "--cfg-scale", "1"], "--cache", "--cfg-scale"),
    bad("generate-cache-cfg", ["generate", "x", "--cache", "prefix", "--cfg-scale", "1"], "--cache", "--cfg-scale"),
    bad("remasking", ["infill", "x [MASK]", "--remasking", "best"], "--remasking", "best", "low_confidence"),
    bad("threshold", ["infill", "x [MASK]", "--threshold", "2"], "--threshold"),
    bad("seed", ["infill", "x [MASK]", "--seed", "-3"], "--seed"),
    bad("option-unknown", ["infill", "x [MASK]", "-o", "nope", "1"], "nope", "max_tokens"),
    bad("option-unknown-chat", ["chat", "-o", "nope", "1", "hi"], "nope", "max_tokens"),
    bad("option-bad-value", ["infill", "x [MASK]", "-o", "steps", "many"], "steps", "many"),
    bad("option-out-of-range", ["infill", "x [MASK]", "-o", "steps", "0"], "-o steps", "1<=x<=8192"),
    bad("generate-option-unused", ["generate", "-o", "early_stop", "true", "x"], "early_stop"),
    bad("unknown-flag", ["infill", "x [MASK]", "--bogus"], "--bogus"),
    bad("no-command", ["frobnicate"], "frobnicate"),
    # the text: spans, emptiness, encodings, sizes
    bad("no-span", ["infill", "no span here"], "TEXT", "[MASK]"),
    bad("huge-span", ["infill", "x [MASK:100000]"], "context window", "384"),
    bad("empty-text", ["infill", ""], "TEXT", "empty"),
    bad("empty-chat", ["chat", ""], "MESSAGE", "empty"),
    bad("blank-stdin", ["complete"], "TEXT", "stdin is empty", stdin="   \n"),
    bad("bad-utf8-stdin", ["infill"], "TEXT", "UTF-8", stdin=b"\xff\xfe x [MASK]"),
    bad("bad-utf8-chat", ["chat"], "MESSAGE", "UTF-8", stdin=b"caf\xe9?"),
    bad("stdin-over-limit", ["chat"], "MESSAGE", "stdin", str(MAX_INPUT_BYTES), stdin=b"x" * (MAX_INPUT_BYTES + 1)),
    bad("arg-over-limit", ["infill", "x" * (MAX_INPUT_BYTES + 1)], "TEXT", str(MAX_INPUT_BYTES)),
    bad(
        "complete-arg-over-limit",
        ["complete", "x" * (MAX_INPUT_BYTES + 1)],
        "TEXT",
        str(MAX_INPUT_BYTES + 1),
        str(MAX_INPUT_BYTES),
    ),
    bad("chat-jsonl-no-content", ["chat", "--jsonl"], "stdin line 1", "content", stdin='[{"role": "user"}]\n'),
    # argv bytes that are not UTF-8 reach click as lone surrogates
    bad("complete-bad-utf8-arg", ["complete", "abc\udcff\udcfe"], "TEXT", "not valid UTF-8", "0xff"),
    bad("generate-bad-utf8-arg", ["generate", "\udcff"], "TEXT", "not valid UTF-8", "0x"),
    bad("suffix-bad-utf8", ["complete", "--prefix", "a", "--suffix", "\udcff"], "--suffix", "not valid UTF-8", "0x"),
    bad("system-bad-utf8", ["chat", "--system", "\udcff", "hi"], "--system", "not valid UTF-8", "0x"),
    bad("stop-bad-utf8", ["complete", "x", "--stop", "\udcff"], "--stop", "not valid UTF-8", "0x"),
    bad("option-stop-bad-utf8", ["infill", "x [MASK]", "-o", "stop", "\udcff"], "-o stop", "not valid UTF-8", "0x"),
    bad("choice-bad-utf8", ["score", "a", "-c", "\udcff"], "--choice", "not valid UTF-8", "0x"),
    bad("continuation-bad-utf8", ["score", "a", "\udcff"], "CONTINUATION", "not valid UTF-8", "0x"),
    # complete: which of text, --prefix, --suffix and --length go together
    bad("complete-text-and-prefix", ["complete", "a", "--prefix", "b"], "--prefix"),
    bad("complete-length-without-suffix", ["complete", "Zapur lives in", "--length", "3"], "--length", "--suffix"),
    bad("complete-length-0", ["complete", "--prefix", "a", "--suffix", "b", "--length", "0"], "--length"),
    bad("complete-length-text", ["complete", "--suffix", "x", "--length", "many"], "--length"),
    bad("complete-length-over-max-tokens", ["complete", "--suffix", "x", "--length", "40"], "--length", "--max-tokens"),
    # generate: token ids
    bad("generate-bad-ids", ["generate", "--ids", "1 two"], "TEXT", "token ids", "integers"),
    bad("generate-negative-ids", ["generate", "--ids", "0 -5"], "TEXT"),
    bad("generate-ids-out-of-vocabulary", ["generate", "--ids", "0 99999", "--max-tokens", "8"], "TEXT", "99999"),
    bad("generate-ids-chat", ["generate", "--ids", "--chat", "0 5"], "--ids", "--chat"),
    # score
    bad("score-no-continuation", ["score", "Zapur lives in"], "CONTINUATION", "--choice"),
    bad("score-both", ["score", "a", " b", "-c", " c"], "CONTINUATION", "--choice"),
    bad("score-batch", ["score", "a", " b", "--mc-num", "10", "--batch-size", "4"], "--batch-size", "--mc-num"),
    bad("score-nan", ["score", "a", " b", "--cfg-scale", "nan"], "--cfg-scale", "finite"),
    bad("score-seed", ["score", "a", " x", "--seed", "-2"], "--seed"),
    # the model: where it is, what it runs on, what it lacks
    bad("model-missing", ["infill", "x [MASK]", "-m", "/no/such/dir"], "--model", "/no/such/dir"),
    bad("model-env-missing", ["infill", "x [MASK]"], "--model", "LLADA_MODEL", env={"LLADA_MODEL": "/no/such/dir"}),
    bad(
        "model-file",
        ["infill", "x [MASK]", "-m", str(BUNDLED_DIR / "config.json")],
        "--model",
        "config.json",
        "file",
    ),
    bad("info-model-file", ["info", "-m", str(BUNDLED_DIR / "config.json")], "--model", "config.json"),
    bad("device", ["infill", "x [MASK]", "--device", "toaster"], "--device", "toaster"),
    bad("info-device", ["info", "--device", "toaster"], "--device", "toaster"),
    bad("dtype", ["infill", "x [MASK]", "--dtype", "int4"], "--dtype", "int4", "float32"),
    bad("no-tokenizer", ["infill", "x [MASK]", "-m", NO_TOKENIZER], "tokenizer", code=1),
    bad("generate-text-no-tokenizer", ["generate", "hello", "-m", NO_TOKENIZER], "tokenizer", "--ids", code=1),
    # chat --load: a saved conversation
    bad("load-missing", ["chat", "--load", FILE, "hello"], "--load", "conversation.json"),
    bad("load-not-json", ["chat", "--load", FILE, "hello"], "--load", "not valid JSON", file=b"{ nope"),
    bad("load-not-a-list", ["chat", "--load", FILE, "hello"], "--load", "list", file=b'{"role": "user"}'),
    bad("load-no-role", ["chat", "--load", FILE, "hello"], "--load", "role", file=b'[{"content": "hi"}]'),
    bad(
        "load-bad-role",
        ["chat", "--load", FILE, "hello"],
        "--load",
        "robot",
        file=b'[{"role": "robot", "content": "hi"}]',
    ),
    bad(
        "load-content-int",
        ["chat", "--load", FILE, "hello"],
        "--load",
        "content",
        file=b'[{"role": "user", "content": 5}]',
    ),
    bad("load-not-utf8", ["chat", "--load", FILE, "hello"], "--load", file=b"\xff\xfe[]"),
    bad(
        "load-surrogate",
        ["chat", "--load", FILE, "hello"],
        "--load",
        "message 0",
        "UTF-8",
        file=b'[{"role": "user", "content": "\\udcff"}]',
    ),
    bad(
        "load-over-limit",
        ["chat", "--load", FILE, "hello"],
        "--load",
        str(MAX_INPUT_BYTES),
        file=b"[" + b" " * MAX_INPUT_BYTES + b"]",
    ),
    bad("load-endless", ["chat", "--load", "/dev/zero", "hello"], "--load", str(MAX_INPUT_BYTES)),
    # the model's chat template is someone else's code: bounded
    bad("template-hostile", ["chat", "-m", HOSTILE, "hello"], "chat template", "range", "limit", code=1),
    # [MASK:auto]: a bounded number of spans
    bad(
        "infill-five-auto",
        ["infill", "a [MASK:auto] b [MASK:auto] c [MASK:auto] d [MASK:auto] e [MASK:auto] f"],
        "5 [MASK:auto] spans",
        "limit of 4",
    ),
    # --backend onnx needs an exported bundle
    bad("onnx-not-a-bundle", ["infill", "x [MASK]", "--backend", "onnx"], "not an ONNX bundle", "llada export", code=1),
    # export never deletes what it did not write
    bad("export-onto-source", ["export", MODEL_COPY, MODEL_COPY, "--overwrite"], "`out`", "is the source model"),
    bad("export-inside-source", ["export", MODEL_COPY, f"{MODEL_COPY}/sub"], "`out`", "inside the source model"),
    bad(
        "export-over-a-folder",
        ["export", MODEL_COPY, FOLDER, "--overwrite"],
        "`out`",
        "not an llada bundle",
        "overwrite replaces only",
    ),
]


@pytest.mark.parametrize(("args", "stdin", "code", "words", "env", "file"), CLI_CASES)
def test_cli_rejects(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    args: list[str],
    stdin: str | bytes | None,
    code: int,
    words: tuple[str, ...],
    env: dict[str, str],
    file: bytes | None,
) -> None:
    path = tmp_path / "conversation.json"
    if file is not None:
        path.write_bytes(file)
    if NO_TOKENIZER in args:
        model = str(request.getfixturevalue("no_tokenizer_model"))
        args = [model if a == NO_TOKENIZER else a for a in args]
    copy, folder, hostile = tmp_path / "model", tmp_path / "folder", tmp_path / "hostile"
    if any(MODEL_COPY in a for a in args):
        shutil.copytree(BUNDLED_DIR, copy)
    if FOLDER in args:
        folder.mkdir()
        (folder / "precious.txt").write_text("keep me")
    if HOSTILE in args:
        shutil.copytree(BUNDLED_DIR, hostile)
        config = json.loads((hostile / "tokenizer_config.json").read_text())
        config["chat_template"] = "{% for i in range(10**8) %}{% for j in range(10**8) %}x{% endfor %}{% endfor %}"
        (hostile / "tokenizer_config.json").write_text(json.dumps(config))
    places = {FILE: str(path), MODEL_COPY: str(copy), FOLDER: str(folder), HOSTILE: str(hostile)}
    args = ["".join((places.get(head, head), sep, rest)) for head, sep, rest in (a.partition("/") for a in args)]
    result = CliRunner().invoke(cli, args, input=stdin, env={"LLADA_MODEL": None, "LLADA_DEBUG": None, **env})
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert_one_line(result.stderr, *words)
    # nothing lost: the files the command was pointed at are all still there, unchanged
    if copy.exists():
        assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in BUNDLED_DIR.iterdir())
        assert (copy / "model.safetensors").read_bytes() == (BUNDLED_DIR / "model.safetensors").read_bytes()
    if folder.exists():
        assert [p.name for p in folder.iterdir()] == ["precious.txt"]
        assert (folder / "precious.txt").read_text() == "keep me"


SUBPROCESS_CASES = ["steps-0", "temperature-negative", "model-missing", "block-divides", "unknown-flag"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SUBPROCESS_CASES)
@pytest.mark.parametrize("module", [False, True], ids=["llada", "python -m llada_cli"])
def test_cli_rejects_in_a_subprocess(name: str, module: bool) -> None:
    """A few of the cases, each flag on three commands, through the installed executable and
    ``python -m llada_cli``: the same exit code and one line."""
    from tests.cli.test_cli import INFILL, SUFFIX, exe

    args, _, code, words, _, _ = next(c.values for c in CLI_CASES if c.id == name)
    flags = args[2:]  # after `infill "x [MASK]"`
    for command in (["infill", INFILL], ["complete", "--suffix", SUFFIX], ["chat", "Hello"]):
        out = exe(*command, *flags, module=module)
        assert out.returncode == code, (command, out.stderr)
        assert_one_line(out.stderr, *words)
