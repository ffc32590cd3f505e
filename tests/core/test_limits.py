"""Limits on what users and checkpoints hand in: input sizes (bytes read, characters tokenized), linear
history trimming, a bounded chat-template sandbox, text that is not Unicode, and the two windows of a
model (context and trained) named the same way everywhere. Behaviour is asserted by counting bytes,
characters and renderings, never by timing."""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llada_cli.common import MAX_INPUT_BYTES, read_text_file
from llada_cli.main import cli
from llada_sdk import LLaDA, chat_template
from llada_sdk import tokenizer as tokenizer_module
from llada_sdk.chat_template import TEMPLATE_MAX_RANGE
from llada_sdk.errors import TokenizerError
from llada_sdk.loading import BUNDLED_DIR
from llada_sdk.tokenizer import Tokenizer, _render

MB10 = "Zapur lives in Duskmere. " * 400_000  # 10 MB


def one_line_error(output: str, *words: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in output, output
    for word in words:
        assert word in lines[0], (word, output)


# -- item 3: input is capped before it is read, decoded or tokenized whole ------------------------------


class Endless(io.RawIOBase):
    """An endless binary stream (like /dev/zero) that counts the bytes it serves."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = len(buffer)
        buffer[:n] = b"a" * n
        self.served += n
        return n


@pytest.mark.parametrize("args", [["chat"], ["complete"], ["infill"], ["generate"], ["score", "-", " b"]])
def test_stdin_is_read_up_to_the_limit_only(args: list[str]) -> None:
    stream = Endless()
    result = CliRunner().invoke(cli, args, input=stream)
    assert result.exit_code == 2, result.output
    one_line_error(result.output, "stdin", str(MAX_INPUT_BYTES), "limit")
    assert stream.served <= MAX_INPUT_BYTES + 1


def test_load_files_and_jsonl_lines_are_capped(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b" " * MAX_INPUT_BYTES + b"]")
    result = CliRunner().invoke(cli, ["chat", "--load", str(big), "hi"])
    assert result.exit_code == 2
    one_line_error(result.output, "--load", "big.json", str(MAX_INPUT_BYTES))
    result = CliRunner().invoke(cli, ["chat", "--interactive", "--no-view"], input=f"/load {big}\n/exit\n")
    assert result.exit_code == 0 and f"error: {big} is over the {MAX_INPUT_BYTES}-byte" in result.output
    stream = Endless()
    result = CliRunner().invoke(cli, ["chat", "--jsonl"], input=stream)
    assert result.exit_code == 2
    one_line_error(result.output, "--jsonl", "stdin line 1", str(MAX_INPUT_BYTES))
    assert stream.served <= MAX_INPUT_BYTES + 1
    schema = tmp_path / "schema.json"
    schema.write_bytes(b" " * (MAX_INPUT_BYTES + 1))
    result = CliRunner().invoke(cli, ["infill", "x", "--schema", str(schema)])
    assert result.exit_code == 2
    one_line_error(result.output, "--schema", str(MAX_INPUT_BYTES))


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_an_endless_file_is_refused() -> None:
    with pytest.raises(ValueError, match=f"/dev/zero is over the {MAX_INPUT_BYTES}-byte"):
        read_text_file("/dev/zero")


class CountingBackend:
    """A ``tokenizers.Tokenizer`` stand-in that counts the characters it is asked to encode."""

    def __init__(self, inner: Any) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "chars", 0)

    def encode(self, text: str, **kwargs: Any) -> Any:
        object.__setattr__(self, "chars", self.chars + len(text))
        return self.inner.encode(text, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)


@pytest.fixture
def counted(bundled: Any, monkeypatch: pytest.MonkeyPatch) -> CountingBackend:
    backend = CountingBackend(bundled.tokenizer._tok)
    monkeypatch.setattr(bundled.tokenizer, "_tok", backend)
    return backend


CALLS: list[tuple[str, Callable[[Any], Any], str]] = [
    ("complete", lambda m: m.complete(MB10), "a text of 10,000,000 characters"),
    ("suffix", lambda m: m.complete(suffix=MB10), "a text of"),
    ("infill", lambda m: m.infill(MB10 + " [MASK]"), "a text of"),
    ("chat", lambda m: m.chat([{"role": "user", "content": MB10}]), "`messages`: the conversation"),
    ("session", lambda m: m.session().send(MB10), "`text`: the message"),
    ("score", lambda m: m.score(MB10, " b"), "a text of"),
]


@pytest.mark.parametrize(("call", "words"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_a_text_that_cannot_fit_is_refused_before_it_is_tokenized_whole(
    bundled: Any, counted: CountingBackend, call: Callable[[Any], Any], words: str
) -> None:
    with pytest.raises(ValueError) as info:
        call(bundled)
    assert words in str(info.value) and "context window of 384" in str(info.value), str(info.value)
    assert counted.chars < 50_000, counted.chars  # of 10 000 000


def test_a_text_that_fits_is_tokenized_exactly(bundled: Any, tokenizer_dir: Path) -> None:
    tok = bundled.tokenizer
    text = "Zapur lives in Duskmere. " * 12
    assert tok.encode(text) == tok.encode(text, bounded=False)
    assert len(tok.encode("a" * 5000, bounded=False)) == 5000  # unbounded when asked
    assert Tokenizer.from_dir(tokenizer_dir).context_window is None  # no config.json beside it: no window


# -- item 4: trimming a history is linear, and keeps exactly the messages it kept before ----------------


def reference_fit(tok: Any, messages: list[dict[str, str]], text: str, max_tokens: int, window: int) -> Any:
    """The trimming as it was: re-render everything after every dropped message (quadratic)."""
    messages, dropped = [dict(m) for m in messages], []
    user = {"role": "user", "content": text}
    prompt = tok.apply_chat_template([*messages, user], bounded=False)
    while len(prompt) + max_tokens > window:
        oldest = next((i for i, m in enumerate(messages) if m.get("role") != "system"), None)
        if oldest is None:
            return None, messages, dropped
        dropped.append(messages.pop(oldest))
        if oldest < len(messages) and messages[oldest].get("role") == "assistant":
            dropped.append(messages.pop(oldest))
        prompt = tok.apply_chat_template([*messages, user], bounded=False)
    return prompt, messages, dropped


WORDS = "Zapur lives in Duskmere and works as a weaver . Who is the parent of Quillby ?".split()


def histories(seed: int, count: int) -> Iterator[tuple[list[dict[str, str]], str, int]]:
    rng = random.Random(seed)

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    for trial in range(count):
        roles = ["user", "assistant", "system"] if trial % 5 == 0 else ["user", "assistant"]
        msgs = [{"role": rng.choice(roles), "content": text(rng.randint(0, 12))} for _ in range(rng.randint(0, 40))]
        if trial % 2:
            msgs.insert(0, {"role": "system", "content": "Be brief."})
        yield msgs, text(rng.randint(1, 60)), rng.choice([8, 16, 32])


def test_the_bundled_template_is_a_frame_of_per_message_pieces(bundled: Any) -> None:
    tok = bundled.tokenizer
    frame = tok.chat_frame()
    assert frame is not None
    lead, tail = frame
    assert lead == [tok.special.bos]
    for msgs, text, _ in histories(1, 20):
        conv = [*msgs, {"role": "user", "content": text}]
        pieces = [tok.apply_chat_template([m], bounded=False) for m in conv]
        joined = lead + [t for p in pieces for t in p[len(lead) : len(p) - len(tail)]] + tail
        assert tok.apply_chat_template(conv, bounded=False) == joined


def check_like_before(llm: Any, seed: int, count: int) -> None:
    tok = llm.tokenizer
    for msgs, text, max_tokens in histories(seed, count):
        expected, kept, dropped = reference_fit(tok, msgs, text, max_tokens, 192)
        session = llm.session(messages=msgs)
        if expected is None:  # nothing fits the trained window: sent without history if the context window allows
            try:
                prompt = session._fit(text, max_tokens)
            except ValueError:
                assert session.messages == msgs and not session.dropped
                continue
            assert len(prompt) + max_tokens <= 384
            assert all(m["role"] == "system" for m in session.messages)
            continue
        prompt = session._fit(text, max_tokens)
        assert prompt == expected
        assert (session.messages, session.dropped) == (kept, dropped)
        # the prompt is the kept messages rendered through the template
        assert prompt == tok.apply_chat_template([*session.messages, {"role": "user", "content": text}])


def test_trimming_keeps_what_the_quadratic_trimming_kept(bundled: Any) -> None:
    check_like_before(bundled, seed=7, count=80)


def test_a_template_that_is_not_a_frame_falls_back_to_a_binary_search(
    bundled: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = bundled.tokenizer
    counting = (
        "{{ bos_token }}{{ messages|length }}{% for m in messages %}<|start_header_id|>{{ m.role }}"
        "<|end_header_id|>\n\n{{ m.content }}<|eot_id|>{% endfor %}<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    monkeypatch.setattr(tok, "chat_template", counting)
    monkeypatch.setattr(tok, "_frame", tokenizer_module._UNSET)
    assert tok.chat_frame() is None  # the message count up front: no per-message pieces
    check_like_before(bundled, seed=3, count=40)


def count_renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of messages of every chat-template rendering from now on."""
    sizes: list[int] = []
    real = tokenizer_module._render

    def counting(template: str, **context: Any) -> str:
        sizes.append(len(context.get("messages", [])))
        return real(template, **context)

    monkeypatch.setattr(tokenizer_module, "_render", counting)
    return sizes


def long_history(n: int) -> list[dict[str, str]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}: Zapur lives in Duskmere."}
        for i in range(n)
    ]


