"""Scoring: the Monte Carlo log-likelihood bound of a continuation, and multiple choice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from llada_sdk.decoding.likelihood import monte_carlo_log_likelihood
from llada_sdk.options import ScoreOptions
from llada_sdk.results import Choice
from llada_sdk.text.parts import bos_ids
from llada_sdk.text.runner import check_length
from llada_sdk.text.validate import check_text

if TYPE_CHECKING:
    from llada_sdk.text.parts import ModelParts


def pair_ids(
    llm: ModelParts, prompt: str | Sequence[int], continuation: str | Sequence[int]
) -> tuple[list[int], list[int]]:
    """``[BOS] prompt`` and ``continuation`` as ids; trailing spaces of a text prompt move to the
    continuation (as lm-eval does). Token ids are taken as they are."""
    if isinstance(prompt, str) and isinstance(continuation, str):
        check_text(prompt, "prompt")
        check_text(continuation, "continuation")
        moved = len(prompt) - len(prompt.rstrip(" "))
        prompt, continuation = prompt[: len(prompt) - moved], prompt[len(prompt) - moved :] + continuation
        tok = llm.require_tokenizer()
        return bos_ids(llm.config) + tok.encode(prompt), tok.encode(continuation)
    for name, value in (("prompt", prompt), ("continuation", continuation)):
        if isinstance(value, str):
            continue
        if isinstance(value, (bytes, bytearray)) or not isinstance(value, Sequence):
            raise TypeError(f"`{name}` must be a str or a sequence of token ids, got {type(value).__name__}")
    if isinstance(prompt, str) or isinstance(continuation, str):
        raise TypeError("`prompt` and `continuation` must both be text or both be token ids")
    return [int(t) for t in prompt], [int(t) for t in continuation]


def score(
    llm: ModelParts, prompt: str | Sequence[int], continuation: str | Sequence[int], options: ScoreOptions
) -> float:
    """Monte Carlo lower bound on ``log p(continuation | prompt)`` (the official estimator).

    A seeded score (``options.seed``, 0 by default) draws its masks from one ``numpy.random.Generator``
    on every backend, so torch, onnx and any other backend score the same masked copies and give the
    same number (within float tolerance) for the same seed; a ``torch.Generator`` on torch and numpy's on
    the others drew different masks. ``seed=None`` keeps the reference's draws: the backend library's
    global RNG (``torch.manual_seed`` reproduces the official ``get_log_likelihood.py`` on torch)."""
    p, c = pair_ids(llm, prompt, continuation)
    if not c:
        raise ValueError("`continuation` must contain at least one token")
    backend = llm.backend
    check_length(backend, len(p) + len(c), "score")
    x = backend.asarray(p + c)
    gen = None if options.seed is None else np.random.default_rng(options.seed)
    return monte_carlo_log_likelihood(
        backend.predictor(None),
        x[: len(p)],
        x[len(p) :],
        mask_id=llm.config.mask_token_id,
        mc_num=options.mc_num,
        batch_size=options.batch_size,
        cfg_scale=options.cfg_scale,
        generator=gen,
    )


def choose(
    llm: ModelParts,
    prompt: str,
    choices: Sequence[str],
    options: ScoreOptions,
    *,
    normalize: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Choice:
    """The choice with the highest ``score`` (the same seed for every choice); ``normalize`` divides
    each score by the choice's token count (lm-eval's ``acc_norm`` spirit)."""
    if isinstance(choices, str) or not isinstance(choices, Sequence):
        raise TypeError(f"`choices` must be a list of strings, got {type(choices).__name__}")
    if not choices:
        raise ValueError("`choices` must not be empty")
    scores = []
    for i, c in enumerate(choices):
        if not isinstance(c, str):
            raise TypeError(f"`choices[{i}]` must be a string, got {type(c).__name__}")
        s = score(llm, prompt, c, options)
        if normalize:
            s /= max(1, len(pair_ids(llm, prompt, c)[1]))
        scores.append(s)
        if progress is not None:
            progress(i + 1)
    best = max(range(len(scores)), key=scores.__getitem__)
    return Choice(index=best, text=choices[best], scores=scores)
