"""The LangChain examples run offline on the bundled model and print what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langchain")

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.slow  # each example runs the model in a subprocess


def run(name: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'integrations'}", "HF_HUB_OFFLINE": "1", "PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_lcel_example() -> None:
    lines = run("langchain_lcel.py")
    assert lines[:4] == [
        "Zapur lives in Duskmere.",
        "['Zapur lives in Duskmere.', 'Kikouguth lives in Tessaly.']",
        "Zapur lives in Duskmere and works as a weaver.",
        "Zapur",
    ]
    assert len(lines) > 5 and "".join(eval(x) for x in lines[4:]) == "Zapur lives in Duskmere."


@pytest.mark.slow
def test_agent_example() -> None:
    assert run("langchain_agent.py") == [
        "human: Where does Dube live?",
        "ai: [('find_person', {'person': 'Dube'})]",
        "tool: city: Duskmere, job: miner, parent: Gotrir",
        "ai: Dube lives in Duskmere.",
    ]


@pytest.mark.slow
def test_extract_example() -> None:
    assert run("langchain_extract.py") == [
        "Person(name='Zibrou', city='Kelso', job='pilot')",
        # the bundled model copies this unseen name wrong (99.2 % of fields exact in the eval, whose sentences
        # follow its training templates; docs/bundled-model.md); what the example shows is that every
        # answer parses and validates
        "Person(name='M0l', city='Orlan', job='baker')",
    ]
