"""Exact-match evaluation of a model trained on the synthetic corpus (``corpus``), through the public text API.

``python -m recipes.bundled_model.eval [--model M] [--json] [--limit N]`` prints the accuracy per task:

- ``infill_city``: ``X lives in [MASK:n] and works as a J.`` -> the city (n = its true token length).
- ``infill_count_heldout``: ``count: a a+1 [MASK:n] a+3`` for start values never trained on.
- ``complete_forward_city``: ``complete(prefix="X lives in")`` starts with the city.
- ``complete_forward_parent``: ``complete(prefix="The parent of X is")`` starts with the parent.
- ``reverse_parent``: ``[MASK:n]'s parent is P.`` -> X: the person *before* a given ending, a fact
  seen only as "X's parent is P." / "The parent of X is P." (n = the true token length).
- ``reverse_parent_auto``: ``complete(suffix="'s parent is P.")`` -> X, the span length chosen by the
  model (``[MASK:auto]``).
- ``chat_trained``: trained questions ("Where does X live?", "What day comes after D?" ...).
- ``chat_second_turn``: a trained question asked as the second turn of a conversation.
- ``chat_second_turn_wide``: every trained question as the second turn, each after three drawn first
  turns (336 items: fine enough to resolve a 2-point change, which 40 items are not).
- ``chat_heldout_people``: questions about people whose Q&A was held out of training (facts seen
  only as plain text); small models score ~0 here -- reported, not a target.
- ``agent_heldout_people``: the same questions through ``langchain.agents.create_agent(ChatLLaDA(),
  tools=[lookup])`` with a knowledge-base lookup tool: the model must call the tool, then answer from
  its result (needs ``llada-sdk[langchain]``; target >= 90 %).
- ``extract_person``: ``ChatLLaDA().with_structured_output(Person)`` on a sentence about a person never
  seen in training -> name, city, job; the accuracy is the fraction of fields exact (target >= 95 %).
- ``schema_validity``: ``fill_schema`` on 50 seeded random schemas (nested objects, enums, numbers,
  booleans, bounded lists): the fraction of outputs that validate (target 100 %).

Decoding: greedy (temperature 0), low-confidence remasking; infill one token per step; completion
and chat use ``GenerationOptions`` defaults (``max_tokens`` 32, blocks of 8, early stop).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from recipes.bundled_model.corpus import (
    build_corpus,
    is_held_out_count,
    kb_chat,
    sequence_chat,
)

Check = Callable[[Any], float]
Task = tuple[str, Check]


def _infill_is(m: Any, text: str, expected: list[str]) -> bool:
    return bool(m.infill(text).fills == expected)


def _forward_starts(m: Any, prefix: str, expected: str) -> bool:
    return bool(m.complete(prefix).text.startswith(expected))


def _backward_is(m: Any, suffix: str, expected: str) -> bool:
    return bool(m.complete(suffix=suffix).text == expected)


def _chat_is(m: Any, messages: list[dict[str, str]], expected: str) -> bool:
    return bool(m.chat(messages).text.strip() == expected)


def _user(q: str) -> dict[str, str]:
    return {"role": "user", "content": q}


def random_schema_model(rng: random.Random, name: str = "Model", depth: int = 0) -> Any:
    """A random pydantic model: strings, bounded integers and numbers, booleans, enums, optional
    fields, bounded lists and (up to two levels of) nested models."""
    from typing import Literal, Optional

    from pydantic import Field, create_model

    kinds = ["str", "int", "float", "bool", "enum", "list", "optional"] + (["object"] if depth < 2 else [])
    fields: dict[str, Any] = {}
    for i in range(rng.randint(1, 4)):
        kind = rng.choice(kinds)
        key = f"{rng.choice(['name', 'city', 'count', 'flag', 'kind', 'tags', 'score', 'info'])}_{i}"
        if kind == "str":
            fields[key] = (str, Field(max_length=rng.choice([None, 6, 20])))
        elif kind == "int":
            lo = rng.randint(-5, 20)
            fields[key] = (int, Field(ge=lo, le=lo + rng.randint(0, 50)))
        elif kind == "float":
            fields[key] = (float, Field(ge=0.5, le=rng.choice([1.5, 99.0])))
        elif kind == "bool":
            fields[key] = (bool, ...)
        elif kind == "enum":
            options = tuple(rng.sample(["red", "green", "blue", "Kelso", "yes", "no", "a b"], rng.randint(1, 3)))
            fields[key] = (Literal[options], ...)  # type: ignore[valid-type]
        elif kind == "list":
            item = rng.choice([str, int, bool])
            lo = rng.randint(0, 1)
            fields[key] = (list[item], Field(min_length=lo, max_length=lo + rng.randint(0, 2)))  # type: ignore[valid-type]
        elif kind == "optional":
            fields[key] = (Optional[rng.choice([str, int])], None)  # noqa: UP045
        else:
            fields[key] = (random_schema_model(rng, f"{name}Sub{i}", depth + 1), ...)
    return create_model(name, **fields)


def _schema_valid(m: Any, model: Any, prompt: str) -> bool:
    from llada_sdk.text.structured import fill_schema_result

    fill = fill_schema_result(m, prompt, model, max_string_tokens=3, max_number_tokens=3, max_items=2, mc_num=8)
    model.model_validate_json(fill.text)  # raises if the text does not parse or validate
    return True


TEXT_TASKS = (
    "infill_city",
    "infill_count_heldout",
    "complete_forward_city",
    "complete_forward_parent",
    "reverse_parent",
    "reverse_parent_auto",
    "infill_two_auto",
    "chat_trained",
    "chat_second_turn",
    "chat_heldout_people",
)
"""The core tasks that decode text (not ``chat_second_turn_wide``, 336 items for the model-to-model
comparison, not ``schema_validity``, not the LangChain layer's tasks)."""


def build_tasks(llm: Any, seed: int = 0) -> dict[str, list[Task]]:
    """Every task as a list of ``(description, check(llm) -> bool)`` items, in a fixed order."""
    corpus = build_corpus(seed)
    tok = llm.require_tokenizer()

    def n_tokens(text: str) -> int:
        return len(tok.encode(text))

    tasks: dict[str, list[Task]] = {k: [] for k in (*TEXT_TASKS, "chat_second_turn_wide", "schema_validity")}
    for p in corpus.people:
        n_city, n_name = n_tokens(" " + p.city), n_tokens(p.name)
        city_text = f"{p.name} lives in [MASK:{n_city}] and works as a {p.job}."
        tasks["infill_city"].append((city_text, partial(_infill_is, text=city_text, expected=[p.city])))
        prefix = f"{p.name} lives in"
        tasks["complete_forward_city"].append((prefix, partial(_forward_starts, prefix=prefix, expected=f" {p.city}")))
        prefix = f"The parent of {p.name} is"
        tasks["complete_forward_parent"].append(
            (prefix, partial(_forward_starts, prefix=prefix, expected=f" {p.parent}"))
        )
        rev = f"[MASK:{n_name}]'s parent is {p.parent}."
        tasks["reverse_parent"].append((rev, partial(_infill_is, text=rev, expected=[p.name])))
        suffix = f"'s parent is {p.parent}."
        tasks["reverse_parent_auto"].append((suffix, partial(_backward_is, suffix=suffix, expected=p.name)))
        two = f"{p.name} lives in [MASK:auto] and works as a [MASK:auto]."
        tasks["infill_two_auto"].append((two, partial(_infill_is, text=two, expected=[p.city, p.job])))
    for start in range(0, 200):
        if is_held_out_count(start):
            a = [str(start + i) for i in range(4)]
            text = f"count: {a[0]} {a[1]} [MASK:{n_tokens(' ' + a[2])}] {a[3]}"
            tasks["infill_count_heldout"].append((text, partial(_infill_is, text=text, expected=[a[2]])))
    trained = [qa for p in corpus.people if not p.held_out_chat for qa in kb_chat(p)]
    trained += [qa for qa in sequence_chat() if qa[0].startswith("What day")]
    for q, ans in trained:
        tasks["chat_trained"].append((q, partial(_chat_is, messages=[_user(q)], expected=ans)))

    def second_turn(rng: random.Random, q: str, ans: str) -> Task:
        q0, a0 = rng.choice(trained)
        msgs = [_user(q0), {"role": "assistant", "content": a0}, _user(q)]
        return f"{q0} / {q}", partial(_chat_is, messages=msgs, expected=ans)

    rng = random.Random(seed)
    tasks["chat_second_turn"] = [second_turn(rng, q, ans) for q, ans in rng.sample(trained, 40)]
    for k in range(3):  # 40 items resolve 2.5 points; this one every trained question, after 3 first turns
        turn_rng = random.Random(f"second-turn-{k}")
        tasks["chat_second_turn_wide"] += [second_turn(turn_rng, q, ans) for q, ans in trained]
    for q, ans in corpus.held_out_chat:
        tasks["chat_heldout_people"].append((q, partial(_chat_is, messages=[_user(q)], expected=ans)))
    schema_rng = random.Random(f"schemas-{seed}")
    for i in range(50):
        model = random_schema_model(schema_rng, f"Schema{i}")
        prompt = f"{corpus.docs[i]}"
        tasks["schema_validity"].append((model.__name__, partial(_schema_valid, model=model, prompt=prompt)))
    try:  # the LangChain tasks, when LangChain is installed
        import langchain.agents  # noqa: F401

        import langchain_llada  # noqa: F401
        from recipes.bundled_model.agent_tasks import tasks as agent_tasks
    except ImportError:
        return tasks
    tasks.update(agent_tasks(llm, corpus, seed))
    return tasks


def evaluate(llm: Any, limit: int | None = None, tasks: list[str] | None = None) -> dict[str, Any]:
    """Run the tasks (the first ``limit`` items of each) and return the report dict."""
    report: dict[str, Any] = {}
    for name, items in build_tasks(llm).items():
        if tasks and name not in tasks:
            continue
        items = items[:limit] if limit else items
        t0 = time.time()
        correct = sum(float(check(llm)) for _, check in items)
        report[name] = {
            "accuracy": round(correct / len(items), 4),
            "n": len(items),
            "seconds": round(time.time() - t0, 2),
        }
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recipes.bundled_model.eval", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model directory or Hub id (default: the bundled model)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N items of each task")
    parser.add_argument("--task", action="append", help="only this task (repeatable)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (results are thread-count sensitive at ties)"
    )
    args = parser.parse_args(argv)
    import torch

    from llada_sdk import LLaDA

    torch.set_num_threads(args.threads)
    llm = LLaDA.from_pretrained(args.model, device="cpu", dtype="float32")
    report = evaluate(llm, args.limit, args.task)
    name = llm.source.describe() if llm.source else str(args.model)
    settings = {
        "temperature": 0.0,
        "remasking": "low_confidence",
        "infill_steps": "one token per step",
        "complete_and_chat": llm.options.model_dump(include={"max_tokens", "block_length", "steps", "early_stop"}),
    }
    if args.json:
        print(json.dumps({"model": name, "tasks": report, "settings": settings}))  # noqa: T201
        return
    print(f"model: {name}")  # noqa: T201
    for task, r in report.items():
        print(f"{task:24s} {100 * r['accuracy']:6.1f} %  (n={r['n']}, {r['seconds']} s)")  # noqa: T201


if __name__ == "__main__":
    main()
