"""Infilling: fill the ``[MASK…]`` spans of a text, choosing ``[MASK:auto]`` lengths by likelihood.

Backward and middle completion are infilling with one span before the suffix. The canvas is
``[BOS] text-with-masks [EOS]``; all spans are decoded together, most confident token first.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING

from llada_sdk.decoding.likelihood import chain_log_likelihoods
from llada_sdk.options import GenerationOptions
from llada_sdk.results import Event, ResultEvent, TextEvent, TextResult
from llada_sdk.text.canvas import Span, infill_canvas
from llada_sdk.text.parts import bos_ids
from llada_sdk.text.runner import CanvasJob, check_length, drain, stream_canvas, with_result

if TYPE_CHECKING:
    from llada_sdk.text.parts import ModelParts

AUTO_START = 2  # the length an auto span has while the others are chosen first
AUTO_ROUNDS = 3  # sweeps per auto span, at most
AUTO_WINDOW = 8  # tokens scored past the last one where candidate texts differ
AUTO_LOGITS_BUDGET = 1 << 28  # logits per scoring call, at most (1 GiB in float32): ~10 rows of 200 tokens at 126k
# The search costs grow faster than linearly with the number of auto spans (each sweep decodes every span);
# measured on the bundled model: 2 spans 77 forward passes, 3: 123, 4: 261, 5: 1134 (and runaway text).
MAX_AUTO_SPANS = 4  # auto spans per text, at most: more are refused before any model call
# forward passes of one length search: no sweep starts past it (docs/decoding.md: "How [MASK:auto] works")
AUTO_PASS_BUDGET = 600

Allowed = Sequence[Collection[int] | None]


def _canvas(llm: ModelParts, parts: Sequence[str | Span], lengths: Sequence[int]) -> tuple[list[int], list[Span]]:
    cfg = llm.config
    return infill_canvas(
        parts,
        lengths,
        llm.require_tokenizer().encode,
        bos=bos_ids(cfg),
        mask_id=cfg.mask_token_id,
        eos_id=cfg.eos_token_id,
    )


def _positions(spans: Sequence[Span], allowed: Allowed) -> dict[int, Collection[int]]:
    """Canvas position -> allowed token ids, for the spans that have a constraint."""
    out: dict[int, Collection[int]] = {}
    for span, ids_ok in zip(spans, allowed):
        if ids_ok is not None:
            for p in range(span.start, span.start + (span.length or 0)):
                out[p] = ids_ok
    return out


def _job(
    llm: ModelParts,
    parts: Sequence[str | Span],
    lengths: Sequence[int],
    opts: GenerationOptions,
    allowed: Allowed | None,
) -> tuple[CanvasJob, list[Span]]:
    ids, spans = _canvas(llm, parts, lengths)
    first, last = spans[0].start, spans[-1].start + (spans[-1].length or 0)
    n_masks = sum(lengths)
    tok = llm.require_tokenizer()
    positions = None if allowed is None else _positions(spans, allowed)

    def read(row: list[int]) -> tuple[str, str, int]:
        return tok.decode(row), "length", n_masks

    job = CanvasJob(
        rows=[ids],
        region=(first, last),
        blocks=[(first, last)],
        steps=[min(opts.steps or n_masks, n_masks)],
        read=read,
        allowed=positions,
        prompt_tokens=[len(ids) - n_masks],
    )
    return job, spans


def _stream_once(
    llm: ModelParts,
    parts: Sequence[str | Span],
    lengths: Sequence[int],
    opts: GenerationOptions,
    fill_only: bool,
    allowed: Allowed | None,
) -> Iterator[Event]:
    """Decode one canvas; ``fill_only``: the result's text is the (single) span's fill."""
    job, spans = _job(llm, parts, lengths, opts, allowed)
    tok = llm.require_tokenizer()

    def edit(res: TextResult) -> None:
        res.lengths = list(lengths)
        res.fills = [tok.decode(res.ids[s.start : s.start + (s.length or 0)]).strip() for s in spans]
        if fill_only:
            res.text = res.fills[0]

    for ev in with_result(stream_canvas(llm.backend, job, opts), edit):
        if isinstance(ev, ResultEvent):
            yield TextEvent(row=0, block=0, delta=ev.results[0].text)
        yield ev


def _decode_candidates(
    llm: ModelParts,
    parts: Sequence[str | Span],
    candidates: list[list[int]],
    opts: GenerationOptions,
    allowed: Allowed | None,
) -> tuple[list[list[int]], int]:
    """The decoded canvas of each choice of span lengths, and the forward passes it took. One batch
    (right-padded behind an attention mask, one token per step) when the options allow it; one canvas at
    a time otherwise."""
    if opts.steps is not None or opts.cache != "none":
        done = [drain(_stream_once(llm, parts, c, opts, False, allowed))[0] for c in candidates]
        return [r.ids for r in done], sum(r.forward_passes for r in done)
    built = [_canvas(llm, parts, c) for c in candidates]
    per_row = None
    if allowed is not None:  # each row's spans sit at its own positions
        per_row = [_positions(spans, allowed) for _, spans in built]
    L = max(len(ids) for ids, _ in built)
    eos = llm.config.eos_token_id
    rows = [ids + [eos] * (L - len(ids)) for ids, _ in built]
    am = [[1] * len(ids) + [0] * (L - len(ids)) for ids, _ in built] if any(len(i) < L for i, _ in built) else None
    first = min(spans[0].start for _, spans in built)
    last = max(spans[-1].start + (spans[-1].length or 0) for _, spans in built)
    job = CanvasJob(
        rows=rows,
        region=(first, last),
        blocks=[(first, last)],
        steps=[max(sum(c) for c in candidates)],  # rows with fewer masks get zero-token steps at the end
        read=lambda row: ("", "length", 0),
        attention_mask=am,
        allowed=per_row,
    )
    results = drain(stream_canvas(llm.backend, job, opts))
    return [res.ids[: len(ids)] for res, (ids, _) in zip(results, built)], results[0].forward_passes


def _natural_lengths(
    llm: ModelParts,
    parts: Sequence[str | Span],
    opts: GenerationOptions,
    max_auto: int,
    allowed: Allowed | None,
    budget: _Budget,
) -> list[int]:
    """Starting lengths for the search: decode once with every ``auto`` span at ``max_auto`` tokens; a
    span that the model filled past its natural end has written the text that follows it (" and works
    as a", "."), so its start is where that text begins. ``AUTO_START`` when it did not."""
    spans = [p for p in parts if isinstance(p, Span)]
    lengths = [s.length if s.length is not None else max_auto for s in spans]
    decoded, passes = _decode_candidates(llm, parts, [lengths], opts, allowed)
    budget.spent += passes
    ids = decoded[0]
    _, placed = _canvas(llm, parts, lengths)
    tok = llm.require_tokenizer()
    out = []
    pieces = [p for p in parts]
    for k, span in enumerate(spans):
        if span.length is not None:
            out.append(span.length)
            continue
        following = pieces[pieces.index(span) + 1]
        cue = following.strip()[:12] if isinstance(following, str) else ""
        fill = ids[placed[k].start : placed[k].start + max_auto]
        start = AUTO_START
        if cue:
            for n in range(1, max_auto):
                if tok.decode(fill[n:]).lstrip().startswith(cue):
                    start = n
                    break
        out.append(min(start, max_auto))
    return out


def _windows(llm: ModelParts, texts: list[list[int]]) -> tuple[int, list[int], int]:
    """``_score_texts``' scored tokens: ``(start, stops, rows_per_call)``."""
    shortest = min(map(len, texts))
    first = next((j for j in range(shortest) if len({t[j] for t in texts}) > 1), shortest)
    same_end = next((j for j in range(1, shortest) if len({t[-j] for t in texts}) > 1), shortest) - 1
    start = max(len(bos_ids(llm.config)), min(first, shortest - 2))  # each text keeps >= 1 scored token
    stops = [max(start + 1, min(len(t) - 1, len(t) - same_end + AUTO_WINDOW)) for t in texts]
    rows_per_call = max(1, min(128, AUTO_LOGITS_BUDGET // (max(map(len, texts)) * llm.config.vocab_size)))
    return start, stops, rows_per_call


def _score_calls(llm: ModelParts, texts: list[list[int]]) -> int:
    """Forward passes ``_score_texts`` makes on ``texts`` (one row per scored token)."""
    start, stops, rows_per_call = _windows(llm, texts)
    return math.ceil(sum(stop - start for stop in stops) / rows_per_call)


def _score_texts(llm: ModelParts, texts: list[list[int]]) -> list[float]:
    """Rank decoded candidate texts by the left-to-right chain rule (``chain_log_likelihoods``) over
    the tokens from the first position where the texts differ to ``AUTO_WINDOW`` tokens past the last
    (counted from the end): before it the texts are the same, kept as context; after the window every
    row keeps them masked, unscored (scoring the whole rest gave the same eval accuracies but took 6x
    as long on ``schema_validity``'s long JSON). The canvas's closing EOS is context, never scored
    (scored, it favoured texts as long as the training rows)."""
    start, stops, rows_per_call = _windows(llm, texts)
    backend = llm.backend
    return chain_log_likelihoods(
        backend.predictor(None),
        texts,
        start,
        mask_id=llm.config.mask_token_id,
        pad_id=llm.config.eos_token_id,
        ops=backend.ops,
        asarray=backend.asarray,
        stops=stops,
        rows_per_call=rows_per_call,
        suffix_length=1,
    )


def _sweep(
    llm: ModelParts,
    parts: Sequence[str | Span],
    opts: GenerationOptions,
    lengths: list[int],
    k: int,
    max_auto: int,
    allowed: Allowed | None,
    budget: _Budget | None = None,
) -> tuple[int, list[int]]:
    """Every length of span ``k`` (the others fixed), decoded in one batch and ranked by
    ``_score_texts``: returns the most likely text's length (ties: the shorter) and that text."""
    candidates = [[*lengths[:k], n, *lengths[k + 1 :]] for n in range(1, max_auto + 1)]
    check_length(llm.backend, len(_canvas(llm, parts, candidates[-1])[0]), "[MASK:auto]")
    texts, passes = _decode_candidates(llm, parts, candidates, opts, allowed)
    scores = _score_texts(llm, texts)
    if budget is not None:
        budget.spent += passes + _score_calls(llm, texts)
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return best + 1, texts[best]


class _Budget:
    """Forward passes a length search has made (decoding and scoring)."""

    def __init__(self) -> None:
        self.spent = 0

    def allows(self, passes: int) -> bool:
        return self.spent + passes <= AUTO_PASS_BUDGET


def choose_lengths(
    llm: ModelParts, parts: Sequence[str | Span], opts: GenerationOptions, max_auto: int, allowed: Allowed | None = None
) -> list[int]:
    """Coordinate ascent over the ``auto`` spans (docs/decoding.md: "How [MASK:auto] works").

    Each ``auto`` span starts at its natural length (``_natural_lengths``, else ``AUTO_START``). For
    one span at a time every length ``1..max_auto`` is decoded and the resulting texts ranked by the
    model's likelihood (``_score_texts``: the deterministic left-to-right chain rule); the most
    likely text's length wins. A span is swept again whenever another's length changed (at most
    ``AUTO_ROUNDS`` sweeps per span). With several spans the ascent runs twice, sweeping left to right
    and right to left, and the more likely of the two results wins (scored together): one order can
    stall where a span holds a wrong length that makes a runaway neighbour look best (a sweep is
    deterministic, so one already run -- same lengths, same span -- is reused, not run again).

    The search makes at most about ``AUTO_PASS_BUDGET`` forward passes: a decode (the first one or a
    sweep's) that would go past it is not started, and the best lengths found so far are used (without
    the first decode: ``AUTO_START``), with a ``RuntimeWarning``.
    """
    spans = [p for p in parts if isinstance(p, Span)]
    auto = [k for k, s in enumerate(spans) if s.length is None]
    budget = _Budget()
    # the first decode takes one pass per masked token, every auto span at `max_auto`
    fixed = sum(s.length or 0 for s in spans)
    stopped = not budget.allows(fixed + max_auto * len(auto))
    if stopped:
        start = [s.length if s.length is not None else AUTO_START for s in spans]
    else:
        start = _natural_lengths(llm, parts, opts, max_auto, allowed, budget)
    finals: list[tuple[list[int], list[int]]] = []  # (lengths, decoded text) each order ends on
    swept: dict[tuple[tuple[int, ...], int], tuple[int, list[int]]] = {}  # a sweep is deterministic: never twice
    orders = [] if stopped else [auto, auto[::-1]] if len(auto) > 1 else [auto]
    for order in orders:
        lengths = list(start)
        dirty = list(order)  # spans to sweep: all at first, then those whose neighbours' lengths changed
        text: list[int] | None = None
        for _ in range(AUTO_ROUNDS * len(auto)):
            if not dirty:
                break
            k = dirty[0]
            key = (tuple(lengths), k)
            if key not in swept:
                # the decode alone takes one pass per token of the longest candidate
                if not budget.allows(sum(lengths) - lengths[k] + max_auto):
                    stopped = True
                    break
                swept[key] = _sweep(llm, parts, opts, lengths, k, max_auto, allowed, budget)
            dirty.pop(0)
            n, text = swept[key]
            if n != lengths[k]:
                lengths[k] = n
                dirty += [j for j in order if j != k and j not in dirty]
        if text is not None and all(lengths != f[0] for f in finals):
            finals.append((lengths, text))
        if stopped:
            break
    if stopped:
        warnings.warn(
            f"`text`: the [MASK:auto] length search stopped at its budget of {AUTO_PASS_BUDGET} forward passes "
            f"({len(auto)} auto spans, {budget.spent} passes made); the lengths are the best found so far -- "
            "give explicit lengths ([MASK:n]) where you know them",
            RuntimeWarning,
            stacklevel=2,
        )
    if len(finals) < 2:
        return finals[0][0] if finals else start
    scores = _score_texts(llm, [t for _, t in finals])
    return finals[max(range(len(finals)), key=lambda i: (scores[i], -i))][0]


def stream_infill_parts(
    llm: ModelParts,
    parts: Sequence[str | Span],
    opts: GenerationOptions,
    max_auto: int,
    fill_only: bool = False,
    allowed: Allowed | None = None,
) -> Iterator[Event]:
    """Choose the ``auto`` lengths (if any), then stream the decoding of the canvas."""
    n_spans = sum(isinstance(p, Span) for p in parts)
    if allowed is not None and len(allowed) != n_spans:
        raise ValueError(f"`allowed_tokens` must have one entry per masked span ({n_spans}), got {len(allowed)}")
    n_auto = sum(isinstance(p, Span) and p.length is None for p in parts)
    if n_auto > MAX_AUTO_SPANS:
        raise ValueError(
            f"`text` has {n_auto} [MASK:auto] spans, over the limit of {MAX_AUTO_SPANS} (the length search's cost "
            "grows with every auto span): give the others explicit lengths, [MASK:n]"
        )
    if n_auto:

        def lazy() -> Iterator[Event]:
            lengths = choose_lengths(llm, parts, opts, max_auto, allowed)
            yield from _stream_once(llm, parts, lengths, opts, fill_only, allowed)

        return lazy()
    lengths = [p.length for p in parts if isinstance(p, Span) and p.length is not None]
    check_length(llm.backend, len(_canvas(llm, parts, lengths)[0]), "`text`")
    return _stream_once(llm, parts, lengths, opts, fill_only, allowed)
