"""Decoding policies: pure functions on arrays, shared by every backend.

No model, no tokenizer, no globals: the engine (``engine.py``) composes them. Each works on torch
tensors and numpy arrays alike through the namespace of ``arrays.py`` (one copy of every rule; the
exported fused head traces the torch path). Shapes: ``B`` rows, ``L`` canvas positions, ``V`` vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

from llada_sdk.decoding.arrays import Array, Generator, ops_for


@dataclass(frozen=True)
class CandidateRules:
    """How logits become a candidate token and a confidence (the EOS/EOT options of the reference).

    Attributes:
        eos_id, eot_id: ``<|endoftext|>`` / ``<|eot_id|>`` (None when the model has no such token).
        temperature: Gumbel-max temperature; 0 is greedy.
        remasking: ``"low_confidence"`` (softmax probability) or ``"random"`` (uniform scores).
        logits_eos_inf: EOS can never be chosen.
        confidence_eos_eot_inf: EOS/EOT candidates are committed last.
        reference_compat: the reference's quirks (its EOS/EOT rule, softmax in the logits' dtype).
    """

    eos_id: int | None = None
    eot_id: int | None = None
    temperature: float = 0.0
    remasking: str = "low_confidence"
    logits_eos_inf: bool = False
    confidence_eos_eot_inf: bool = False
    reference_compat: bool = False


def num_transfer_tokens(block_masked: Array, steps: int) -> Array:
    """How many tokens each row commits at each step of a block: int64 ``[B, steps]``.

    ``m`` masks over ``steps`` steps: every step gets ``m // steps`` and the first ``m % steps`` steps
    one more (12 masks / 5 steps -> 3, 3, 2, 2, 2), as the reference ``get_num_transfer_tokens``.

    Args:
        block_masked: bool ``[B, block_length]``, True where the block is still masked.
        steps: steps to spend on the block (> 0).
    """
    xp = ops_for(block_masked)
    m = xp.astype(block_masked, "int64").sum(-1)[:, None]
    base, rem = m // steps, m % steps
    extra = xp.astype(xp.arange(0, steps, like=block_masked)[None, :] < rem, "int64")
    return base + extra


def add_gumbel_noise(logits: Array, temperature: float, generator: Generator = None) -> Array:
    """Gumbel-max perturbation in float64: ``argmax`` of the result samples ``softmax(logits / T)``.

    ``exp(logits) / (-log U) ** T`` with ``U ~ U(0, 1)`` (the reference formula; float64 because low
    precision makes the sample visibly worse, LLaDA paper App. B). Identity at ``T == 0`` (no RNG draw).
    """
    if temperature == 0:
        return logits
    xp = ops_for(logits)
    logits = xp.astype(logits, "float64")
    noise = xp.rand(tuple(logits.shape), "float64", like=logits, generator=generator)
    return xp.exp(logits) / (-xp.log(noise)) ** temperature


def token_confidence(logits: Array, x0: Array, dtype: str | None = None) -> Array:
    """Softmax probability of the chosen token ``x0`` at every position: ``[B, L]``.

    ``dtype=None`` computes the softmax in the logits' dtype (the reference); ``"float32"`` avoids the
    many ties bf16 probabilities produce.
    """
    xp = ops_for(logits)
    if dtype is not None:
        logits = xp.astype(logits, dtype)
    return xp.take_last(xp.softmax(logits, -1), x0)


def random_confidence(like: Array, generator: Generator = None) -> Array:
    """Uniform random float32 scores of shape ``like.shape[:2]``: 'random' remasking."""
    xp = ops_for(like)
    return xp.rand((like.shape[0], like.shape[1]), "float32", like=like, generator=generator)


def suppress(logits: Array, token_ids: tuple[int | None, ...]) -> Array:
    """Set the logits of ``token_ids`` (None entries skipped) to -inf, in place; returns ``logits``."""
    for tid in token_ids:
        if tid is not None:
            logits[:, :, tid] = -float("inf")
    return logits


def excluded_from_confidence(rules: CandidateRules) -> tuple[int | None, ...]:
    """Tokens whose probability leaves the confidence softmax under ``confidence_eos_eot_inf``.

    The fixed rule drops EOS and EOT at any temperature. The reference's chained assignment
    drops both only at temperature 0 (where its noisy logits *are* the logits) and EOT alone above.
    """
    if not rules.confidence_eos_eot_inf:
        return ()
    if rules.reference_compat and rules.temperature != 0:
        return (rules.eot_id,)
    return (rules.eos_id, rules.eot_id)


def candidates(logits: Array, rules: CandidateRules, generator: Generator = None) -> tuple[Array, Array]:
    """Logits ``[B, L, V]`` -> candidate token ``x0`` and its confidence, both ``[B, L]``.

    The one rule every backend uses (the exported fused head traces it). ``logits`` is modified in place.
    """
    if rules.logits_eos_inf:
        suppress(logits, (rules.eos_id,))
    noisy = add_gumbel_noise(logits, rules.temperature, generator)
    x0 = ops_for(noisy).argmax(noisy, -1)
    suppress(logits, excluded_from_confidence(rules))
    if rules.remasking == "low_confidence":
        return x0, token_confidence(logits, x0, None if rules.reference_compat else "float32")
    if rules.remasking == "random":
        return x0, random_confidence(x0, generator)
    raise ValueError(f"`remasking` must be 'low_confidence' or 'random', got {rules.remasking!r}")


def select_top_k(confidence: Array, k: Array) -> Array:
    """Bool ``[B, L]``: per row the ``k[row]`` positions of highest confidence (ties: lower index)."""
    xp = ops_for(confidence)
    rows = []
    for row in range(confidence.shape[0]):
        rows.append(xp.topk_mask(confidence[row], int(k[row]))[None, :])
    return xp.concat(rows, 0)


def select_threshold(confidence: Array, masked: Array, threshold: float) -> Array:
    """Bool ``[B, L]``: every masked position with confidence >= ``threshold``, and at least the best one.

    Fast-dLLM's parallel decoding: the number committed per step adapts to the model's certainty.
    """
    xp = ops_for(confidence)
    chosen = (confidence >= threshold) & masked
    best = xp.argmax(confidence, 1)
    for row in range(confidence.shape[0]):
        if bool(masked[row].any()):
            chosen[row, int(best[row])] = True
    return chosen


def select_factor(confidence: Array, masked: Array, factor: float) -> Array:
    """Bool ``[B, L]``: Fast-dLLM's factor rule. Per row, with the masked confidences sorted
    descending ``c_1 >= c_2 >= ...``, commit the top ``n`` where ``n`` is the longest prefix with
    ``(i + 1) * (1 - c_i) < factor`` for every ``i <= n`` -- and at least one position.

    The bound shrinks the allowed error as more tokens are committed together (Fast-dLLM, Wu et al.
    2025, §3.3): confident positions are written in parallel, uncertain ones one at a time.
    """
    xp = ops_for(confidence)
    rows = []
    for row in range(confidence.shape[0]):
        values = sorted((float(c) for c, m in zip(confidence[row].tolist(), masked[row].tolist()) if m), reverse=True)
        n = 1
        while n < len(values) and (n + 2) * (1 - values[n]) < factor:
            n += 1
        rows.append(xp.topk_mask(confidence[row], n if values else 0)[None, :])
    return xp.concat(rows, 0)


def entropy(logits: Array) -> Array:
    """Entropy in nats of ``softmax(logits)`` at every position, float32 ``[B, L]`` (-inf logits count 0)."""
    xp = ops_for(logits)
    logits = xp.astype(logits, "float32")
    p = xp.softmax(logits, -1)
    logp = xp.where(p > 0, xp.log_softmax(logits, -1), 0.0)
    out: Array = -(p * logp).sum(-1)
    return out


def select_entropy_bound(confidence: Array, entropy: Array, masked: Array, bound: float) -> Array:
    """Bool ``[B, L]``: the EB-sampler rule (Ben-Hamu et al. 2025). Per row, with the masked positions
    ordered by confidence (descending, ties to the lower index), commit the longest prefix whose entropies
    satisfy ``sum(H) - max(H) <= bound`` -- and at least one position.

    ``sum(H) - max(H)`` bounds the dependence between the tokens committed together, so a step writes
    many positions only when their predictions are nearly deterministic; ``bound`` is the error
    tolerance in nats (small: closer to one token per step).
    """
    xp = ops_for(confidence)
    rows = []
    for row in range(confidence.shape[0]):
        conf, ent = confidence[row].tolist(), entropy[row].tolist()
        order = sorted((i for i, m in enumerate(masked[row].tolist()) if m), key=lambda i: (-conf[i], i))
        n, total, top = 0, 0.0, 0.0
        for i in order:
            total, top = total + ent[i], max(top, ent[i])
            if n > 0 and total - top > bound:
                break
            n += 1
        rows.append(xp.topk_mask(confidence[row], n)[None, :])
    return xp.concat(rows, 0)


def classifier_free_guidance(cond: Array, uncond: Array, scale: float) -> Array:
    """``uncond + (scale + 1) * (cond - uncond)`` (the reference's unsupervised CFG)."""
    return uncond + (scale + 1) * (cond - uncond)


def answer_ended(tokens: list[int], ends: set[int], mask_id: int) -> bool | None:
    """Whether an answer has ended: True at the first EOS/EOT, None at the first mask (not yet known),
    False when the tokens hold neither."""
    for t in tokens:
        if t == mask_id:
            return None
        if t in ends:
            return True
    return False


def cut_at_end(tokens: list[int], ends: set[int]) -> list[int]:
    """The answer's tokens before its first EOS/EOT."""
    for i, t in enumerate(tokens):
        if t in ends:
            return tokens[:i]
    return tokens
