"""Every ```python block of the README runs (in order, one namespace), except the Hub/path examples."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).parent.parent / "README.md"


def test_readme_python_examples_run(monkeypatch: object, capsys: object) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    runnable = [b for b in blocks if "path/to" not in b and "GSAI-ML/" not in b]
    assert len(runnable) >= 8
    torch.set_num_threads(1)
    namespace: dict[str, object] = {}
    import os

    cwd = os.getcwd()
    os.chdir(README.parent)  # the README's paths are relative to the repository root
    try:
        for block in runnable:
            exec(compile(block, str(README), "exec"), namespace)  # our own README
    finally:
        os.chdir(cwd)
