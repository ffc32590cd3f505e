"""``llada chat`` in a real terminal: a pseudo-terminal (stdlib ``pty``) is the child's controlling
terminal, so Ctrl-C is a byte (``\\x03``) the terminal turns into SIGINT, as for a user."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal"),
    pytest.mark.slow,  # real terminals, seconds each
]

LLADA = shutil.which("llada")
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\r")
TIMEOUT = 90.0


class Terminal:
    """A child process on a pty; ``expect`` reads its output (ANSI codes stripped) until a pattern."""

    def __init__(self, *args: str) -> None:
        assert LLADA is not None, "the `llada` executable is not installed (pip install -e .)"
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("LLADA_MODEL", "LLADA_DEBUG", "NO_COLOR")}
        env.update(HF_HUB_OFFLINE="1", TERM="xterm-256color", INPUTRC="/dev/null", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [LLADA, "chat", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            close_fds=True,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.raw = ""  # everything read, escape codes included
        self.seen = ""  # not yet consumed by expect(), escape codes stripped

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.master, 65536).decode("utf-8", "replace")
            except OSError:  # EIO: the child closed the terminal
                chunk = ""
            if not chunk and self.proc.poll() is not None:
                raise EOFError(f"the chat exited ({self.proc.returncode}); output: {self.seen!r}")
            self.raw += chunk
            self.seen += chunk

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """Output up to and including ``pattern`` (a regex); what follows it stays for the next call."""
        deadline = time.monotonic() + timeout
        while True:
            plain = ANSI.sub("", self.seen)
            found = re.search(pattern, plain)
            if found:
                self.seen = plain[found.end() :]
                return plain[: found.end()]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout}s; output: {plain!r}")
            self._read(0.2)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def line(self, text: str) -> None:
        self.send(text + "\r")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[list[Terminal]]:
    started: list[Terminal] = []
    yield started
    for t in started:
        t.close()


PROMPT = r">>> "


def ask(term: Terminal, text: str) -> str:
    """Send one line and return what the chat printed before its next prompt."""
    term.line(text)
    out = term.expect(PROMPT)
    return out[out.find(text) + len(text) :] if text in out else out


def test_chat_repl_turns_reset_multiline_save_and_ctrl_d(terminal: list[Terminal], tmp_path: Path) -> None:
    term = Terminal("--no-view")
    terminal.append(term)
    term.expect(r"/help for commands.*\n")
    term.expect(PROMPT)

    assert ask(term, "Where does Zapur live?").strip(), "an answer"
    assert ask(term, "What day comes after Monday?").strip()
    assert "conversation cleared" in ask(term, "/reset")

    term.line('"""Where does')  # multi-line input: the continuation prompt, then one message
    term.expect(r"\.\.\. ")
    term.line('Zapur live?"""')
    assert term.expect(PROMPT).strip()

    # Ctrl-C at the prompt: a hint, the session goes on. readline draws the prompt before it waits
    # for input; a SIGINT in between is only noticed at the next key, so wait as a typist would.
    time.sleep(0.5)
    term.send("\x03")
    assert "Ctrl-D or /exit to leave" in term.expect(PROMPT)
    assert ask(term, "What does Zapur do?").strip()

    saved = tmp_path / "chat.json"
    assert "saved 4 messages" in ask(term, f"/save {saved}")
    messages = json.loads(saved.read_text())
    assert [m["content"] for m in messages if m["role"] == "user"] == ["Where does\nZapur live?", "What does Zapur do?"]

    term.send("\x04")  # Ctrl-D leaves
    assert term.proc.wait(TIMEOUT) == 0


def test_chat_ctrl_c_cancels_the_answer_in_the_live_view(terminal: list[Terminal], tmp_path: Path) -> None:
    term = Terminal()  # the view is on by default on a terminal
    terminal.append(term)
    term.expect(PROMPT)
    assert "max_tokens = 144" in ask(term, "/set max_tokens 144")
    assert "block_length = 144" in ask(term, "/set block_length 144")
    term.line("Tell me everything about Zapur.")
    term.expect(r"step ([2-9]|\d\d+) ·")  # the canvas is denoising: 144 steps, far from done
    assert "░" in term.raw, "masked positions are drawn while denoising"
    assert "\x1b[1;30;102m" in term.raw, "the latest step's tokens are highlighted"
    term.send("\x03")
    assert "cancelled" in term.expect(PROMPT)
    assert term.proc.poll() is None, "Ctrl-C must not end the session"

    assert "block_length = 8" in ask(term, "/set block_length 8")
    assert "max_tokens = 32" in ask(term, "/set max_tokens 32")
    term.raw = ""
    ask(term, "Where does Zapur live?")
    after_view = term.raw[term.raw.rindex("░") :]  # the first frame at least is drawn
    assert "\x1b[2K" in after_view, "the view is erased..."
    final = ANSI.sub("", after_view.split("\x1b[2K")[-1])
    assert final.endswith(">>> ") and "░" not in final, "...and replaced by the final text"

    saved = tmp_path / "chat.json"
    ask(term, f"/save {saved}")
    messages = json.loads(saved.read_text())
    assert [m["content"] for m in messages if m["role"] == "user"] == ["Where does Zapur live?"]  # none cancelled
    term.line("/exit")
    assert term.proc.wait(TIMEOUT) == 0
