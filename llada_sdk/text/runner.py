"""The streaming runner: decode a batch of canvases on a backend and turn engine events into text.

Every text call ends here: it builds ``CanvasJob`` (rows, blocks, how to read them), and
``stream_canvas`` runs the engine, streams text deltas for answers, stops early when every answer
has ended, and yields one ``ResultEvent``. ``drain`` is the non-streaming call.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llada_sdk.backends.base import Backend
from llada_sdk.decoding.arrays import Array
from llada_sdk.decoding.engine import BlockEvent, DecodeConfig, DoneEvent, LogitsProcessor, denoise, reference_blocks
from llada_sdk.options import GenerationOptions
from llada_sdk.results import CanvasEvent, Event, ResultEvent, TextEvent, TextResult
from llada_sdk.text.canvas import AnswerReader, answer_rows

if TYPE_CHECKING:
    from llada_sdk.config import LLaDAConfig


@dataclass
class CanvasJob:
    """One decoding run of equal-length canvases.

    Attributes:
        rows: the canvases (token ids, ``mask_id`` where the model writes).
        region: ``(start, end)`` of what the model writes (answers: the generated tokens).
        blocks, steps: the engine's blocks and step budget per block.
        read: ``row ids -> (text, finish_reason, completion tokens)`` of a finished row.
        answer: for answers (completion, chat): reads partial text for deltas and early stopping.
        attention_mask: ``[B, L]`` key-padding mask of left-padded rows, or None.
        allowed: canvas position -> the token ids the model may write there (constrained spans);
            a list holds one such map per row.
        prompt_tokens: per row, the tokens that were given.
    """

    rows: list[list[int]]
    region: tuple[int, int]
    blocks: list[tuple[int, int]]
    steps: list[int]
    read: Callable[[list[int]], tuple[str, str, int]]
    answer: AnswerReader | None = None
    attention_mask: list[list[int]] | None = None
    allowed: dict[int, Collection[int]] | list[dict[int, Collection[int]]] | None = None
    prompt_tokens: list[int] | None = None


def check_length(backend: Backend, length: int, what: str) -> None:
    """Refuse a canvas longer than the model's context window, naming the lengths and the limit."""
    limit = backend.config.max_sequence_length
    if length > limit:
        raise ValueError(
            f"{what}: the canvas would be {length} tokens, over this model's context window of {limit} "
            "(`max_sequence_length` in config.json); shorten the prompt or lower `max_tokens` / the span lengths"
        )
    trained = backend.config.trained_window
    if trained is not None and length > trained:
        warnings.warn(
            f"{what}: the canvas is {length} tokens, over this model's trained window of {trained} tokens "
            "(`trained_sequence_length` in config.json: the rows it was trained on); expect lower quality",
            stacklevel=3,
        )


def _allowed_processor(
    backend: Backend, allowed: dict[int, Collection[int]] | list[dict[int, Collection[int]]]
) -> LogitsProcessor:
    """A logits processor that leaves only the allowed tokens at constrained positions (one map for
    every row, or one per row when the rows' spans sit at different positions)."""
    ops = backend.ops
    masks: dict[frozenset[int], Array] = {}
    per_row = allowed if isinstance(allowed, list) else None
    rows = [{p: frozenset(int(t) for t in ids) for p, ids in m.items()} for m in (per_row or [allowed])]  # type: ignore[list-item]

    def process(logits: Array, start: int) -> Array:
        V = logits.shape[-1]
        for r, by_pos in enumerate(rows):
            for pos, ids in by_pos.items():
                j = pos - start
                if not 0 <= j < logits.shape[1]:
                    continue
                if ids not in masks:
                    flags = [False] * V
                    for t in ids:
                        if 0 <= t < V:
                            flags[t] = True
                    masks[ids] = ops.asarray(flags, "bool", like=logits)
                target = slice(None) if per_row is None else r
                logits[target, j, :] = ops.where(masks[ids], logits[target, j, :], -float("inf"))
        return logits

    return process


def stream_canvas(backend: Backend, job: CanvasJob, options: GenerationOptions) -> Iterator[Event]:
    """Decode ``job`` with ``options`` on ``backend``; yields the events of a text stream.

    The canvas length and the options are checked here, before the first event is asked for."""
    cfg = backend.config
    check_length(backend, len(job.rows[0]), "this call")
    return _stream(backend, job, options, DecodeConfig.for_model(options, cfg))


