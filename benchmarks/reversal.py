"""The reversal curse at toy scale: the bundled diffusion model vs an autoregressive twin.

The twin has the same size, data, seed and step budget (``TrainConfig(causal=True)``: causal attention,
next-token loss). Both saw every parent fact only forwards ("X's parent is P.", "The parent of X is P.").
The table compares writing the text that *follows* a given beginning with writing the person that
*precedes* a given ending.

    python benchmarks/reversal.py                      # trains the twin into runs/ar-twin if missing (~35 min)
    python benchmarks/reversal.py --ar /tmp/ar-run     # reuse a trained twin
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import _repo  # noqa: F401  (the repository root on sys.path: recipes)
import torch

from llada_sdk import LLaDA
from llada_sdk.training import TrainConfig, set_causal, train
from recipes.bundled_model.corpus import build_corpus


@torch.inference_mode()
def ar_generate(llm: Any, prompt: str, max_new: int = 12) -> str:
    """Greedy left-to-right decoding of the causal twin, stopped at EOS."""
    tok = llm.tokenizer
    ids = [llm.config.bos_token_id, *tok.encode(prompt)]
    out: list[int] = []
    for _ in range(max_new):
        nxt = int(llm.model(torch.tensor([ids + out]))[0, -1].argmax())
        if nxt == llm.config.eos_token_id:
            break
        out.append(nxt)
    return str(tok.decode(out))


@torch.inference_mode()
def ar_log_prob(llm: Any, text: str) -> float:
    ids = torch.tensor([[llm.config.bos_token_id, *llm.tokenizer.encode(text), llm.config.eos_token_id]])
    logp = torch.log_softmax(llm.model(ids)[0, :-1].float(), -1)
    return float(logp.gather(-1, ids[0, 1:, None]).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mdm", default=None, help="diffusion model (default: the bundled model)")
    parser.add_argument("--ar", default="runs/ar-twin", help="autoregressive twin directory (trained if missing)")
    parser.add_argument("--limit", type=int, default=None, help="people to evaluate (default: all 40)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ar_dir = Path(args.ar)
    state = ar_dir / "trainer_state.json"
    if not state.exists() or not json.loads(state.read_text())["config"]["causal"]:
        print(f"training the autoregressive twin into {ar_dir} ...")
        train(TrainConfig(causal=True), ar_dir)
    mdm = LLaDA.from_pretrained(args.mdm, device="cpu", dtype="float32")
    ar = LLaDA.from_pretrained(ar_dir, device="cpu", dtype="float32")
    set_causal(ar.model)
    people = build_corpus(0).people[: args.limit]
    names = [p.name for p in people]
    t0 = time.time()
    rows: dict[str, list[float]] = {"LLaDA (diffusion)": [0, 0, 0, 0], "autoregressive twin": [0, 0, 0, 0]}
    for p in people:
        n = len(mdm.tokenizer.encode(p.name))
        r = rows["LLaDA (diffusion)"]
        r[0] += mdm.complete(f"{p.name} lives in").text.startswith(f" {p.city}")
        r[1] += mdm.complete(f"The parent of {p.name} is").text.startswith(f" {p.parent}")
        r[2] += mdm.infill(f"[MASK:{n}]'s parent is {p.parent}.").fills == [p.name]
        scores = [mdm.score("", f"{x}'s parent is {p.parent}.", mc_num=16, batch_size=16) for x in names]
        r[3] += names[max(range(len(names)), key=scores.__getitem__)] == p.name
        r = rows["autoregressive twin"]
        r[0] += ar_generate(ar, f"{p.name} lives in").startswith(f" {p.city}")
        r[1] += ar_generate(ar, f"The parent of {p.name} is").startswith(f" {p.parent}")
        r[2] += ar_generate(ar, f"{p.parent} is the parent of").strip().startswith(p.name)
        scores = [ar_log_prob(ar, f"{x}'s parent is {p.parent}.") for x in names]
        r[3] += names[max(range(len(names)), key=scores.__getitem__)] == p.name
    n_people = len(people)
    print(f"\n{n_people} people, greedy decoding, {time.time() - t0:.0f} s\n")
    print(
        "| model | forward: `X lives in` -> city | forward: `The parent of X is` -> P | "
        "reversal: write X before `'s parent is P.` | reversal: rank the 40 names by likelihood |"
    )
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{100 * v / n_people:.1f} %" for v in r) + " |")
    print(
        "\nThe autoregressive twin cannot condition on a suffix; its 'write X' column prompts "
        "`P is the parent of` (never seen in training), the only left-to-right way to ask."
    )


if __name__ == "__main__":
    main()
