"""What `[MASK:auto]` costs on the bundled model: seconds, forward calls and rows per call.

Runs the eval's one-span (`X's parent is [MASK:auto].`-style backward completion) and two-span
(`X lives in [MASK:auto] and works as a [MASK:auto].`) items and prints the mean wall time per call,
the model calls and the rows they carried, next to a fixed-length infill of the same text.

    python benchmarks/auto_length.py [--threads 1] [--n 10]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from llada_sdk import LLaDA
from llada_sdk.corpus import build_corpus


class Counting:
    """Counts the calls and rows of the model the search uses."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls, self.rows = model, 0, 0

    def __call__(self, ids: torch.Tensor, attention_mask: Any = None) -> torch.Tensor:
        self.calls += 1
        self.rows += ids.shape[0]
        return self.model(ids, attention_mask)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    llm = LLaDA.from_pretrained(device="cpu")
    counter = Counting(llm.model)
    llm.backend.predictor = lambda decode=None, logits=False: counter  # type: ignore[method-assign]
    people = build_corpus(0).people[: args.n]
    tok = llm.require_tokenizer()
    cases = {
        "two auto spans": [f"{p.name} lives in [MASK:auto] and works as a [MASK:auto]." for p in people],
        "backward, auto": [f"[MASK:auto]'s parent is {p.parent}." for p in people],
        "two spans, lengths given": [
            f"{p.name} lives in [MASK:{len(tok.encode(' ' + p.city))}] and works as a [MASK:{len(tok.encode(' ' + p.job))}]."
            for p in people
        ],
    }
    print(f"threads={args.threads}, {args.n} items each, bundled model")
    print("| call | seconds per call | model calls per call | rows per model call |")
    print("|---|---|---|---|")
    for name, texts in cases.items():
        counter.calls = counter.rows = 0
        t = time.perf_counter()
        for text in texts:
            llm.infill(text)
        seconds = (time.perf_counter() - t) / len(texts)
        print(
            f"| {name} | {seconds:.2f} | {counter.calls / len(texts):.1f} | {counter.rows / max(1, counter.calls):.1f} |"
        )


if __name__ == "__main__":
    main()
