"""The decoding engine: one loop over a canvas, for every backend and every text call.

A *canvas* is a ``[B, L]`` id tensor in which ``mask_id`` marks what the model may write, plus the
*blocks*: ``(start, end)`` ranges decoded one after the other, each with its own step budget.
Forward completion, backward completion, infilling and chat differ only in how they build the canvas.

For each block and step the engine asks the backend (a ``MaskPredictor``) for logits, turns them into
a candidate token and a confidence per position (``policies``), commits the most confident masked
positions left of the block's end, and yields a ``StepEvent``. The engine knows nothing of tokenizers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from llada_sdk import policies


@runtime_checkable
class MaskPredictor(Protocol):
    """What a backend implements: ``(ids [B, L], attention_mask [B, L] | None) -> logits [B, L, V]``.

    A backend that fuses the token choice (e.g. an exported graph with argmax and softmax inside)
    returns ``(x0 [B, L], confidence [B, L])`` instead; the engine then supports greedy decoding
    only (temperature 0, no classifier-free guidance, no EOS options).
    """

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class DecodeConfig:
    """Resolved numeric settings of one decoding run (built from ``GenerationOptions``)."""

    mask_id: int
    eos_id: int | None = None
    eot_id: int | None = None
    temperature: float = 0.0
    cfg_scale: float = 0.0
    remasking: str = "low_confidence"
    threshold: float | None = None
    logits_eos_inf: bool = False
    confidence_eos_eot_inf: bool = False
    reference_compat: bool = False
    cache: str | None = None  # None | "prefix" | "dual" (Fast-dLLM's approximate KV caches)


@dataclass
class StepEvent:
    """One denoising step. ``filled[row]`` lists ``(position, token)`` committed in this step."""

    block: int
    step: int
    filled: list[list[tuple[int, int]]]
    forward_passes: int


@dataclass
class BlockEvent:
    """A block finished: canvas positions ``[start, end)`` hold no mask any more (but see ``stopped``)."""

    block: int
    start: int
    end: int
    forward_passes: int


@dataclass
class DoneEvent:
    """The run ended. ``forward_passes_saved`` counts the steps skipped by an early stop."""

    forward_passes: int
    forward_passes_saved: int = 0
    stopped_early: bool = False
    extra: dict[str, object] = field(default_factory=dict)


Event = StepEvent | BlockEvent | DoneEvent
StopCheck = Callable[[torch.Tensor, int], bool]


def _candidates(
    out: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    cfg: DecodeConfig,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backend output -> candidate token ``x0`` and its confidence, both ``[B, L]``."""
    if isinstance(out, tuple):
        x0, conf = out
        return x0, conf.to(torch.float32) if cfg.remasking == "low_confidence" else conf
    logits = out
    if cfg.logits_eos_inf and cfg.eos_id is not None:
        logits[:, :, cfg.eos_id] = -torch.inf
    noisy = policies.add_gumbel_noise(logits, cfg.temperature, generator)
    x0 = noisy.argmax(dim=-1)
    if cfg.confidence_eos_eot_inf:
        if cfg.reference_compat:
            # The reference's chained assignment: at T == 0 ``noisy is logits`` and both EOS and EOT
            # leave the softmax; at T > 0 only EOT does.
            if cfg.temperature == 0 and cfg.eos_id is not None:
                logits[:, :, cfg.eos_id] = -torch.inf
            if cfg.eot_id is not None:
                logits[:, :, cfg.eot_id] = -torch.inf
        else:
            for tid in (cfg.eos_id, cfg.eot_id):
                if tid is not None:
                    logits[:, :, tid] = -torch.inf
    if cfg.remasking == "low_confidence":
        dtype = None if cfg.reference_compat else torch.float32
        conf = policies.token_confidence(logits, x0, dtype)
    elif cfg.remasking == "random":
        conf = policies.random_confidence(x0.shape, x0.device, generator)
    else:
        raise ValueError(f"`remasking` must be 'low_confidence' or 'random', got {cfg.remasking!r}")
    return x0, conf


