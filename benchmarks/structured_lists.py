"""What lists cost in `fill_schema` on the bundled model: list[int], list[str], list[Item] and
list[list[Item]] side by side (one object, `Item`, for scale).

Each row fills one schema once from a fixed prompt and prints the wall time, the model calls (forward
passes: every decode step and every scoring call is one) with the rows they carried, how many list
items came back and the JSON. Lists are written item by item (`llada_sdk/text/structured.py`), so the
calls grow with the items written: about one `Item`'s worth per item, plus the item that ended a list.

    python benchmarks/structured_lists.py [--threads 1] [--max-items 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from pydantic import BaseModel, create_model

from llada_sdk import LLaDA
from llada_sdk.text.structured import fill_schema_result

PEOPLE = "Zapur lives in Duskmere and works as a weaver. Rotu lives in Kelso and works as a farmer."


class Item(BaseModel):
    name: str
    city: str
    job: str


class Counting:
    """The model, counting its calls and the rows they carried."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls, self.rows = model, 0, 0

    def __call__(self, ids: torch.Tensor, attention_mask: Any = None) -> torch.Tensor:
        self.calls += 1
        self.rows += ids.shape[0]
        return self.model(ids, attention_mask)  # type: ignore[no-any-return]


def _items(value: Any) -> int:
    """List items anywhere in ``value`` (nested lists count their items too)."""
    if isinstance(value, list):
        return len(value) + sum(_items(v) for v in value)
    if isinstance(value, dict):
        return sum(_items(v) for v in value.values())
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-items", type=int, default=3, help="the cap of a list without maxItems")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    llm = LLaDA.from_pretrained(device="cpu")
    counter = Counting(llm.model)
    llm.backend.predictor = lambda decode=None, logits=False: counter  # type: ignore[method-assign]
    cases: list[tuple[str, Any, str]] = [
        ("Item (one object, for scale)", Item, "Zapur lives in Duskmere and works as a weaver."),
        ("list[int]", create_model("Counts", items=(list[int], ...)), "count: 3 4 5 6"),
        ("list[str]", create_model("Names", items=(list[str], ...)), PEOPLE),
        ("list[Item]", create_model("People", items=(list[Item], ...)), PEOPLE),
        ("list[list[Item]]", create_model("Groups", items=(list[list[Item]], ...)), PEOPLE),
    ]
    print(f"threads={args.threads}, max_items={args.max_items}, bundled model")
    print("| schema | seconds | model calls | rows per call | list items (all levels) | JSON |")
    print("|---|---|---|---|---|---|")
    for name, schema, prompt in cases:
        counter.calls = counter.rows = 0
        t = time.perf_counter()
        res = fill_schema_result(llm, prompt, schema, max_items=args.max_items)
        seconds = time.perf_counter() - t
        rows = counter.rows / max(1, counter.calls)
        print(
            f"| {name} | {seconds:.1f} | {counter.calls} | {rows:.1f} | {_items(res.data)} | `{res.text}` |",
            flush=True,
        )


if __name__ == "__main__":
    main()
