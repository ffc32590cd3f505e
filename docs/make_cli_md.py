"""Regenerate the command blocks of docs/*.md from the real program (like cog).

Every fenced ``text``, ``console``, ``bash``, ``sh`` or ``shell`` block whose lines are ``$ llada ...``
commands and their output is re-run in process on the bundled model, and its output replaced
(``$ echo TEXT | llada ...`` gets TEXT on stdin). A block is left as written when one of its commands
needs a set-up the script cannot make (a trained directory under /tmp, a broken checkpoint, torch
uninstalled, an interactive REPL, a shell: a ``#`` comment, ``/tmp``, ``train``, ``--no-view``, another
pipe or a continued line) or prints what differs between machines (``llada models``: the local Hub
cache); ``--help`` always re-runs. Where the package is installed differs too: a printed path to the
bundled model is shown as ``…/llada_sdk/bundled/...``.

A block right after ``<!-- setup: llada ...; llada ... -->`` runs in a new empty working directory
where those commands ran first (their output is not shown): ``llada export llada-tiny-kb ./kb-onnx``
makes the bundle that ``$ llada complete ... -m ./kb-onnx`` reads. A block right after
``<!-- not run: REASON -->`` is left as written (``tests/test_docs.py`` wants the reason).

Decimal numbers compare with a tolerance (``same_output``), so a doc regenerated on one machine stays
current on another whose last float digits differ; regenerating keeps the doc's digits then.

    python docs/make_cli_md.py                 # rewrite every docs/*.md that shows commands
    python docs/make_cli_md.py docs/cli.md     # just that one
    python docs/make_cli_md.py --check         # exit 1 and name the stale blocks (tests/test_docs.py)
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DOCS_DIR = Path(__file__).parent
DOC = DOCS_DIR / "cli.md"
BLOCK = re.compile(
    r"^(?:<!--\s*(?P<kind>setup|not run):(?P<commands>(?:(?!-->).)*)-->\s*\n)?"
    r"```(?:text|console|bash|sh|shell)\n(?P<body>.*?)^```",
    re.S | re.M,
)
SKIP = ("#", "/tmp", " train", "--no-view", "llada models")  # set-ups, the local Hub cache
INSTALLED = re.compile(r"(?:(?<!\w)[A-Za-z]:)?[/\\][^\s\"']*?[/\\](?=llada_sdk[/\\]bundled[/\\])")
ECHO = re.compile(r"^echo (?P<text>.*?) \| (?P<command>llada .*)$")
NUMBER = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")
REL_TOLERANCE = 1e-4


def run(command: str, stdin: str | None = None) -> str:
    """The output of one ``llada ...`` command line (stdout and stderr as a terminal shows them)."""
    from click.testing import CliRunner

    from llada_cli.main import cli

    args = shlex.split(command)[1:]
    result = CliRunner().invoke(cli, args, input=stdin, prog_name="llada", terminal_width=100)
    return INSTALLED.sub("…/", result.output)


def _decimals(number: str) -> int:
    """The power of ten of the last printed digit of ``number`` (``-0.0503`` -> -4, ``1.5e-3`` -> -4)."""
    mantissa, _, exponent = number.lower().partition("e")
    return int(exponent or 0) - len(mantissa.partition(".")[2])


def _measured(number: str) -> bool:
    """Whether ``number`` looks computed rather than typed: three decimals or more, three significant
    digits or more (``-0.0503``, ``-9.8798``; not ``0.5`` or ``2.1e-05``)."""
    digits = number.lower().partition("e")[0].lstrip("-").replace(".", "").lstrip("0")
    return _decimals(number) <= -3 and len(digits) >= 3


def same_number(shown: str, printed: str, rel: float = REL_TOLERANCE) -> bool:
    """Whether two printed decimals are one value: equal within ``rel``, or, for measurements
    (``_measured``), one unit apart in the last digit (the two sides of a rounding)."""
    a, b = float(shown), float(printed)
    if abs(a - b) <= rel * max(abs(a), abs(b)):
        return True
    last = max(_decimals(shown), _decimals(printed))
    return _measured(shown) and _measured(printed) and abs(a - b) <= 1.000001 * 10.0**last


def same_output(shown: str, printed: str) -> bool:
    """Whether ``printed`` is ``shown``, decimal numbers compared with ``same_number`` (float digits
    differ between CPUs, thread counts and BLAS builds; the words, integers and layout may not)."""
    if NUMBER.split(shown) != NUMBER.split(printed):
        return False
    a, b = NUMBER.findall(shown), NUMBER.findall(printed)
    return len(a) == len(b) and all(same_number(x, y) for x, y in zip(a, b))


def _plain(command: str) -> bool:
    """Whether ``command`` is words only: no pipe, redirection, ``;``, ``&&``, substitution or continued line."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    try:
        words = list(lexer)
    except ValueError:  # an unclosed quote: a line continued in the shell
        return False
    return not command.endswith("\\") and not any(set(w) <= set("();<>|&") for w in words) and "$" not in command


