"""Can the bundled model's architecture learn to copy a word from the prompt? (issue 10's blocker)

The tool-use and extraction targets need the model to copy what it reads: a name from the question
into the tool call, a city from the tool result or a sentence into the answer. This probe trains a
fresh model of the bundled size (d_model 128, 4 layers, 4 heads, the tokenizer with whitespace split
from words, ``TrainConfig(split_spaces=True)``) on nothing but extraction rows -- prompt = a text
about a person, answer = its JSON, the LLaDA SFT objective -- and measures the simplest copy there
is: the city slot, with every other token of the JSON given, on people never trained on.

Row kinds (``--rows``):
- ``city``: ``Kelso`` newline ``{"city": "Kelso"}`` -- the city is the only word of the prompt;
- ``short``: the city alone, ``name city`` or ``name job city`` (the matching JSON), a third each;
- ``full``: the evaluation's sentences (``X lives in C and works as a J.`` ...) and their JSON;
- ``mix``: half ``short``, half ``full``.

    python benchmarks/copy_probe.py                        # the three kinds, 600 steps each (~6 min)
    python benchmarks/copy_probe.py --rows full --steps 1500
    python benchmarks/copy_probe.py --rows short --steps 900 --init-std 0.09 --init-which all   # or --tie
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import _repo  # noqa: F401  (the repository root on sys.path: recipes)
import torch

from llada_sdk.model import LLaDAModel
from llada_sdk.training import (
    TrainConfig,
    forward_process,
    init_weights,
    llada_loss,
    make_optimizer,
    model_config,
    save_checkpoint,
    save_tokenizer,
    train_tokenizer,
)
from recipes.bundled_model.corpus import (
    EXTRACTION_TEMPLATES,
    Person,
    build_corpus,
    extraction_sentence,
    synthetic_people,
    tokenizer_training_text,
)


def make_row(kind: str, p: Person, rng: random.Random) -> tuple[str, dict[str, str]]:
    """``(prompt text, facts)`` of one row of ``kind``."""
    if kind == "mix":  # half short rows, half the evaluation's sentences
        kind = "full" if rng.random() < 0.5 else "short"
    if kind == "full":
        sentence = extraction_sentence(p, rng.randrange(len(EXTRACTION_TEMPLATES)))
        return sentence, {"name": p.name, "city": p.city, "job": p.job}
    k = 0 if kind == "city" else rng.randrange(3)
    words = [[p.city], [p.name, p.city], [p.name, p.job, p.city]][k]
    keys = [["city"], ["name", "city"], ["name", "job", "city"]][k]
    return " ".join(words), dict(zip(keys, words))


def city_accuracy(model: Any, tok: Any, people: list[Person], kind: str) -> float:
    """Argmax at the city slot, everything else of the row given (the easiest copy there is)."""

    def enc(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False).ids)

    mask, bos, eos = (tok.token_to_id(t) for t in ("<|mdm_mask|>", "<|startoftext|>", "<|endoftext|>"))
    hits = 0
    model.eval()
    with torch.no_grad():
        for i, p in enumerate(people):
            text, facts = make_row(kind, p, random.Random(i))
            head, tail = json.dumps(facts).split(json.dumps(p.city), 1)
            ids = [bos, *enc(f'{text}\n{head}"'), mask, *enc(f'"{tail}'), eos]
            logits = model(torch.tensor([ids]))[0, ids.index(mask)]
            hits += tok.decode([int(logits.argmax())]) == p.city
    model.train()
    return hits / len(people)


def probe(
    kind: str,
    steps: int,
    lr: float,
    seed: int = 0,
    init_std: float = 0.0,
    init_which: str = "qk",
    tie: bool = False,
    save: str | None = None,
) -> list[dict[str, Any]]:
    corpus = build_corpus(seed, tools=True)
    tok = train_tokenizer(tokenizer_training_text(corpus), 512, tool_tokens=True, split_spaces=True)
    cfg = TrainConfig(vocab_size=512, seq_len=192, lr=lr, seed=seed)
    model = LLaDAModel(model_config(cfg, tok))
    init_weights(model, seed)
    if init_std:  # re-draw the q/k projections (or every linear) with a larger standard deviation
        names = ("q_proj", "k_proj") if init_which == "qk" else ("proj", "attn_out", "ff_out")
        g = torch.Generator().manual_seed(seed + 7)
        for name, param in model.named_parameters():
            if param.dim() == 2 and "wte" not in name and any(n in name for n in names):
                param.data.copy_(torch.randn(param.shape, generator=g) * init_std)
    if tie:  # the output head shares the input embedding
        model.transformer.ff_out.weight = model.transformer.wte.weight
    opt = make_optimizer(model, cfg)
    kb = {n for p in corpus.people for n in (p.name, p.parent)}
    pool = synthetic_people(seed + 1, 3000, exclude=kb)
    held = synthetic_people(seed + 2, 40, exclude=kb | {p.name for p in pool})
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    mask_id, eos = tok.token_to_id("<|mdm_mask|>"), tok.token_to_id("<|endoftext|>")
    bos = tok.token_to_id("<|startoftext|>")
    rows_out: list[dict[str, Any]] = []
    t0 = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 50)
        rows = []
        for _ in range(cfg.batch_size):
            text, facts = make_row(kind, rng.choice(pool), rng)
            prompt = [bos, *tok.encode(text + "\n", add_special_tokens=False).ids]
            rows.append((prompt + tok.encode(json.dumps(facts), add_special_tokens=False).ids + [eos], len(prompt)))
        width = max(len(r) for r, _ in rows)
        ids = torch.tensor([r + [eos] * (width - len(r)) for r, _ in rows])
        prompt_len = torch.tensor([n for _, n in rows])
        noisy, masked, p = forward_process(ids, prompt_len, mask_id, gen)
        loss = llada_loss(model(noisy), ids, masked, p, prompt_len)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 150 == 0 or step + 1 == steps:
            rows_out.append(
                {
                    "rows": kind,
                    "step": step + 1,
                    "loss": round(loss.item(), 3),
                    "city_copy_same_kind": city_accuracy(model, tok, held, kind),
                    "city_copy_full_sentence": city_accuracy(model, tok, held, "full"),
                    "seconds": round(time.time() - t0),
                }
            )
            print(json.dumps(rows_out[-1]), flush=True)
    if save:  # the weights in the official format, with the tokenizer (`--init-from` of the training)
        save_checkpoint(model, Path(save))
        save_tokenizer(tok, Path(save))
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", choices=["city", "short", "full", "mix", "all"], default="all")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init-std", type=float, default=0.0, help="re-draw weights with this std (0: 0.02)")
    parser.add_argument("--init-which", choices=["qk", "all"], default="qk", help="q/k projections or every linear")
    parser.add_argument("--tie", action="store_true", help="tie the output head to the input embedding")
    parser.add_argument("--save", help="write the trained model (official format + tokenizer) here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.steps} steps of 32 rows, lr {args.lr}")
    for kind in ["city", "short", "full"] if args.rows == "all" else [args.rows]:
        probe(
            kind, args.steps, args.lr, init_std=args.init_std, init_which=args.init_which, tie=args.tie, save=args.save
        )


if __name__ == "__main__":
    main()
