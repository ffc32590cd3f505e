"""The fenced code blocks of README.md and docs/*.md, and running their Python the way a reader would.

A Python block runs as it stands, the blocks of one file in order in one namespace; each line
``print(EXPR)  # VALUE`` also checks that it printed VALUE (``expected_output``). A block that cannot
run offline says why on the line right before it::

    <!-- not run: needs a GPU -->
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parent.parent
PRINT = re.compile(r"^print\((.*)\)  # (.*)$")
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)[ ]*\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not run:(?P<reason>(?:(?!-->).)*)-->\s*\Z", re.S)
MARKER = re.compile(r"<!--\s*not run\b")
SHELL = ("bash", "sh", "shell", "console")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text (dedented) and why it does not run."""

    path: Path
    line: int
    lang: str
    body: str
    not_run: str | None
    """The reason of a ``<!-- not run: ... -->`` right before the block ('' if it gives none), or None."""

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.lang or 'no language'})"


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order."""
    text = path.read_text(encoding="utf-8")
    found, end = [], 0
    for m in FENCE.finditer(text):
        before = text[end : m.start()]
        marker = NOT_RUN.search(before.rstrip() + "\n" if before.strip() else "")
        indent = len(m.group("indent"))
        body = "".join(line[indent:] for line in m.group("body").splitlines(keepends=True))
        line = text.count("\n", 0, m.start()) + 1
        found.append(Block(path, line, m.group("lang"), body, None if marker is None else marker["reason"].strip()))
        end = m.end()
    return found


def stray_markers(path: Path) -> list[int]:
    """Lines of ``<!-- not run ... -->`` markers that are not right before a block (they skip nothing)."""
    text = path.read_text(encoding="utf-8")
    attached = {b.line for b in fenced_blocks(path) if b.not_run is not None}
    lines = text.splitlines()
    stray = []
    for i, line in enumerate(lines, start=1):
        if MARKER.search(line):
            rest = [j for j in range(i + 1, len(lines) + 1) if lines[j - 1].strip()]
            if not rest or rest[0] not in attached:
                stray.append(i)
    return stray


def load_generator() -> ModuleType:
    """``docs/make_cli_md.py``, which also knows how printed floats compare (``same_output``)."""
    path = ROOT / "docs" / "make_cli_md.py"
    spec = importlib.util.spec_from_file_location("make_cli_md", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_output(comment: str) -> tuple[str, float | None]:
    """A comment as the printed text: quotes keep leading spaces; ``about X`` is a number within 10 %."""
    about = re.match(r"about (-?[\d.]+)", comment)
    if about:
        return comment, float(about.group(1))
    if len(comment) > 1 and comment[0] == comment[-1] == '"':
        return comment[1:-1], None
    return comment, None


def checked(block: str) -> str:
    """``block`` with each commented print turned into a check of its output."""
    lines = []
    for line in block.splitlines():
        m = PRINT.match(line)
        if m:
            line = f"__check({m.group(1)!r}, {m.group(2)!r}, lambda: print({m.group(1)}, file=__out()))"
        lines.append(line)
    return "\n".join(lines) + "\n"


class Runner:
    """Runs Python blocks in one namespace and checks their commented prints."""

    def __init__(self) -> None:
        self.checks: list[str] = []
        self._buffers: list[io.StringIO] = []
        self._same: Callable[[str, str], bool] = load_generator().same_output
        self.namespace: dict[str, object] = {"__check": self._check, "__out": self._out}

    def _out(self) -> io.StringIO:
        self._buffers.append(io.StringIO())
        return self._buffers[-1]

    def _check(self, source: str, comment: str, run: Callable[[], None]) -> None:
        run()
        printed = self._buffers[-1].getvalue().rstrip("\n")
        want, number = expected_output(comment)
        if number is not None:
            assert float(printed) == pytest.approx(number, rel=0.1), (source, printed, comment)
        else:
            assert self._same(want, printed), (source, printed, comment)
        self.checks.append(source)

    def run(self, code: str, filename: str) -> None:
        exec(compile(checked(code), filename, "exec"), self.namespace)  # the repository's own docs

    def run_blocks(self, blocks: list[Block], cwd: Path) -> None:
        """Run ``blocks`` in order with ``cwd`` as the working directory."""
        before = os.getcwd()
        os.chdir(cwd)
        try:
            for block in blocks:
                # line numbers of errors point into the Markdown file
                self.run("\n" * block.line + block.body, str(block.path))
        finally:
            os.chdir(before)
