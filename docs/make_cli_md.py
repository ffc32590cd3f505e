"""Regenerate the command blocks of docs/cli.md from the real program (like cog).

Every fenced ``text`` block whose lines are ``$ llada ...`` commands and their output is re-run in
process on the bundled model, and its output replaced. Blocks that need a set-up the script cannot
make (a trained directory under /tmp, a broken checkpoint, torch uninstalled, an interactive REPL:
anything with a ``#`` comment, ``/tmp``, ``train``, ``--no-view``, a pipe) are left as written.

    python docs/make_cli_md.py           # rewrite docs/cli.md
    python docs/make_cli_md.py --check   # exit 1 and name the stale blocks (tests/test_docs.py)
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

DOC = Path(__file__).parent / "cli.md"
BLOCK = re.compile(r"```text\n(.*?)```", re.S)
SKIP = ("#", "/tmp", " train", "--no-view", "llada models", "llada info")  # set-ups, paths, sizes


def run(command: str) -> str:
    """The output of one ``llada ...`` command line (stdout and stderr as a terminal shows them)."""
    from click.testing import CliRunner

    from llada_cli.main import cli

    args = shlex.split(command)[1:]
    result = CliRunner().invoke(cli, args, prog_name="llada", terminal_width=100)
    return result.output


def regenerate(block: str) -> str:
    """``block`` with each command's output replaced, or unchanged when it cannot be re-run."""
    lines = block.splitlines()
    commands = [line for line in lines if line.startswith("$ ")]
    if not lines or not lines[0].startswith("$ llada") or any(s in block for s in SKIP):
        return block
    if any(not c.startswith("$ llada") or "|" in c or c.endswith("\\") for c in commands):
        return block  # pipes and continued lines need a shell
    out: list[str] = []
    for line in lines:
        if line.startswith("$ llada"):
            out.append(line)
            out += run(line[2:]).rstrip("\n").splitlines()
    return "\n".join(out) + "\n"


def render(text: str) -> str:
    return BLOCK.sub(lambda m: "```text\n" + regenerate(m.group(1)) + "```", text)


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)  # as in the tests: full-precision floats (`score --json`) depend on the thread count
    text = DOC.read_text(encoding="utf-8")
    new = render(text)
    if "--check" in argv:
        stale = [m.group(1).splitlines()[0] for m in BLOCK.finditer(text) if regenerate(m.group(1)) != m.group(1)]
        if stale:
            print("docs/cli.md is stale (run python docs/make_cli_md.py):", *stale, sep="\n  ", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