def test_trimming_200_messages_renders_the_whole_history_at_most_once(
    bundled: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled.tokenizer.chat_frame()  # its probe renderings are made once per tokenizer
    sizes = count_renders(monkeypatch)
    session = bundled.session(system="Be brief.", messages=long_history(200))
    prompt = session._fit("Where does Zapur live?", 16)
    assert len(prompt) + 16 <= 192 and len(session.dropped) > 150
    assert sum(1 for s in sizes if s > 2) <= 1, sizes  # the kept messages, together, once
    # alone, once each: the kept messages, the new one and the turn that no longer fit; then all together
    assert len(sizes) <= len(session.messages) + 1 + 2 + 1, sizes


def test_a_template_that_is_not_a_frame_renders_log_n_times(bundled: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = bundled.tokenizer
    monkeypatch.setattr(tok, "chat_template", "{{ messages|length }}" + tok.chat_template)
    monkeypatch.setattr(tok, "_frame", tokenizer_module._UNSET)
    assert tok.chat_frame() is None
    sizes = count_renders(monkeypatch)
    session = bundled.session(system="Be brief.", messages=long_history(200))
    prompt = session._fit("Where does Zapur live?", 16)
    assert len(prompt) + 16 <= 192 and session.dropped
    assert len(sizes) <= 10, sizes  # 1 + log2(100 turns) renderings, not one per dropped turn


def test_a_huge_loaded_history_is_trimmed_without_tokenizing_it(bundled: Any, counted: CountingBackend) -> None:
    session = bundled.session(messages=[{"role": "user", "content": MB10}, *long_history(4)])
    prompt = session._fit("Where does Zapur live?", 16)
    assert len(prompt) + 16 <= 192 and session.dropped[0]["content"] == MB10
    assert counted.chars < 50_000, counted.chars


def test_a_refused_message_leaves_the_conversation_as_it_was(bundled: Any) -> None:
    history = long_history(6)
    session = bundled.session(messages=history)
    with pytest.raises(ValueError, match=r"`max_tokens` \(16\) does not fit this model's context window of 384 tokens"):
        session.send("Zapur " * 400, max_tokens=16, block_length=8)
    assert session.messages == history and not session.dropped


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


# -- item 5: the chat template of a checkpoint runs with bounded time and memory ----------------------


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that moves 10 ms every time it is read: the time limit is reached after a fixed amount
    of work, however fast the machine."""
    now = [0.0]

    def clock() -> float:
        now[0] += 0.01
        return now[0]

    monkeypatch.setattr(chat_template, "_clock", clock)


@pytest.fixture
def no_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The size limits alone, however slow the machine."""
    monkeypatch.setattr(chat_template, "TEMPLATE_TIMEOUT_S", 1e9)


HOSTILE: list[tuple[str, str, tuple[str, ...]]] = [
    ("huge-range", "{% for i in range(10**9) %}{% endfor %}", ("range(1000000000)", str(TEMPLATE_MAX_RANGE))),
    ("nested-ranges", "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", ("time",)),
    ("string-times", "{{ 'x' * 3000000000 }}", ("'x' * 3000000000", "limit")),
    ("list-times", "{{ [1, 2] * 3000000000 }}", ("3000000000", "limit")),
    (
        "huge-output",
        "{% for i in range(10000) %}{% for j in range(10000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
        ("rendered text exceeds", "limit"),
    ),
    (
        "concat-doubling",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        ("`~`", "limit"),
    ),
    ("literal-doubling", "{% set a = ['x' * 900000, 'x' * 900000] %}{% set b = [a, a] %}{{ b }}", ("limit",)),
    ("slow-macro", "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}", ("time",)),
    ("center", "{{ 'x'|center(3000000000) }}", ("center()", "3000000000")),
    ("ljust", "{{ 'x'.ljust(3000000000) }}", ("ljust()", "3000000000")),
    ("percent-width", "{{ '%3000000000s' % 'x' }}", ("width 3000000000",)),
    ("format-width", "{{ '{:>3000000000}'.format('x') }}", ("width 3000000000",)),
    ("big-power", "{{ 2 ** 1000000000 }}", ("2 ** 1000000000", "bit")),
    ("join", "{% set s = 'x' * 900000 %}{{ range(10000)|map('string')|join(s) }}", ("join()", "limit")),
    ("recursion", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", ("RecursionError",)),
]


@pytest.mark.parametrize(("template", "words"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_a_hostile_template_fails_fast_with_the_limit(
    request: pytest.FixtureRequest, template: str, words: tuple[str, ...]
) -> None:
    request.getfixturevalue("fake_clock" if "time" in words else "no_time_limit")
    with pytest.raises(TokenizerError) as info:
        _render(template, messages=[])
    message = str(info.value)
    assert message.startswith("chat template"), message
    for word in words:
        assert word in message, (word, message)


def test_the_time_limit_is_named(fake_clock: None) -> None:
    with pytest.raises(TokenizerError, match=r"ran past the sandbox's time limit of 2 s"):
        _render("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", messages=[])


def test_real_templates_render_as_before() -> None:
    from .test_tokenizer import test_llada_8b_chat_template_renders_like_hugging_face

    test_llada_8b_chat_template_renders_like_hugging_face()
    out = _render(
        "{{ '{} {}'.format('a', 'b') }}|{{ '%s-%d' % ('a', 3) }}|{{ [1, 2]|join(',') }}|{{ {'a': 1}|tojson }}|"
        "{% for m in messages %}{{ m.role ~ ':' ~ m.content|trim }}{% endfor %}|{{ range(3)|list }}|{{ 'x' * 3 }}",
        messages=[{"role": "user", "content": " hi "}],
    )
    assert out == 'a b|a-3|1,2|{"a": 1}|user:hi|[0, 1, 2]|xxx'
    big = "Zapur " * 100_000  # the messages' own text does not count against the size limit
    assert _render(
        "{% for m in messages %}{{ m.content }}{{ m.content }}{% endfor %}", messages=[{"content": big}]
    ) == (big * 2)


# -- item 11: text that is not Unicode is named, at the API and on the command line ---------------------


SURROGATE_CALLS: list[tuple[str, Callable[[Any], Any], tuple[str, ...]]] = [
    (
        "complete",
        lambda m: m.complete("abc\udcff"),
        ("`prefix`", "lone surrogate '\\udcff' at index 3", "errors='replace'"),
    ),
    ("suffix", lambda m: m.complete("a", "b\udcff"), ("`suffix`", "index 1")),
    ("infill", lambda m: m.infill("a [MASK] \udcff"), ("`text`", "index 9")),
    ("chat", lambda m: m.chat([{"role": "user", "content": "\ud800"}]), ("`messages[0]['content']`", "'\\ud800'")),
    ("session", lambda m: m.session().send("hi\udcfe"), ("`text`", "index 2")),
    ("system", lambda m: m.session(system="\udcff"), ("`system`",)),
    ("choose", lambda m: m.choose("a\udcff", [" b", " c"]), ("`prompt`",)),
    ("score", lambda m: m.score("a", " b\udcff"), ("not valid Unicode", "index 2")),
    ("encode", lambda m: m.tokenizer.encode("\udcff"), ("not valid Unicode", "index 0")),
]


@pytest.mark.parametrize(("call", "words"), [c[1:] for c in SURROGATE_CALLS], ids=[c[0] for c in SURROGATE_CALLS])
def test_a_lone_surrogate_is_named(bundled: Any, call: Callable[[Any], Any], words: tuple[str, ...]) -> None:
    with pytest.raises(ValueError) as info:
        call(bundled)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.slow
def test_undecodable_argv_bytes_in_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable.encode(), b"-m", b"llada_cli", b"complete", b"abc\xff\xfe"],
        capture_output=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2, result.stderr
    one_line_error(result.stderr.decode(), "TEXT", "not valid UTF-8 (byte 0xff at character 3)")


# -- item 13: the context window and the trained window, named the same way everywhere -----------------


def test_set_refuses_max_tokens_over_the_context_window() -> None:
    script = "/set max_tokens 1024\n/set\n/set max_tokens 256\n/exit\n"
    result = CliRunner().invoke(cli, ["chat", "--interactive", "--no-view"], input=script)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "error: `max_tokens` (1024) does not fit this model's context window of 384 tokens" in out
    assert "nothing was changed" in out and "max_tokens = 32" in out  # the default stayed
    assert "max_tokens = 256" in out and "192-token trained window" in out  # set, with a note


def test_info_names_both_windows() -> None:
    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 0, result.output
    assert "context window  384 tokens (max_sequence_length" in result.output
    assert "trained window  192 tokens (trained_sequence_length" in result.output
    result = CliRunner().invoke(cli, ["info", "--json"])
    facts = json.loads(result.output)
    assert (facts["context_window"], facts["trained_window"]) == (384, 192)


def test_chat_names_the_window_it_refuses_and_keeps_within(bundled: Any) -> None:
    assert (bundled.config.context_window, bundled.config.trained_window) == (384, 192)
    session = bundled.session(messages=long_history(4))
    with pytest.warns(UserWarning, match="trained window of 192 tokens"):
        res = session.send("Zapur lives in Duskmere. " * 20, max_tokens=16, block_length=8)
    # over the trained window but within the context window: sent alone, with the quality warning
    assert 192 < res.prompt_tokens + 16 <= 384 and len(session.dropped) == 4
    result = CliRunner().invoke(cli, ["chat", "--max-tokens", "1024", "hi"])
    assert result.exit_code == 2
    one_line_error(result.output, "`max_tokens` (1024)", "context window of 384 tokens", "max_sequence_length")


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
