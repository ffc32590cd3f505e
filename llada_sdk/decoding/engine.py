"""The decoding engine: one loop over a canvas, for every backend and every text call.

A *canvas* is a ``[B, L]`` id array in which ``mask_id`` marks what the model may write, plus the
*blocks*: ``(start, end)`` ranges decoded one after the other, each with its own step budget.
Forward completion, backward completion, infilling and chat differ only in how they build the canvas.

For each block and step the engine asks the backend (a ``MaskPredictor``) for logits, turns them into
a candidate token and a confidence per position (``policies``), commits the most confident masked
positions left of the block's end, and yields a ``StepEvent``. The engine knows nothing of tokenizers,
and nothing of torch: it runs on whatever arrays the predictor speaks (``arrays.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from llada_sdk.backends.base import CachedMaskPredictor, MaskPredictor, StepMaskPredictor
from llada_sdk.decoding import policies
from llada_sdk.decoding.arrays import Array, Generator, ops_for
from llada_sdk.decoding.rules import ParallelRule, active_rule
from llada_sdk.results import BlockEvent, DoneEvent, StepEvent

if TYPE_CHECKING:
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.options import GenerationOptions

__all__ = [
    "BlockEvent",
    "DecodeConfig",
    "DecodeEvent",
    "DoneEvent",
    "LogitsProcessor",
    "MaskPredictor",
    "StepEvent",
    "commit",
    "denoise",
    "generate",
    "reference_blocks",
]


@dataclass(frozen=True)
class DecodeConfig:
    """The resolved settings of one decoding run. ``from_options`` fills every field that has a
    ``GenerationOptions`` namesake from it; the rest are the model's ids and the parallel rule."""

    mask_id: int
    eos_id: int | None
    eot_id: int | None
    temperature: float
    cfg_scale: float
    remasking: str
    logits_eos_inf: bool
    confidence_eos_eot_inf: bool
    reference_compat: bool
    cache: str | None  # None | "prefix" | "dual" (Fast-dLLM's approximate KV caches)
    rule: ParallelRule | None = None  # sets each step's count (None: the step budget does)
    rule_value: float = 0.0

    @classmethod
    def from_options(
        cls, options: GenerationOptions, *, mask_id: int, eos_id: int | None = None, eot_id: int | None = None
    ) -> DecodeConfig:
        """The engine's view of ``options`` for a model with these special ids."""
        if options.confidence_eos_eot_inf and eot_id is None:
            raise ValueError("`confidence_eos_eot_inf` needs the EOT id: pass `eot_token_id` when loading the model")
        shared = {f.name: getattr(options, f.name) for f in fields(cls) if f.name in type(options).model_fields}
        shared["cache"] = None if options.cache == "none" else options.cache
        rule, value = active_rule(options) or (None, 0.0)
        return cls(mask_id=mask_id, eos_id=eos_id, eot_id=eot_id, rule=rule, rule_value=value, **shared)

    @classmethod
    def for_model(cls, options: GenerationOptions, config: LLaDAConfig) -> DecodeConfig:
        """``from_options`` with the special ids of ``config``."""
        return cls.from_options(
            options, mask_id=config.mask_token_id, eos_id=config.eos_token_id, eot_id=config.eot_token_id
        )

    @property
    def parallel(self) -> bool:
        """Whether a parallel-decoding rule sets each step's count."""
        return self.rule is not None

    @property
    def rules(self) -> policies.CandidateRules:
        """The candidate rules of ``policies.candidates``."""
        return policies.CandidateRules(
            eos_id=self.eos_id,
            eot_id=self.eot_id,
            temperature=self.temperature,
            remasking=self.remasking,
            logits_eos_inf=self.logits_eos_inf,
            confidence_eos_eot_inf=self.confidence_eos_eot_inf,
            reference_compat=self.reference_compat,
        )


DecodeEvent = StepEvent | BlockEvent | DoneEvent
"""What ``denoise`` yields (the text layer turns these into the public ``llada_sdk.Event``)."""
StopCheck = Callable[[Array, int], bool]
LogitsProcessor = Callable[[Array, int], Array]
"""``(logits [B, n, V] of canvas positions start..start+n, start) -> logits``, applied before the choice."""


def _candidates(out: Array | tuple[Array, Array], cfg: DecodeConfig, generator: Generator) -> tuple[Array, Array]:
    """Backend output -> candidate token ``x0`` and its confidence, both ``[B, L]``."""
    if isinstance(out, tuple):
        x0, conf = out
        return x0, ops_for(conf).astype(conf, "float32") if cfg.remasking == "low_confidence" else conf
    return policies.candidates(out, cfg.rules, generator)


