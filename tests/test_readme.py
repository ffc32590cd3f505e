"""Every ```python block of the README runs (in order, one namespace), except the Hub/path examples,
and every ``print(...)  # value`` line prints exactly that value."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).parent.parent / "README.md"
PRINT = re.compile(r"^print\((.*)\)  # (.*)$")


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


def test_readme_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    runnable = [b for b in blocks if "path/to" not in b and "GSAI-ML/" not in b]
    assert len(runnable) >= 8
    assert sum(bool(PRINT.match(line)) for b in runnable for line in b.splitlines()) >= 10
    torch.set_num_threads(1)
    buffers: list[io.StringIO] = []
    checks: list[str] = []

    def out() -> io.StringIO:
        buffers.append(io.StringIO())
        return buffers[-1]

    def check(source: str, comment: str, run: object) -> None:
        run()  # type: ignore[operator]
        printed = buffers[-1].getvalue().rstrip("\n")
        want, number = expected_output(comment)
        if number is not None:
            assert float(printed) == pytest.approx(number, rel=0.1), (source, printed, comment)
        else:
            assert printed == want, (source, printed, comment)
        checks.append(source)

    namespace: dict[str, object] = {"__check": check, "__out": out}
    cwd = os.getcwd()
    os.chdir(README.parent)  # the README's paths are relative to the repository root
    try:
        for block in runnable:
            exec(compile(checked(block), str(README), "exec"), namespace)  # our own README
    finally:
        os.chdir(cwd)
    assert len(checks) >= 10


def test_a_wrong_comment_is_caught() -> None:
    block = checked("print(1 + 1)  # 3\n")
    with pytest.raises(AssertionError):
        buffers: list[io.StringIO] = []

        def out() -> io.StringIO:
            buffers.append(io.StringIO())
            return buffers[-1]

        def check(source: str, comment: str, run: object) -> None:
            run()  # type: ignore[operator]
            assert buffers[-1].getvalue().rstrip("\n") == expected_output(comment)[0]

        exec(compile(block, "<test>", "exec"), {"__check": check, "__out": out})


def test_the_options_table_shows_the_real_defaults() -> None:
    from llada_sdk.options import GenerationOptions

    rows = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \| ([^|]+) \| .* \|$", README.read_text(), flags=re.M)
    shown = {}
    for a, b, default in rows:
        if a in GenerationOptions.model_fields:
            shown[a] = default.strip()
            if b:
                shown[b] = default.strip()
    assert set(shown) == set(GenerationOptions.model_fields)
    for name, text in shown.items():
        value = GenerationOptions.model_fields[name].get_default(call_default_factory=True)
        if name == "steps":
            assert value is None and text == "= `max_tokens`"
        else:
            assert text.strip("`") == str(value), (name, text, value)
