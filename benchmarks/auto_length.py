"""What `[MASK:auto]` costs and how often it is right on the bundled model, per length score.

Runs, for each way of ranking the candidate lengths -- the deterministic left-to-right chain rule
(what the library uses) and the Monte Carlo bound it replaced (32 masked copies per candidate from a
fixed seed, defined here) -- the eval's two-span infill (`X lives in [MASK:auto] and works as a
[MASK:auto].`), one-span backward completion (`[MASK:auto]'s parent is P.`) and schema extraction
(`fill_schema` of name, city and job from a sentence about an unseen person), and prints side by side
the exact-match rate, the mean wall time per call, the model calls and the rows they carried.

    python benchmarks/auto_length.py [--threads 1] [--n 10]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import _repo  # noqa: F401  (the repository root on sys.path: recipes)
import numpy as np
import torch
from pydantic import create_model

from llada_sdk import LLaDA
from llada_sdk.decoding.arrays import NUMPY
from llada_sdk.decoding.likelihood import _draw_masks
from llada_sdk.text import infill
from llada_sdk.text.structured import fill_schema_result
from recipes.bundled_model.corpus import (
    EXTRACTION_TEMPLATES,
    N_SYNTHETIC,
    build_corpus,
    extraction_sentence,
    synthetic_people,
)


class Counting:
    """Counts the calls and rows of the model the search uses."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls, self.rows = model, 0, 0

    def __call__(self, ids: torch.Tensor, attention_mask: Any = None) -> torch.Tensor:
        self.calls += 1
        self.rows += ids.shape[0]
        return self.model(ids, attention_mask)  # type: ignore[no-any-return]


def monte_carlo_scores(llm: LLaDA, texts: list[list[int]], mc_num: int = 32, seed: int = 0) -> list[float]:
    """The previous length score: each whole text's Monte Carlo bound (the official estimator's masks,
    ``mc_num`` copies from ``seed``; the closing EOS is context), all copies in batches of 128 rows."""
    start, L = len(llm.bos_ids), max(len(t) for t in texts)
    mask_id, pad = llm.config.mask_token_id, llm.config.eos_token_id
    rows, masks, weights, am = [], [], [], []
    for seq in texts:
        T = len(seq) - start - 1
        counts, drawn = _draw_masks(NUMPY, T, mc_num, NUMPY.asarray([0]), np.random.default_rng(seed))
        padded = list(seq) + [pad] * (L - len(seq))
        for r in range(mc_num):
            m = [False] * start + [bool(v) for v in drawn[r]] + [False] * (L - len(seq) + 1)
            rows.append([mask_id if f else t for f, t in zip(m, padded)])
            masks.append(m)
            weights.append(T / float(counts[r]))
            am.append([1] * len(seq) + [0] * (L - len(seq)))
    originals = [list(t) + [pad] * (L - len(t)) for t in texts for _ in range(mc_num)]
    predictor = llm.backend.predictor(None)
    nll: list[float] = []
    with torch.no_grad():
        for i in range(0, len(rows), 128):
            logits = predictor(torch.tensor(rows[i : i + 128]), torch.tensor(am[i : i + 128]))
            logp = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(originals[i : i + 128])[..., None])
            nll += (-logp[..., 0] * torch.tensor(masks[i : i + 128])).sum(-1).tolist()
    return [
        -sum(nll[j * mc_num + r] * weights[j * mc_num + r] for r in range(mc_num)) / mc_num for j in range(len(texts))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    llm = LLaDA.from_pretrained(device="cpu")
    counter = Counting(llm.model)
    llm.backend.predictor = lambda decode=None, logits=False: counter  # type: ignore[method-assign]
    corpus = build_corpus(0)
    people = corpus.people[: args.n]
    kb = {n for p in corpus.people for n in (p.name, p.parent)}
    fresh = synthetic_people(0, N_SYNTHETIC + args.n, exclude=kb)[N_SYNTHETIC:]
    person = create_model("Person", name=(str, ...), city=(str, ...), job=(str, ...))

    def extract(i: int) -> float:
        p = fresh[i]
        got = json.loads(fill_schema_result(llm, extraction_sentence(p, i % len(EXTRACTION_TEMPLATES)), person).text)
        return sum(got[k] == v for k, v in {"name": p.name, "city": p.city, "job": p.job}.items()) / 3

    cases: dict[str, Callable[[int], float]] = {
        "two auto spans": lambda i: float(
            llm.infill(f"{people[i].name} lives in [MASK:auto] and works as a [MASK:auto].").fills
            == [people[i].city, people[i].job]
        ),
        "backward, auto": lambda i: float(
            llm.complete(suffix=f"'s parent is {people[i].parent}.").text == people[i].name
        ),
        "fill_schema extraction (fields)": extract,
    }
    scorers: dict[str, Callable[[LLaDA, list[list[int]]], list[float]]] = {
        "chain rule (now)": infill._score_texts,
        "Monte Carlo, 32 copies (before)": monte_carlo_scores,
    }
    print(f"threads={args.threads}, {args.n} items each, bundled model")
    print("| call | length score | exact | seconds per call | model calls per call | rows per model call |")
    print("|---|---|---|---|---|---|")
    for name, case in cases.items():
        for label, scorer in scorers.items():
            infill._score_texts = scorer  # type: ignore[assignment]
            counter.calls = counter.rows = 0
            t = time.perf_counter()
            exact = sum(case(i) for i in range(args.n)) / args.n
            seconds = (time.perf_counter() - t) / args.n
            calls = counter.calls / args.n
            rows = counter.rows / max(1, counter.calls)
            print(f"| {name} | {label} | {100 * exact:.1f} % | {seconds:.2f} | {calls:.1f} | {rows:.1f} |", flush=True)
    infill._score_texts = scorers["chain rule (now)"]  # type: ignore[assignment]


if __name__ == "__main__":
    main()
