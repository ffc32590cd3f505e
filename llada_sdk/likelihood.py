"""Log-likelihood bounds of a continuation under a mask predictor.

``monte_carlo_log_likelihood`` is the estimator of the official ``get_log_likelihood.py`` (LLaDA paper
eq. 6 / App. B.5): draw a mask count per row (stratified over the batch), mask that many answer
tokens at random, and average ``sum CE / (mask ratio)`` -- a lower bound on ``log p(answer | prompt)``.
Its RNG calls (one ``randint``, then one ``randperm`` per row) follow the reference, so the same
``torch.manual_seed`` gives the same value.

``pseudo_log_likelihood`` is deterministic: each scored position is masked alone and predicted from
everything else. It ranks candidate fills for ``[MASK:auto]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llada_sdk.engine import MaskPredictor
from llada_sdk.policies import classifier_free_guidance


def _logits(
    predictor: MaskPredictor, batch: torch.Tensor, prompt_index: torch.Tensor, cfg_scale: float, mask_id: int
) -> torch.Tensor:
    if cfg_scale > 0:
        uncond = batch.clone()
        uncond[:, prompt_index] = mask_id
        out = predictor(torch.cat([batch, uncond]), None)
        assert isinstance(out, torch.Tensor), "scoring needs a backend that returns logits"
        cond, un = out.chunk(2)
        return classifier_free_guidance(cond, un, cfg_scale)
    out = predictor(batch, None)
    assert isinstance(out, torch.Tensor), "scoring needs a backend that returns logits"
    return out


@torch.inference_mode()
def monte_carlo_log_likelihood(
    predictor: MaskPredictor,
    prompt: torch.Tensor,
    answer: torch.Tensor,
    *,
    mask_id: int,
    mc_num: int = 128,
    batch_size: int = 16,
    cfg_scale: float = 0.0,
    generator: torch.Generator | None = None,
) -> float:
    """Estimate of ``log p(answer | prompt)`` (1-D id tensors); see the module docstring."""
    if prompt.dim() != 1 or answer.dim() != 1:
        raise ValueError("`prompt` and `answer` must be 1-D id tensors")
    T = answer.numel()
    if T == 0:
        raise ValueError("`continuation` must contain at least one token")
    if batch_size < 1 or mc_num < batch_size or mc_num % batch_size:
        raise ValueError(f"`mc_num` ({mc_num}) must be a positive multiple of `batch_size` ({batch_size})")
    device = prompt.device
    P = prompt.numel()
    seq = torch.cat([prompt, answer.to(device)])[None, :].repeat(batch_size, 1)
    prompt_index = torch.arange(seq.shape[1], device=device) < P
    total = 0.0
    rounds = mc_num // batch_size
    for _ in range(rounds):
        k = torch.randint(1, T + 1, (), device=device, generator=generator)
        counts = torch.round(
            torch.linspace(float(k), float(k) + (batch_size - 1) * (T / batch_size), steps=batch_size, device=device)
        ).long()
        counts = ((counts - 1) % T) + 1
        masked = torch.arange(T, device=device).repeat(batch_size, 1) < counts[:, None]
        for row in range(batch_size):
            masked[row] = masked[row][torch.randperm(T, generator=generator, device=device)]
        masked = torch.cat([torch.zeros(batch_size, P, dtype=torch.bool, device=device), masked], dim=1)
        noisy = torch.where(masked, torch.full_like(seq, mask_id), seq)
        ratio = (counts / T)[:, None].expand(-1, seq.shape[1])
        logits = _logits(predictor, noisy, prompt_index, cfg_scale, mask_id)
        ce = F.cross_entropy(logits[masked], seq[masked], reduction="none") / ratio[masked]
        total += ce.sum().item() / batch_size
    return -total / rounds


@torch.inference_mode()
def pseudo_log_likelihood(
    predictor: MaskPredictor, ids: torch.Tensor, positions: list[int], *, mask_id: int, chunk: int = 64
) -> torch.Tensor:
    """``log p(ids[j] | ids with j masked)`` for each ``j`` in ``positions`` (``ids``: 1-D)."""
    out = []
    for i in range(0, len(positions), chunk):
        pos = torch.tensor(positions[i : i + chunk], device=ids.device)
        batch = ids[None, :].repeat(len(pos), 1)
        batch[torch.arange(len(pos)), pos] = mask_id
        logits = predictor(batch, None)
        assert isinstance(logits, torch.Tensor), "scoring needs a backend that returns logits"
        logp = torch.log_softmax(logits[torch.arange(len(pos)), pos].float(), dim=-1)
        out.append(logp.gather(-1, ids[pos][:, None]).squeeze(-1))
    return torch.cat(out)
