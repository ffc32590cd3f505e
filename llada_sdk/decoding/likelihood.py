"""Log-likelihoods of a continuation under a mask predictor, on torch or numpy arrays.

``monte_carlo_log_likelihood`` is the estimator of the official ``get_log_likelihood.py`` (LLaDA paper
eq. 6 / App. B.5): draw a mask count per row (stratified over the batch), mask that many answer
tokens at random, and average ``sum CE / (mask ratio)`` -- a lower bound on ``log p(answer | prompt)``.
The masks come from the generator's library: with a ``numpy.random.Generator`` (what a seeded
``LLaDA.score`` passes) they are the same on every backend, so backends agree on the value; with a
``torch.Generator`` or None on torch, its RNG calls (one ``randint``, then one ``randperm`` per row)
follow the reference, so the same ``torch.manual_seed`` gives the reference's value.

``chain_log_likelihoods`` is the deterministic left-to-right chain rule that ``[MASK:auto]`` ranks
candidate texts with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from llada_sdk.backends.base import MaskPredictor
from llada_sdk.decoding.arrays import NUMPY, Array, ArrayOps, Generator, ops_for
from llada_sdk.decoding.policies import classifier_free_guidance


def _logits(predictor: MaskPredictor, batch: Array, prompt_index: Array, cfg_scale: float, mask_id: int) -> Array:
    xp = ops_for(batch)
    if cfg_scale > 0:
        uncond = xp.copy(batch)
        uncond[:, prompt_index] = mask_id
        out = predictor(xp.concat([batch, uncond]), None)
        if isinstance(out, tuple):
            raise ValueError("scoring needs a backend that returns logits, not fused candidates")
        B = batch.shape[0]
        return classifier_free_guidance(out[:B], out[B:], cfg_scale)
    out = predictor(batch, None)
    if isinstance(out, tuple):
        raise ValueError("scoring needs a backend that returns logits, not fused candidates")
    return out


def _draw_masks(dx: ArrayOps, T: int, batch: int, like: Array, generator: Generator) -> tuple[Array, Array]:
    """One batch of the estimator's masks: a count per row, stratified over the batch from one random
    start (``randint``), and which of the ``T`` answer positions each row masks (one ``randperm``
    per row) -- the reference's draws, in its order. Returns ``(counts [batch], masked [batch, T])``."""
    k = dx.randint(1, T + 1, like=like, generator=generator)
    spread = dx.linspace(float(k), float(k) + (batch - 1) * (T / batch), batch, like=like)
    counts = ((dx.astype(dx.round(spread), "int64") - 1) % T) + 1
    drawn = dx.arange(0, T, like=like)[None, :] < counts[:, None]
    for row in range(batch):
        drawn[row] = drawn[row][dx.randperm(T, like=like, generator=generator)]
    return counts, drawn