def _stream(backend: Backend, job: CanvasJob, options: GenerationOptions, decode: DecodeConfig) -> Iterator[Event]:
    cfg = backend.config
    x = backend.asarray(job.rows)
    am = None if job.attention_mask is None else backend.asarray(job.attention_mask)
    generator = None if options.seed is None else backend.ops.generator(options.seed, like=x)
    processor = None
    predictor = backend.predictor(decode)
    if job.allowed:
        processor = _allowed_processor(backend, job.allowed)
        predictor = backend.predictor(decode, logits=True)
    yield CanvasEvent(ids=[list(r) for r in job.rows], mask_id=cfg.mask_token_id, region=job.region)

    mask_id = cfg.mask_token_id
    start = job.region[0]
    answer = job.answer
    emitted = [""] * len(job.rows)

    def stop_check(canvas: Array, b: int) -> bool:
        assert answer is not None
        end = job.blocks[b][1]
        return all(answer.finished(canvas[r, start:end].tolist(), mask_id) for r in range(canvas.shape[0]))

    use_stop = answer is not None and options.early_stop and not options.reference_compat
    done: DoneEvent | None = None
    for ev in denoise(
        predictor,
        x,
        job.blocks,
        job.steps,
        decode,
        attention_mask=am,
        generator=generator,
        stop_check=stop_check if use_stop else None,
        logits_processor=processor,
    ):
        if isinstance(ev, DoneEvent):
            done = ev
            continue
        yield ev
        if isinstance(ev, BlockEvent) and answer is not None:
            for r in range(len(job.rows)):
                seg = x[r, start : ev.end].tolist()
                if mask_id in seg:
                    seg = seg[: seg.index(mask_id)]
                text = answer.prefix(seg)[0]
                if text.startswith(emitted[r]) and len(text) > len(emitted[r]):
                    yield TextEvent(row=r, block=ev.block, delta=text[len(emitted[r]) :])
                    emitted[r] = text
    if done is None:  # pragma: no cover - denoise always ends with a DoneEvent
        raise RuntimeError("the engine ended without a DoneEvent")
    info = backend.info()
    results = []
    for r in range(len(job.rows)):
        ids = x[r].tolist()
        text, reason, n = job.read(ids)
        if answer is not None and text != emitted[r] and text.startswith(emitted[r]):
            yield TextEvent(row=r, block=len(job.blocks) - 1, delta=text[len(emitted[r]) :])
        results.append(
            TextResult(
                text=text,
                finish_reason=reason,
                forward_passes=done.forward_passes,
                forward_passes_saved=done.forward_passes_saved,
                ids=ids,
                prompt_tokens=job.prompt_tokens[r] if job.prompt_tokens else 0,
                completion_tokens=n,
                backend=dict(info),
            )
        )
    yield ResultEvent(results)


def answer_job(
    config: LLaDAConfig, prompts: Sequence[Sequence[int]], options: GenerationOptions, reader: AnswerReader
) -> CanvasJob:
    """Answers to ``prompts`` (token ids): left-padded, ``max_tokens`` masks appended, decoded block by
    block, each answer read up to its first EOS/EOT and cut at stop sequences."""
    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    rows, am, P = answer_rows(prompts, options.max_tokens, pad_id=pad, mask_id=config.mask_token_id)
    blocks, steps = reference_blocks(P, options.max_tokens, options.resolved_block_length, options.resolved_steps)
    region = (P, P + options.max_tokens)

    def read(ids: list[int]) -> tuple[str, str, int]:
        return reader.read(ids[region[0] : region[1]])

    return CanvasJob(
        rows=rows,
        region=region,
        blocks=blocks,
        steps=steps,
        read=read,
        answer=reader,
        attention_mask=am,
        prompt_tokens=[len(p) for p in prompts],
    )


def drain(events: Iterator[Any]) -> list[TextResult]:
    """The results of a stream (the non-streaming call)."""
    for ev in events:
        if isinstance(ev, ResultEvent):
            return ev.results
    raise RuntimeError("stream ended without a result")  # pragma: no cover


def with_result(events: Iterator[Event], edit: Callable[[TextResult], None]) -> Iterator[Event]:
    """``events`` with ``edit`` applied to each result of the final ``ResultEvent``."""
    for ev in events:
        if isinstance(ev, ResultEvent):
            for res in ev.results:
                edit(res)
        yield ev


__all__ = ["CanvasJob", "answer_job", "check_length", "drain", "stream_canvas", "with_result"]