def runnable(line: str) -> tuple[str, str | None] | None:
    """``(command, stdin)`` of a ``$ ...`` line the script can re-run, or None."""
    text = line[2:]
    echo = ECHO.match(text)
    stdin = None
    if echo and _plain(echo.group("text")):
        text, stdin = echo.group("command"), " ".join(shlex.split(echo.group("text"))) + "\n"
    if not text.startswith("llada ") or not _plain(text):
        return None
    if "--help" not in shlex.split(text) and any(s in text for s in SKIP):
        return None
    return text, stdin


def transcript(block: str) -> list[tuple[str, list[str]]] | None:
    """``block`` as ``(command line, output lines)`` pairs, or None when it is not a transcript of
    ``$ llada`` commands the script can all re-run."""
    lines = block.splitlines()
    if not lines or not lines[0].startswith("$ "):
        return None
    pairs: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("$ "):
            if runnable(line) is None:
                return None
            pairs.append((line, []))
        else:
            pairs[-1][1].append(line)
    return pairs


def regenerate(block: str) -> str:
    """``block`` with each command's output replaced, or unchanged when it cannot be re-run.

    An output equal to the shown one up to float digits (``same_output``) keeps the shown text.
    """
    pairs = transcript(block)
    if pairs is None:
        return block
    out: list[str] = []
    for line, shown in pairs:
        spec = runnable(line)
        assert spec is not None
        printed = run(*spec).rstrip("\n").splitlines()
        keep = same_output("\n".join(shown).rstrip("\n"), "\n".join(printed))
        out += [line, *(shown if keep else printed)]
    if block.splitlines()[-1:] == [""] and out[-1:] != [""]:
        out.append("")  # a blank last line of the block is layout, not output
    return "\n".join(out) + "\n"


@contextmanager
def working_directory(setup: str | None) -> Iterator[None]:
    """Run in a new empty directory after the ``setup`` commands (``;``-separated), or stay put."""
    if setup is None:
        yield
        return
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="llada-docs-") as tmp:
        os.chdir(tmp)
        try:
            for command in filter(None, (c.strip() for c in setup.split(";"))):
                if not command.startswith("llada "):
                    raise ValueError(f"a setup command must be `llada ...`, got {command!r}")
                from click.testing import CliRunner

                from llada_cli.main import cli

                result = CliRunner().invoke(cli, shlex.split(command)[1:], prog_name="llada")
                if result.exit_code != 0:
                    raise RuntimeError(f"setup `{command}` failed ({result.exit_code}): {result.output}")
            yield
        finally:
            os.chdir(cwd)


def blocks(text: str) -> Iterator[re.Match[str]]:
    """The blocks of a doc that may be command transcripts: fenced shell or text blocks not marked
    ``not run`` (``transcript`` tells which are)."""
    return (m for m in BLOCK.finditer(text) if m.group("kind") != "not run")


def setup_of(m: re.Match[str]) -> str | None:
    """The ``setup`` commands of a block, or None."""
    return m.group("commands") if m.group("kind") == "setup" else None


def render(text: str) -> str:
    """``text`` with every command block regenerated."""
    parts, pos = [], 0
    for m in blocks(text):
        body = m.group("body")
        if transcript(body) is not None:
            with working_directory(setup_of(m)):
                body = regenerate(body)
        parts += [text[pos : m.start("body")], body]
        pos = m.end("body")
    return "".join(parts) + text[pos:]


def stale(text: str) -> list[str]:
    """The first lines of the blocks of ``text`` whose shown output is not what the program prints."""
    found = []
    for m in blocks(text):
        if transcript(m.group("body")) is None:
            continue
        with working_directory(setup_of(m)):
            if regenerate(m.group("body")) != m.group("body"):
                found.append(m.group("body").splitlines()[0])
    return found


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)  # as in the tests: full-precision floats (`score --json`) depend on the thread count
    paths = [Path(a) for a in argv if a != "--check"] or sorted(DOCS_DIR.glob("*.md"))
    status = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if "--check" in argv:
            old = stale(text)
            if old:
                print(f"{path} is stale (run python docs/make_cli_md.py):", *old, sep="\n  ", file=sys.stderr)
                status = 1
            continue
        new = render(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
