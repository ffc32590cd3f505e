"""The LLaDA objectives (GUIDELINES.md of the official repository): the masked-diffusion loss for
pre-training and SFT rows, and the causal loss of the autoregressive baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-3


def forward_process(
    ids: torch.Tensor, prompt_len: torch.Tensor, mask_id: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask each non-prompt token with a per-row probability ``p = (1 - eps) t + eps``.

    Returns ``(noisy [B, T], masked [B, T] bool, p [B])``. Prompt positions are never masked.
    """
    B, T = ids.shape
    t = torch.rand(B, generator=generator)
    p = (1 - EPS) * t + EPS
    masked = torch.rand(B, T, generator=generator) < p[:, None]
    masked &= torch.arange(T)[None, :] >= prompt_len[:, None]
    return torch.where(masked, torch.full_like(ids, mask_id), ids), masked, p


def llada_loss(
    logits: torch.Tensor, ids: torch.Tensor, masked: torch.Tensor, p: torch.Tensor, prompt_len: torch.Tensor
) -> torch.Tensor:
    """Mean over rows of ``sum_masked CE / p`` divided by the row's answer length (all tokens for
    pre-training rows, ``T - prompt_len`` for SFT rows)."""
    T = ids.shape[1]
    ce = F.cross_entropy(logits.float().transpose(1, 2), ids, reduction="none")  # [B, T]
    per_row = (ce * masked).sum(1) / p / (T - prompt_len).clamp(min=1)
    return per_row.mean()


def causal_loss(logits: torch.Tensor, ids: torch.Tensor, prompt_len: torch.Tensor) -> torch.Tensor:
    """Next-token CE for the autoregressive twin of the reversal benchmark (prompt tokens not scored)."""
    T = ids.shape[1]
    ce = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:], reduction="none")
    keep = torch.arange(1, T)[None, :] >= prompt_len[:, None].clamp(min=1)
    return (ce * keep).sum() / keep.sum()
