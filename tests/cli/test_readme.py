"""Every ```python block of the README runs (in order, one namespace), except the Hub/path examples,
and every ``print(...)  # value`` line prints that value (decimals within a tolerance: tests/_blocks.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tests._blocks import PRINT, Runner, checked, expected_output, fenced_blocks

README = Path(__file__).parents[2] / "README.md"


def test_readme_python_examples_run() -> None:
    blocks = [b for b in fenced_blocks(README) if b.lang == "python"]
    runnable = [b for b in blocks if "path/to" not in b.body and "GSAI-ML/" not in b.body]
    assert len(runnable) >= 8
    assert sum(bool(PRINT.match(line)) for b in runnable for line in b.body.splitlines()) >= 10
    torch.set_num_threads(1)
    runner = Runner()
    runner.run_blocks(runnable, cwd=README.parent)  # the README's paths are relative to the repository root
    assert len(runner.checks) >= 10


def test_a_wrong_comment_is_caught() -> None:
    with pytest.raises(AssertionError):
        Runner().run("print(1 + 1)  # 3\n", "<test>")
    assert expected_output('" x"') == (" x", None)
    assert "__check" in checked("print(1)  # 1\n")


def test_printed_floats_compare_with_a_tolerance() -> None:
    runner = Runner()
    runner.run("print(-0.0502858457621187)  # -0.05028590117581189\n", "<test>")  # another CPU's last digits
    runner.run("print(-0.05)  # about -0.052\n", "<test>")
    with pytest.raises(AssertionError):
        runner.run("print(-0.0512)  # -0.0503\n", "<test>")


def test_blocks_that_read_repository_files_say_where_they_run() -> None:
    """A relative path into the repository works from its root only; the text before such a block says so."""
    lines = README.read_text(encoding="utf-8").splitlines()
    for block in fenced_blocks(README):
        if block.lang == "python" and re.search(r"[\"'](tests|docs|examples|benchmarks)/", block.body):
            start = max(i for i in range(block.line - 1) if lines[i].lstrip().startswith("```"))
            above = " ".join(lines[start + 1 : block.line - 1])  # the prose since the previous block
            assert "repository root" in above, f"{block}: say that it runs from the repository root"


def test_the_options_table_shows_the_real_defaults() -> None:
    from llada_sdk.options import GenerationOptions

    table = README.parent / "docs" / "choices.md"
    rows = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \| ([^|]+) \| .* \|$", table.read_text(), flags=re.M)
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