def _predict(
    predictor: MaskPredictor, x: Array, attention_mask: Array | None, prompt_index: Array, cfg: DecodeConfig
) -> Array | tuple[Array, Array]:
    if cfg.cfg_scale <= 0:
        return predictor(x, attention_mask)
    xp = ops_for(x)
    uncond = xp.copy(x)
    uncond[prompt_index] = cfg.mask_id
    am = None if attention_mask is None else xp.concat([attention_mask, attention_mask])
    out = predictor(xp.concat([x, uncond]), am)
    if isinstance(out, tuple):
        raise ValueError("`cfg_scale` > 0 needs a backend that returns logits, not fused candidates")
    B = x.shape[0]
    return policies.classifier_free_guidance(out[:B], out[B:], cfg.cfg_scale)


def commit(
    x: Array,
    seg_start: int,
    out: Array | tuple[Array, Array],
    end: int,
    k: Array | None,
    cfg: DecodeConfig,
    generator: Generator,
) -> Array:
    """One step's choice and commit on the segment of ``x`` the backend predicted (``out`` covers
    positions ``seg_start ..``): eligible are its masked positions left of ``end``. Returns the
    committed positions of the segment, bool ``[B, n]``."""
    xp = ops_for(x)
    n = (out[0] if isinstance(out, tuple) else out).shape[1]
    seg = x[:, seg_start : seg_start + n]
    mask_index = seg == cfg.mask_id
    x0, conf = _candidates(out, cfg, generator)
    eligible = mask_index & (xp.arange(seg_start, seg_start + n, like=x) < end)[None, :]
    x0 = xp.where(mask_index, x0, seg)
    conf = xp.where(eligible, conf, -float("inf"))
    if k is not None:
        chosen = policies.select_top_k(conf, k)
    elif cfg.rule is not None:
        logits = None if isinstance(out, tuple) else out  # what the candidates came from (after the EOS/EOT rules)
        if cfg.rule.needs_logits and logits is None:
            raise ValueError(f"`{cfg.rule.name}` needs a backend that returns logits, not fused candidates")
        chosen = cfg.rule.select(conf, eligible, cfg.rule_value, logits)
    else:  # pragma: no cover - denoise always passes a budget or a rule
        raise ValueError("a step needs a budget `k` or a parallel-decoding rule")
    seg[chosen] = x0[chosen]
    return chosen


