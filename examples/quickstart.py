"""Tour of llada-sdk on the bundled model: infill, complete both ways, chat, score. Runs offline in seconds."""

from __future__ import annotations

import torch

from llada_sdk import LLaDA

torch.set_num_threads(1)
llm = LLaDA.from_pretrained()  # the bundled model; pass a directory or "GSAI-ML/LLaDA-8B-Instruct" for others

# 1. Infilling: fill a gap in the middle of a text ([MASK:n] = n tokens, [MASK:auto] = model picks).
print(llm.infill("Zapur lives in [MASK:auto] and works as a weaver.").text)

# 2. Forward completion: what comes after a beginning.
print("Zapur lives in" + llm.complete("Zapur lives in").text)

# 3. Backward completion: what comes *before* a given ending -- the reversal curse does not apply.
print(llm.complete(suffix="'s parent is Lotrobar.").text + "'s parent is Lotrobar.")

# 4. Multi-turn chat through the model's chat template.
chat = llm.session()
print(chat.send("Where does Zapur live?").text)
print(chat.send("Who is Zapur's parent?").text)

# 5. Scoring: the Monte Carlo log-likelihood bound, and multiple choice on it.
pick = llm.choose("Zapur lives in", [" Morrow.", " Duskmere.", " Kelso."])
print(f"most likely: {pick.text!r}  scores: {[round(s, 2) for s in pick.scores]}")