def chain_log_likelihoods(
    predictor: MaskPredictor,
    sequences: list[list[int]],
    start: int,
    *,
    mask_id: int,
    pad_id: int,
    ops: ArrayOps,
    asarray: Callable[[Any], Array],
    stops: Sequence[int] | None = None,
    rows_per_call: int = 128,
    suffix_length: int = 0,
) -> list[float]:
    """The left-to-right chain rule over ``sequence[start:stop]`` of each sequence, given what precedes
    it: with ``end = len(sequence) - suffix_length``, every scored position ``j`` gets one row with the
    positions ``j .. end - 1`` masked (everything before ``j`` and the suffix visible) that gives
    ``log p(x_j | ...)``, and the terms are summed. ``stops[i]`` (default ``end``) ends the scored
    tokens of sequence ``i`` early: the tokens from there to ``end`` are masked in every row and never
    scored (they still give the model the text's length). Deterministic (no masks are drawn), so texts
    compared on it differ only by their own tokens -- the Monte Carlo bound's sampling noise is larger
    than the gap between two candidate lengths (docs/decoding.md: "How [MASK:auto] works"). Costs one forward row
    per scored token; the rows of all sequences run together, right-padded with ``pad_id`` behind an
    attention mask."""
    L = max(len(s) for s in sequences)
    rows: list[list[int]] = []
    targets: list[tuple[int, int]] = []  # (position, token) scored by each row
    owner: list[int] = []
    if stops is not None and len(stops) != len(sequences):
        raise ValueError(f"`stops` must have one entry per sequence ({len(sequences)}), got {len(stops)}")
    for i, seq in enumerate(sequences):
        end = len(seq) - suffix_length
        stop = end if stops is None else stops[i]
        if not start < stop <= end:
            raise ValueError(
                f"every sequence needs at least one token between `start` and the suffix: start {start}, "
                f"stop {stop}, end {end} (sequence {i})"
            )
        padded = list(seq) + [pad_id] * (L - len(seq))
        for j in range(start, stop):
            rows.append(padded[:j] + [mask_id] * (end - j) + padded[end:])
            targets.append((j, padded[j]))
            owner.append(i)
    am = [[1] * len(sequences[i]) + [0] * (L - len(sequences[i])) for i in owner]
    total = [0.0] * len(sequences)
    with ops.no_grad():
        for a in range(0, len(rows), rows_per_call):
            ids = asarray(rows[a : a + rows_per_call])
            logits = predictor(ids, asarray(am[a : a + rows_per_call]))
            if isinstance(logits, tuple):
                raise ValueError("scoring needs a backend that returns logits, not fused candidates")
            picked = targets[a : a + rows_per_call]
            at = logits[asarray(list(range(len(picked)))), asarray([j for j, _ in picked])]  # [rows, V]
            logp = ops.take_last(ops.log_softmax(ops.astype(at, "float32"), -1), asarray([t for _, t in picked]))
            for i, v in zip(owner[a : a + rows_per_call], logp.tolist()):
                total[i] += float(v)
    return total


def monte_carlo_log_likelihood(
    predictor: MaskPredictor,
    prompt: Array,
    answer: Array,
    *,
    mask_id: int,
    mc_num: int = 128,
    batch_size: int = 16,
    cfg_scale: float = 0.0,
    generator: Generator = None,
) -> float:
    """Estimate of ``log p(answer | prompt)`` (1-D int64 id arrays); see the module docstring.

    ``generator``: a ``torch.Generator`` for torch arrays, a ``numpy.random.Generator`` for numpy;
    None draws from the library's global RNG.
    """
    if len(prompt.shape) != 1 or len(answer.shape) != 1:
        raise ValueError("`prompt` and `answer` must be 1-D id arrays")
    T = int(answer.shape[0])
    if T == 0:
        raise ValueError("`continuation` must contain at least one token")
    if batch_size < 1 or mc_num < batch_size or mc_num % batch_size:
        raise ValueError(f"`mc_num` ({mc_num}) must be a positive multiple of `batch_size` ({batch_size})")
    xp = ops_for(prompt)
    # masks come from the generator's library: numpy draws give the same masks on every backend
    dx = NUMPY if isinstance(generator, np.random.Generator) else xp
    dlike = dx.asarray([0]) if dx is not xp else prompt
    P = int(prompt.shape[0])
    one = xp.concat([prompt, answer])[None, :]
    seq = xp.concat([one] * batch_size, 0)
    prompt_index = xp.arange(0, P + T, like=prompt) < P
    total = 0.0
    rounds = mc_num // batch_size
    with xp.no_grad():
        for _ in range(rounds):
            counts, drawn = _draw_masks(dx, T, batch_size, dlike, generator)
            if dx is not xp:
                counts = xp.asarray(counts.tolist(), "int64", like=prompt)
                drawn = xp.asarray(drawn.tolist(), "bool", like=prompt)
            masked = xp.concat([xp.full((batch_size, P), 0, "bool", like=prompt), drawn], 1)
            noisy = xp.where(masked, mask_id, seq)
            ratio = xp.where(masked, (counts / T)[:, None], 1.0)
            logits = _logits(predictor, noisy, prompt_index, cfg_scale, mask_id)
            logp = xp.log_softmax(logits[masked], -1)
            ce = -xp.take_last(logp, seq[masked]) / ratio[masked]
            total += float(ce.sum()) / batch_size
    return -total / rounds