def denoise(
    predictor: MaskPredictor,
    x: Array,
    blocks: list[tuple[int, int]],
    steps_per_block: list[int],
    cfg: DecodeConfig,
    *,
    attention_mask: Array | None = None,
    generator: Generator = None,
    stop_check: StopCheck | None = None,
    logits_processor: LogitsProcessor | None = None,
) -> Iterator[DecodeEvent]:
    """Denoise ``x`` **in place**, block by block, yielding events.

    Args:
        predictor: the backend; it takes and returns arrays of ``x``'s kind (torch or numpy).
        x: ``[B, L]`` int64 canvas; ``cfg.mask_id`` marks the positions to write. Non-mask positions
            are never changed.
        blocks: canvas ranges ``(start, end)`` in decoding order. A step may commit any masked
            position left of the current block's end (masks inside the prompt compete in every
            block, as in the reference); the step budget comes from the block's own masks.
        steps_per_block: steps for each block. With a parallel rule (``cfg.parallel``) it is
            ignored: a block runs until its masks are gone, committing per step what the parallel
            rule allows (at least one position).
        cfg: the resolved settings.
        attention_mask: ``[B, L]`` key-padding mask (1 = real token) or None.
        generator: RNG for Gumbel noise and random remasking (a ``torch.Generator`` for torch arrays,
            a ``numpy.random.Generator`` for numpy); None uses the library's global RNG (for torch
            the reference's call order, so ``torch.manual_seed`` reproduces its sampled outputs).
        stop_check: called after each block with ``(x, block_index)``; returning True fills every
            remaining mask with EOS and ends the run (early stop).
        logits_processor: edits each step's logits before the choice (e.g. allowed tokens per span).
    """
    if len(blocks) != len(steps_per_block):
        raise ValueError("`blocks` and `steps_per_block` must have the same length")
    if not callable(predictor):
        raise TypeError(f"`predictor` must be callable (a MaskPredictor), got {type(predictor).__name__}")
    xp = ops_for(x)
    cached: CachedMaskPredictor | None = None
    if cfg.cache is not None:
        if cfg.cache not in ("prefix", "dual"):
            raise ValueError(f"`cache` must be None, 'prefix' or 'dual', got {cfg.cache!r}")
        if not isinstance(predictor, CachedMaskPredictor):
            raise ValueError("`cache` needs a backend with forward_cached() (a CachedMaskPredictor)")
        if cfg.cfg_scale > 0 or (attention_mask is not None and not bool(attention_mask.all())):
            raise ValueError("`cache` does not support classifier-free guidance or padded batches")
        cached = predictor
    prompt_index = x != cfg.mask_id
    # a backend that commits on its device (the canvas stays there between budgeted steps)
    stepper = predictor if cached is None and logits_processor is None and cfg.cfg_scale <= 0 else None
    if not isinstance(stepper, StepMaskPredictor):
        stepper = None
    nfe = 0
    for b, ((start, end), steps) in enumerate(zip(blocks, steps_per_block)):
        parallel = cfg.parallel
        budget = None if parallel else policies.num_transfer_tokens(x[:, start:end] == cfg.mask_id, steps)
        past = None
        step = 0
        while True:
            done = not bool((x[:, start:end] == cfg.mask_id).any())
            if cached is None:
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
                k = budget[:, step] if step < steps else budget[:, 0] * 0
            # no-grad (torch: inference mode) for the step only: it must not leak into the consumer
            with xp.no_grad():
                seg_start = 0
                if stepper is not None and k is not None:
                    chosen = stepper.commit_step(x, attention_mask, k, end)
                else:
                    if cached is None:
                        out = _predict(predictor, x, attention_mask, prompt_index, cfg)
                    elif step == 0:
                        out, past = cached.forward_cached(x)
                    else:
                        seg_start, seg_end = start, (x.shape[1] if cfg.cache == "prefix" else end)
                        out, _ = cached.forward_cached(x[:, seg_start:seg_end], past, seg_start)
                    if logits_processor is not None:
                        if isinstance(out, tuple):
                            raise ValueError("a logits processor needs a backend that returns logits")
                        out = logits_processor(out, seg_start)
                    chosen = commit(x, seg_start, out, end, k, cfg, generator)
            nfe += 1
            yield StepEvent(block=b, step=step, forward_passes=nfe, chosen=chosen, canvas=x, start=seg_start)
            step += 1
        yield BlockEvent(block=b, start=start, end=end, forward_passes=nfe)
        if stop_check is not None and b + 1 < len(blocks) and stop_check(x, b):
            remaining = x == cfg.mask_id
            x[remaining] = cfg.eos_id if cfg.eos_id is not None else cfg.mask_id
            saved = 0 if parallel else sum(steps_per_block[b + 1 :])
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
    prompt: Array,
    attention_mask: Array | None,
    options: GenerationOptions,
    *,
    mask_id: int,
    eos_id: int | None = None,
    eot_id: int | None = None,
    generator: Generator = None,
) -> Array:
    """The reference ``generate.py::generate`` on any backend: returns ``[B, prompt + max_tokens]``.

    ``options`` carries every setting (``GenerationOptions.reference()`` is the reference's
    defaults); ``attention_mask`` may be None with ``cfg_scale > 0`` (the reference raises NameError).
    """
    if len(prompt.shape) != 2:
        raise ValueError(f"`prompt` must have shape [batch, length], got {tuple(prompt.shape)}")
    cfg = DecodeConfig.from_options(options, mask_id=mask_id, eos_id=eos_id, eot_id=eot_id)
    xp = ops_for(prompt)
    B, P = prompt.shape
    n = options.max_tokens
    blocks, steps_per_block = reference_blocks(P, n, options.resolved_block_length, options.resolved_steps)
    x = xp.concat([xp.astype(prompt, "int64"), xp.full((B, n), mask_id, "int64", like=prompt)], 1)
    am = None
    if attention_mask is not None:
        if tuple(attention_mask.shape) != tuple(prompt.shape):
            raise ValueError(
                f"`attention_mask` must have the prompt's shape {tuple(prompt.shape)}, got {tuple(attention_mask.shape)}"
            )
        ones = xp.full((B, n), 1, "int64", like=prompt)
        am = xp.concat([xp.astype(attention_mask, "int64"), ones], 1)
    for _ in denoise(predictor, x, blocks, steps_per_block, cfg, attention_mask=am, generator=generator):
        pass
    return x
