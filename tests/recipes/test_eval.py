"""The bundled model meets its targets on a fixed subset, and the eval entry point's JSON contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recipes.bundled_model.eval import build_tasks, evaluate

# Targets: >= 95 % middle infilling, >= 90 % forward completion, reversal and chat (README has the shipped
# figures, 92.5-100 %). The subset (the first items of each task, fixed order) must stay above these.
THRESHOLDS = {
    "infill_city": 0.9,
    "infill_count_heldout": 0.9,
    "complete_forward_city": 0.9,
    "reverse_parent": 0.9,
    "reverse_parent_auto": 0.8,
    "infill_two_auto": 0.5,
    "chat_trained": 0.9,
    "chat_second_turn": 0.8,
}
LIMIT = {"reverse_parent_auto": 5, "infill_two_auto": 2}


@pytest.mark.slow
def test_bundled_model_meets_targets_on_a_fixed_subset(bundled: Any) -> None:
    for task, threshold in THRESHOLDS.items():
        report = evaluate(bundled, limit=LIMIT.get(task, 10), tasks=[task])
        assert report[task]["accuracy"] >= threshold, (task, report[task])


def test_every_task_is_documented_in_the_evaluation_table(bundled: Any) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "docs" / "bundled-model.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \| .* \| \d+ \|(?: [\d.]+ % \|)+$", readme, re.M))
    tasks = build_tasks(bundled)
    assert set(tasks) == documented
    assert all(len(items) > 0 for items in tasks.values())


# Targets (agent >= 90 %, extraction >= 95 % of fields, schema validity 100 %) on a fixed subset, a little
# below the shipped figures of docs/bundled-model.md.
TOOL_THRESHOLDS = {
    "schema_validity": (8, 1.0),
    "agent_heldout_people": (15, 0.9),
    "extract_person": (12, 0.95),
    # issue targets: an unseen tool >= 90 %, 2-3 tools in random order >= 85 % (shipped: 95.6 % and 100 % of all items)
    "agent_unseen_tool": (15, 0.9),
    "agent_two_three_tools": (10, 0.85),
    "agent_no_call_syntax": (12, 1.0),  # two questions, each with every menu (the other tasks check answers)
}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TOOL_THRESHOLDS))
def test_bundled_model_meets_the_tool_targets_on_a_fixed_subset(bundled: Any, task: str) -> None:
    pytest.importorskip("langchain")
    limit, threshold = TOOL_THRESHOLDS[task]
    report = evaluate(bundled, limit=limit, tasks=[task])
    assert report[task]["accuracy"] >= threshold, (task, report[task])


def test_the_agent_tasks_ask_with_unseen_tools_beside_others_in_varied_order(bundled: Any) -> None:
    from recipes.bundled_model.tool_menus import unseen_person_tools

    unseen = [t["function"]["name"] for t in unseen_person_tools()]
    tasks = build_tasks(bundled)
    assert {label.split(" [")[1].rstrip("]") for label, _ in tasks["agent_unseen_tool"]} == set(unseen)
    menus = [label.split(" [")[1].rstrip("]").split(", ") for label, _ in tasks["agent_two_three_tools"]]
    assert {len(m) for m in menus} == {2, 3}
    assert all(len(set(m) & set(unseen)) == 1 for m in menus)  # one person tool per menu, beside others
    assert len({next(i for i, n in enumerate(m) if n in unseen) for m in menus}) == 3  # it moves around
    every_agent_run = {
        label for t in ("agent_heldout_people", "agent_unseen_tool", "agent_two_three_tools") for label, _ in tasks[t]
    }
    assert {label for label, _ in tasks["agent_no_call_syntax"]} == every_agent_run


@pytest.mark.slow
def test_eval_json_contract() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recipes.bundled_model.eval",
            "--json",
            "--limit",
            "1",
            "--task",
            "infill_city",
            "--task",
            "chat_trained",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) >= {"model", "tasks"} and report["model"].startswith("bundled:")
    for name in ("infill_city", "chat_trained"):
        assert set(report["tasks"][name]) >= {"accuracy", "n"} and report["tasks"][name]["n"] == 1