def _predict(
    predictor: MaskPredictor,
    x: torch.Tensor,
    attention_mask: torch.Tensor | None,
    prompt_index: torch.Tensor,
    cfg: DecodeConfig,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    if cfg.cfg_scale <= 0:
        return predictor(x, attention_mask)
    uncond = x.clone()
    uncond[prompt_index] = cfg.mask_id
    am = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
    out = predictor(torch.cat([x, uncond]), am)
    if isinstance(out, tuple):
        raise ValueError("`cfg_scale` > 0 needs a backend that returns logits, not fused candidates")
    cond, un = out.chunk(2)
    return policies.classifier_free_guidance(cond, un, cfg.cfg_scale)


def _commit(
    x: torch.Tensor,
    seg_start: int,
    out: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    end: int,
    k: torch.Tensor | None,
    cfg: DecodeConfig,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One step's choice and commit on the segment of ``x`` the backend predicted (``out`` covers
    positions ``seg_start ..``): eligible are its masked positions left of ``end``. Returns the
    committed positions as a bool ``[B, L]`` over the whole canvas."""
    n = (out[0] if isinstance(out, tuple) else out).shape[1]
    seg = x[:, seg_start : seg_start + n]
    mask_index = seg == cfg.mask_id
    x0, conf = _candidates(out, cfg, generator)
    positions = torch.arange(seg_start, seg_start + n, device=x.device)
    eligible = mask_index & (positions < end)[None, :]
    x0 = torch.where(mask_index, x0, seg)
    conf = torch.where(eligible, conf, torch.full_like(conf, -torch.inf))
    if k is not None:
        chosen = policies.select_top_k(conf, k)
    else:
        assert cfg.threshold is not None
        chosen = policies.select_threshold(conf, eligible, cfg.threshold)
    seg[chosen] = x0[chosen]
    full = torch.zeros_like(x, dtype=torch.bool)
    full[:, seg_start : seg_start + n] = chosen
    return full


def denoise(
    predictor: MaskPredictor,
    x: torch.Tensor,
    blocks: list[tuple[int, int]],
    steps_per_block: list[int],
    cfg: DecodeConfig,
    *,
    attention_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    stop_check: StopCheck | None = None,
) -> Iterator[Event]:
    """Denoise ``x`` **in place**, block by block, yielding events.

    Args:
        predictor: the backend.
        x: ``[B, L]`` canvas; ``cfg.mask_id`` marks the positions to write. Non-mask positions are
            never changed.
        blocks: canvas ranges ``(start, end)`` in decoding order. A step may commit any masked
            position left of the current block's end (masks inside the prompt compete in every
            block, as in the reference); the step budget comes from the block's own masks.
        steps_per_block: steps for each block. With ``cfg.threshold`` set it is ignored: a block
            runs until its masks are gone, committing every position whose confidence reaches the
            threshold (at least one per step).
        cfg: the resolved settings.
        attention_mask: ``[B, L]`` key-padding mask (1 = real token) or None.
        generator: RNG for Gumbel noise and random remasking; None uses torch's global RNG (the
            reference's call order, so ``torch.manual_seed`` reproduces its sampled outputs).
        stop_check: called after each block with ``(x, block_index)``; returning True fills every
            remaining mask with EOS and ends the run (early stop).
    """
    if len(blocks) != len(steps_per_block):
        raise ValueError("`blocks` and `steps_per_block` must have the same length")
    if not callable(predictor):
        raise TypeError("`predictor` must be callable")
    if cfg.cache is not None:
        if cfg.cache not in ("prefix", "dual"):
            raise ValueError(f"`cache` must be None, 'prefix' or 'dual', got {cfg.cache!r}")
        if not hasattr(predictor, "forward_cached"):
            raise ValueError("`cache` needs a backend with forward_cached() (the PyTorch model)")
        if cfg.cfg_scale > 0 or (attention_mask is not None and not bool(attention_mask.bool().all())):
            raise ValueError("`cache` does not support classifier-free guidance or padded batches")
    prompt_index = x != cfg.mask_id
    nfe = 0
    for b, ((start, end), steps) in enumerate(zip(blocks, steps_per_block)):
        budget = policies.num_transfer_tokens(x[:, start:end] == cfg.mask_id, steps) if cfg.threshold is None else None
        kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        step = 0
        while True:
            done = not bool((x[:, start:end] == cfg.mask_id).any())
            if cfg.cache is None:
                if budget is not None:
                    if step >= steps:
                        break
                    if not cfg.reference_compat and int(budget[:, step].sum()) == 0:
                        step += 1
                        continue
                elif done:
                    break
            # Fast-dLLM: a full pass opens the block (and fills the cache), cached passes run until the
            # block is done; its revision 24cc59e makes one cached pass even when the first finished it.
            elif (step > 0 and done and not (cfg.reference_compat and step == 1)) or step > max(steps, end - start) + 1:
                break
            k = None
            if budget is not None:
                k = budget[:, step] if step < steps else torch.zeros_like(budget[:, 0])
            # inference mode for the step only: it must not leak into the consumer between yields
            with torch.inference_mode():
                seg_start = 0
                if cfg.cache is None:
                    out = _predict(predictor, x, attention_mask, prompt_index, cfg)
                elif step == 0:
                    out, kv = predictor.forward_cached(x)  # type: ignore[attr-defined]
                else:
                    seg_start, seg_end = start, (x.shape[1] if cfg.cache == "prefix" else end)
                    out, _ = predictor.forward_cached(x[:, seg_start:seg_end], kv, seg_start)  # type: ignore[attr-defined]
                chosen = _commit(x, seg_start, out, end, k, cfg, generator)
            nfe += 1
            filled = [[(int(p), int(x[row, p])) for p in chosen[row].nonzero().flatten()] for row in range(x.shape[0])]
            yield StepEvent(block=b, step=step, filled=filled, forward_passes=nfe)
            step += 1
        yield BlockEvent(block=b, start=start, end=end, forward_passes=nfe)
        if stop_check is not None and b + 1 < len(blocks) and stop_check(x, b):
            remaining = x == cfg.mask_id
            fill = cfg.eos_id if cfg.eos_id is not None else cfg.mask_id
            x[remaining] = fill
            saved = sum(steps_per_block[b + 1 :]) if cfg.threshold is None else 0
            yield DoneEvent(forward_passes=nfe, forward_passes_saved=saved, stopped_early=True)
            return
    yield DoneEvent(forward_passes=nfe)


def reference_blocks(
    prompt_length: int, gen_length: int, block_length: int, steps: int
) -> tuple[list[tuple[int, int]], list[int]]:
    """Blocks and step budgets of the reference ``generate``: ``gen_length / block_length`` blocks
    after the prompt, ``steps / num_blocks`` steps each. Errors name the parameter and the rule."""
    for name, value in (("gen_length", gen_length), ("block_length", block_length), ("steps", steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    if gen_length % block_length:
        raise ValueError(
            f"`block_length` ({block_length}) must divide `gen_length` ({gen_length}); try a divisor of {gen_length}"
        )
    num_blocks = gen_length // block_length
    if steps % num_blocks:
        raise ValueError(
            f"`steps` ({steps}) must be divisible by the number of blocks "
            f"(`gen_length` / `block_length` = {num_blocks})"
        )
    blocks = [(prompt_length + i * block_length, prompt_length + (i + 1) * block_length) for i in range(num_blocks)]
    return blocks, [steps // num_blocks] * num_blocks


def generate(
    predictor: MaskPredictor,
    prompt: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    steps: int = 128,
    gen_length: int = 128,
    block_length: int = 128,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    remasking: str = "low_confidence",
    mask_id: int,
    eos_id: int | None = None,
    eot_id: int | None = None,
    logits_eos_inf: bool = False,
    confidence_eos_eot_inf: bool = False,
    threshold: float | None = None,
    reference_compat: bool = True,
    generator: torch.Generator | None = None,
    cache: str | None = None,
) -> torch.Tensor:
    """The reference ``generate.py::generate`` on any backend: returns ``[B, prompt + gen_length]``.

    ``attention_mask`` may be None with ``cfg_scale > 0`` (the reference raises NameError there).
    """
    if prompt.dim() != 2:
        raise ValueError(f"`prompt` must have shape [batch, length], got {tuple(prompt.shape)}")
    if temperature < 0:
        raise ValueError(f"`temperature` must be >= 0, got {temperature}")
    if cfg_scale < 0:
        raise ValueError(f"`cfg_scale` must be >= 0, got {cfg_scale}")
    if remasking not in ("low_confidence", "random"):
        raise ValueError(f"`remasking` must be 'low_confidence' or 'random', got {remasking!r}")
    if confidence_eos_eot_inf and eot_id is None:
        raise ValueError("`confidence_eos_eot_inf` needs the EOT id: pass `eot_token_id` when loading the model")
    B, P = prompt.shape
    blocks, steps_per_block = reference_blocks(P, gen_length, block_length, steps)
    x = torch.full((B, P + gen_length), mask_id, dtype=torch.long, device=prompt.device)
    x[:, :P] = prompt
    am = None
    if attention_mask is not None:
        if attention_mask.shape != prompt.shape:
            raise ValueError(
                f"`attention_mask` must have the prompt's shape {tuple(prompt.shape)}, got {tuple(attention_mask.shape)}"
            )
        am = torch.cat(
            [attention_mask.to(x.device), torch.ones(B, gen_length, dtype=attention_mask.dtype, device=x.device)], dim=1
        )
    cfg = DecodeConfig(
        mask_id=mask_id,
        eos_id=eos_id,
        eot_id=eot_id,
        temperature=temperature,
        cfg_scale=cfg_scale,
        remasking=remasking,
        threshold=threshold,
        logits_eos_inf=logits_eos_inf,
        confidence_eos_eot_inf=confidence_eos_eot_inf,
        reference_compat=reference_compat,
        cache=cache,
    )
    for _ in denoise(predictor, x, blocks, steps_per_block, cfg, attention_mask=am, generator=generator):
        pass
    return x
