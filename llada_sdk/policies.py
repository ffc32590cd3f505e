"""Decoding policies: pure functions on tensors, shared by every backend.

No model, no tokenizer, no globals: the engine (``engine.py``) composes them. Shapes: ``B`` rows,
``L`` canvas positions, ``V`` vocabulary.
"""

from __future__ import annotations

import torch


def num_transfer_tokens(block_masked: torch.Tensor, steps: int) -> torch.Tensor:
    """How many tokens each row commits at each step of a block: ``[B, steps]``.

    ``m`` masks over ``steps`` steps: every step gets ``m // steps`` and the first ``m % steps`` steps
    one more (12 masks / 5 steps -> 3, 3, 2, 2, 2), as the reference ``get_num_transfer_tokens``.

    Args:
        block_masked: bool ``[B, block_length]``, True where the block is still masked.
        steps: steps to spend on the block (> 0).
    """
    m = block_masked.sum(dim=1, keepdim=True)
    base, rem = m // steps, m % steps
    out = base.expand(-1, steps).clone()
    out += (torch.arange(steps, device=m.device)[None, :] < rem).to(out.dtype)
    return out.to(torch.int64)


def add_gumbel_noise(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gumbel-max perturbation in float64: ``argmax`` of the result samples ``softmax(logits / T)``.

    ``exp(logits) / (-log U) ** T`` with ``U ~ U(0, 1)`` (the reference formula; float64 because low
    precision makes the sample visibly worse, LLaDA paper App. B). Identity at ``T == 0`` (no RNG draw).
    """
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    noise = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
    return logits.exp() / (-torch.log(noise)) ** temperature


def token_confidence(logits: torch.Tensor, x0: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Softmax probability of the chosen token ``x0`` at every position: ``[B, L]``.

    ``dtype=None`` computes the softmax in the logits' dtype (the reference); float32 avoids the
    many ties bf16 probabilities produce.
    """
    if dtype is not None:
        logits = logits.to(dtype)
    p = torch.softmax(logits, dim=-1)
    return torch.gather(p, -1, x0.unsqueeze(-1)).squeeze(-1)


def random_confidence(
    shape: torch.Size, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform random scores: 'random' remasking commits random masked positions."""
    return torch.rand(shape[0], shape[1], device=device, generator=generator)


def select_top_k(confidence: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Bool ``[B, L]``: per row the ``k[row]`` positions of highest confidence (``torch.topk`` order)."""
    chosen = torch.zeros_like(confidence, dtype=torch.bool)
    for row in range(confidence.shape[0]):
        n = int(k[row])
        if n > 0:
            chosen[row, torch.topk(confidence[row], k=n).indices] = True
    return chosen


def select_threshold(confidence: torch.Tensor, masked: torch.Tensor, threshold: float) -> torch.Tensor:
    """Bool ``[B, L]``: every masked position with confidence >= ``threshold``, and at least the best one.

    Fast-dLLM's parallel decoding: the number committed per step adapts to the model's certainty.
    """
    chosen = (confidence >= threshold) & masked
    best = confidence.argmax(dim=1)
    rows = torch.arange(confidence.shape[0], device=confidence.device)
    has_mask = masked.any(dim=1)
    chosen[rows[has_mask], best[has_mask]] = True
    return chosen


def classifier_free_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """``uncond + (scale + 1) * (cond - uncond)`` (the reference's unsupervised CFG)."""
    return uncond + (scale + 1) * (cond - uncond)
