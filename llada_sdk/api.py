"""``LLaDA``: load a model and write text with it -- infill, complete (forward, backward, middle),
chat, score -- plus the reference-compatible ``generate``.

Every text call builds a canvas (``[BOS] text-with-masks``), runs the engine, and reads the canvas
back. Streaming variants yield the engine's events plus text deltas; the plain calls drain them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llada_sdk._deps import require_torch
from llada_sdk.errors import TokenizerError
from llada_sdk.options import GenerationOptions

if TYPE_CHECKING:
    import torch

    from llada_sdk.config import LLaDAConfig
    from llada_sdk.engine import BlockEvent, DoneEvent, StepEvent
    from llada_sdk.loading import ModelSource
    from llada_sdk.model import LLaDAModel
    from llada_sdk.tokenizer import Message, Tokenizer

_SPAN = re.compile(r"\\\[MASK(?::[^\]]*)?\]|\[MASK(?::([^\]]*))?\]")
AUTO_MC = 32  # masked copies per candidate when [MASK:auto] scores a text


# ---------------------------------------------------------------------------------------------
# results and events


@dataclass
class TextResult:
    """What a text call returns.

    Attributes:
        text: the full text (infill: the text with every span filled; complete/chat: the new text).
        fills: infill only: the text of each span, in order (surrounding whitespace stripped).
        lengths: infill only: the token length of each span (chosen by the model for ``auto``).
        finish_reason: ``"eos"`` (the answer ended), ``"stop"`` (a stop sequence), ``"length"``.
        forward_passes: model calls made (a call on a CFG-doubled batch counts once).
        forward_passes_saved: steps skipped by the early stop.
        ids: the final canvas of this row (token ids).
    """

    text: str
    fills: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    finish_reason: str = "length"
    forward_passes: int = 0
    forward_passes_saved: int = 0
    ids: list[int] = field(default_factory=list)


@dataclass
class CanvasEvent:
    """First event of a stream: the canvas before denoising (``mask_id`` marks what will be written)."""

    ids: list[list[int]]
    mask_id: int
    region: tuple[int, int]


@dataclass
class TextEvent:
    """Text that became final when a block finished (concatenated deltas = the final text)."""

    row: int
    block: int
    delta: str


@dataclass
class ResultEvent:
    """Last event of a stream: one result per row."""

    results: list[TextResult]


if TYPE_CHECKING:
    from typing import TypeAlias

    Event: TypeAlias = "CanvasEvent | StepEvent | BlockEvent | TextEvent | ResultEvent"


@dataclass
class Choice:
    """Result of ``LLaDA.choose``: the best choice and every choice's log-likelihood bound."""

    index: int
    text: str
    scores: list[float]


@dataclass
class _Span:
    length: int | None  # None = auto
    start: int = 0


Segment = list[int] | _Span


def parse_masked_text(text: str) -> list[str | _Span]:
    """Split ``text`` into literal pieces and spans: ``[MASK]`` (1 token), ``[MASK:n]``, ``[MASK:auto]``;
    ``\\[MASK]`` is the literal text ``[MASK]``."""
    parts: list[str | _Span] = []
    pos, literal = 0, ""
    for m in _SPAN.finditer(text):
        literal += text[pos : m.start()]
        pos = m.end()
        if m.group(0).startswith("\\"):
            literal += m.group(0)[1:]
            continue
        arg = m.group(1)
        if arg is None:
            length: int | None = 1
        elif arg == "auto":
            length = None
        elif arg.isdigit() and int(arg) > 0:
            length = int(arg)
        else:
            raise ValueError(f"bad span {m.group(0)!r} in `text`: use [MASK], [MASK:n] with n >= 1, or [MASK:auto]")
        parts += [literal, _Span(length)]
        literal = ""
    parts.append(literal + text[pos:])
    if not any(isinstance(p, _Span) for p in parts):
        raise ValueError("`text` has no masked span: write [MASK], [MASK:8] or [MASK:auto] where text should go")
    return parts


def next_turn_ids(
    history: Sequence[int],
    answer: Sequence[int],
    new_turn: Sequence[int],
    *,
    eos_id: int,
    eot_id: int | None,
    reference_compat: bool = False,
) -> list[int]:
    """The prompt of the next chat turn, for one conversation (one row).

    ``history``: the previous turn's prompt; ``answer``: the generated ids; ``new_turn``: the template
    ids of the new message (its leading BOS is dropped, as chat.py does). Default: the answer is cut at
    its first EOS/EOT and closed with EOT. ``reference_compat``: chat.py's rule, every EOS removed
    from ``history + answer`` (its ``out[out != eos]``, which only works for a batch of one).
    """
    if reference_compat:
        kept = [t for t in [*history, *answer] if t != eos_id]
    else:
        cut = len(answer)
        for i, t in enumerate(answer):
            if t == eos_id or (eot_id is not None and t == eot_id):
                cut = i
                break
        kept = [*history, *answer[:cut]] + ([eot_id] if eot_id is not None else [])
    return kept + list(new_turn[1:])


# ---------------------------------------------------------------------------------------------


class LLaDA:
    """A loaded LLaDA model: ``model`` (the mask predictor), ``tokenizer`` (or None), ``config``.

    Construct with ``LLaDA.from_pretrained``. ``options`` holds the defaults of the text calls; every
    call also takes ``options=`` and keyword overrides of any ``GenerationOptions`` field.
    """

    def __init__(
        self,
        model: LLaDAModel,
        tokenizer: Tokenizer | None,
        config: LLaDAConfig,
        source: ModelSource | None = None,
        options: GenerationOptions | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.source = source
        self.options = options or GenerationOptions()

    # -- loading --------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        revision: str | None = None,
        mask_token_id: int | None = None,
        eos_token_id: int | None = None,
        eot_token_id: int | None = None,
        options: GenerationOptions | None = None,
    ) -> LLaDA:
        """Load a checkpoint in the official format: the bundled model (no argument), a local
        directory, or a Hugging Face Hub repo id (config, safetensors and tokenizer files only).

        Args:
            path_or_repo_id: None for the bundled model, a directory, or ``owner/name``.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available.
            dtype: ``float32``/``bfloat16``/``float16``; default the checkpoint's own dtype.
            revision: Hub branch, tag or commit.
            mask_token_id, eos_token_id, eot_token_id: override the ids of config.json and the
                tokenizer files (for checkpoints without tokenizer files).
            options: default generation options of the text calls.

        Raises:
            ModelNotFoundError, CheckpointError, ConfigError: naming the file, tensor or key at fault.
        """
        require_torch()
        import torch

        from llada_sdk.config import LLaDAConfig
        from llada_sdk.errors import ConfigError
        from llada_sdk.loading import load_model, parse_dtype, resolve
        from llada_sdk.tokenizer import Tokenizer

        source = resolve(path_or_repo_id, revision)
        folder = source.path
        if not (folder / "config.json").is_file():
            raise ConfigError(f"no config.json in {folder}")
        import json

        try:
            raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{folder / 'config.json'}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{folder / 'config.json'}: expected a JSON object")
        tokenizer = Tokenizer.from_dir(folder) if (folder / "tokenizer.json").is_file() else None
        if tokenizer is not None:
            raw.setdefault("mask_token_id", tokenizer.special.mask)
            raw.setdefault("eos_token_id", tokenizer.special.eos)
        for key, value in (("mask_token_id", mask_token_id), ("eos_token_id", eos_token_id)):
            if value is not None:
                raw[key] = value
        config = LLaDAConfig.from_hf_dict(raw)
        config.eot_token_id = (
            eot_token_id if eot_token_id is not None else (tokenizer.special.eot if tokenizer else None)
        )
        config.bos_token_id = tokenizer.special.bos if tokenizer else None
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"`device` must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"`device` is {device!r} but CUDA is not available on this machine; use 'cpu'")
        model = load_model(folder, config, parse_dtype(dtype), dev)
        return cls(model, tokenizer, config, source, options)

    # -- helpers --------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _tok(self) -> Tokenizer:
        if self.tokenizer is None:
            where = self.source.path if self.source else "the model directory"
            raise TokenizerError(
                f"this model has no tokenizer files (tokenizer.json, tokenizer_config.json in {where}); "
                "text calls need them -- use generate() on token ids instead"
            )
        return self.tokenizer

    def _opts(self, options: GenerationOptions | None, overrides: dict[str, Any]) -> GenerationOptions:
        return (options or self.options).with_overrides(**overrides)

    def _decode_cfg(self, opts: GenerationOptions) -> Any:
        from llada_sdk.engine import DecodeConfig

        if opts.confidence_eos_eot_inf and self.config.eot_token_id is None:
            raise ValueError("`confidence_eos_eot_inf` needs the EOT id: pass `eot_token_id` to from_pretrained")
        return DecodeConfig(
            mask_id=self.config.mask_token_id,
            eos_id=self.config.eos_token_id,
            eot_id=self.config.eot_token_id,
            temperature=opts.temperature,
            cfg_scale=opts.cfg_scale,
            remasking=opts.remasking,
            threshold=opts.threshold,
            logits_eos_inf=opts.logits_eos_inf,
            confidence_eos_eot_inf=opts.confidence_eos_eot_inf,
            reference_compat=opts.reference_compat,
            cache=None if opts.cache == "none" else opts.cache,
        )

    def _generator(self, opts: GenerationOptions) -> torch.Generator | None:
        require_torch()
        import torch

        if opts.seed is None:
            return None
        gen: torch.Generator = torch.Generator(device=self.device).manual_seed(opts.seed)
        return gen

    def _ends(self) -> set[int]:
        ends = {self.config.eos_token_id}
        if self.config.eot_token_id is not None:
            ends.add(self.config.eot_token_id)
        return ends

    def _bos(self) -> list[int]:
        bos = self.config.bos_token_id
        return [] if bos is None else [bos]

    # -- reference-compatible generation --------------------------------------------------------

    def generate(
        self,
        prompt_ids: torch.Tensor | Sequence[Sequence[int]],
        attention_mask: torch.Tensor | Sequence[Sequence[int]] | None = None,
        *,
        steps: int = 128,
        gen_length: int = 128,
        block_length: int = 128,
        temperature: float = 0.0,
        cfg_scale: float = 0.0,
        remasking: str = "low_confidence",
        logits_eos_inf: bool = False,
        confidence_eos_eot_inf: bool = False,
        threshold: float | None = None,
        reference_compat: bool = True,
        generator: torch.Generator | None = None,
        cache: str | None = None,
    ) -> torch.Tensor:
        """The official ``generate.py::generate``, token for token: returns ``[B, P + gen_length]``.

        Same arguments and defaults as the reference (``mask_id`` and the EOS/EOT ids come from the
        model). ``generator=None`` draws from torch's global RNG like the reference. With
        ``reference_compat=False`` the documented fixes apply (EOS/EOT rule at any temperature,
        float32 confidences, no wasted zero-budget steps). ``attention_mask=None`` works with
        ``cfg_scale > 0`` (the reference crashes there). ``cache="prefix"``/``"dual"`` runs Fast-dLLM's
        ``generate_with_prefix_cache`` / ``generate_with_dual_cache`` (token-exact, same forward count).
        """
        require_torch()
        import torch

        from llada_sdk.engine import generate

        prompt = torch.as_tensor(prompt_ids, dtype=torch.long, device=self.device)
        am = None if attention_mask is None else torch.as_tensor(attention_mask, device=self.device)
        return generate(
            self.model,
            prompt,
            am,
            steps=steps,
            gen_length=gen_length,
            block_length=block_length,
            temperature=temperature,
            cfg_scale=cfg_scale,
            remasking=remasking,
            mask_id=self.config.mask_token_id,
            eos_id=self.config.eos_token_id,
            eot_id=self.config.eot_token_id,
            logits_eos_inf=logits_eos_inf,
            confidence_eos_eot_inf=confidence_eos_eot_inf,
            threshold=threshold,
            reference_compat=reference_compat,
            generator=generator,
            cache=cache,
        )

    # -- the shared canvas runner ---------------------------------------------------------------

    def _run(
        self,
        rows: list[list[int]],
        region: tuple[int, int],
        blocks: list[tuple[int, int]],
        steps: list[int],
        opts: GenerationOptions,
        read: Callable[[list[int]], tuple[str, str]],
        *,
        attention_mask: list[list[int]] | None = None,
        answer_mode: bool = True,
    ) -> Iterator[Any]:
        """Denoise a batch of equal-length canvases; ``read(row_ids) -> (text, finish_reason)``."""
        require_torch()
        import torch

        from llada_sdk.engine import BlockEvent, DoneEvent, denoise

        x = torch.tensor(rows, dtype=torch.long, device=self.device)
        am = None if attention_mask is None else torch.tensor(attention_mask, device=self.device)
        yield CanvasEvent(ids=[list(r) for r in rows], mask_id=self.config.mask_token_id, region=region)
        emitted = [""] * len(rows)
        stops = opts.stop
        ends = self._ends()
        mask_id = self.config.mask_token_id

        def ended(row: torch.Tensor, upto: int) -> bool:
            seg = row[region[0] : upto].tolist()
            for t in seg:
                if t == mask_id:
                    return False
                if t in ends:
                    return True
            return self._read_prefix(seg, stops)[1]

        def stop_check(canvas: torch.Tensor, b: int) -> bool:
            return all(ended(canvas[r], blocks[b][1]) for r in range(canvas.shape[0]))

        use_stop = answer_mode and opts.early_stop and not opts.reference_compat
        done: DoneEvent | None = None
        for ev in denoise(
            self.model,
            x,
            blocks,
            steps,
            self._decode_cfg(opts),
            attention_mask=am,
            generator=self._generator(opts),
            stop_check=stop_check if use_stop else None,
        ):
            if isinstance(ev, DoneEvent):
                done = ev
                continue
            yield ev
            if isinstance(ev, BlockEvent) and answer_mode:
                for r in range(len(rows)):
                    seg = x[r, region[0] : ev.end].tolist()
                    if mask_id in seg:
                        seg = seg[: seg.index(mask_id)]
                    text = self._read_prefix(seg, stops)[0]
                    if text.startswith(emitted[r]) and len(text) > len(emitted[r]):
                        yield TextEvent(row=r, block=ev.block, delta=text[len(emitted[r]) :])
                        emitted[r] = text
        assert done is not None
        results = []
        for r in range(len(rows)):
            ids = x[r].tolist()
            text, reason = read(ids)
            if answer_mode and text != emitted[r] and text.startswith(emitted[r]):
                yield TextEvent(row=r, block=len(blocks) - 1, delta=text[len(emitted[r]) :])
            results.append(
                TextResult(
                    text=text,
                    finish_reason=reason,
                    forward_passes=done.forward_passes,
                    forward_passes_saved=done.forward_passes_saved,
                    ids=ids,
                )
            )
        yield ResultEvent(results)

    def _read_prefix(self, seg: list[int], stops: Sequence[str] = ()) -> tuple[str, bool]:
        """Decode generated ids up to the first EOS/EOT, cut before the first stop sequence.

        Returns ``(text, stopped)``; ``stopped`` is True when a stop sequence was found."""
        ends = self._ends()
        cut = next((i for i, t in enumerate(seg) if t in ends), len(seg))
        text = self._tok().decode(seg[:cut])
        hits = [text.index(s) for s in stops if s in text]
        return (text[: min(hits)], True) if hits else (text, False)

    def _answer_reader(self, region: tuple[int, int], stops: list[str]) -> Callable[[list[int]], tuple[str, str]]:
        def read(ids: list[int]) -> tuple[str, str]:
            seg = ids[region[0] : region[1]]
            text, stopped = self._read_prefix(seg, stops)
            ended = not self._ends().isdisjoint(seg)
            return text, "stop" if stopped else "eos" if ended else "length"

        return read

    @staticmethod
    def _drain(events: Iterator[Any]) -> list[TextResult]:
        for ev in events:
            if isinstance(ev, ResultEvent):
                return ev.results
        raise RuntimeError("stream ended without a result")  # pragma: no cover

    # -- forward completion and chat -------------------------------------------------------------

    def _answer_stream(self, prompts: list[list[int]], opts: GenerationOptions) -> Iterator[Any]:
        """Left-pad ``prompts`` with EOS, append ``max_tokens`` masks, decode semi-autoregressively."""
        from llada_sdk.engine import reference_blocks

        P = max(len(p) for p in prompts)
        pad = self.config.pad_token_id if self.config.pad_token_id is not None else self.config.eos_token_id
        rows = [[pad] * (P - len(p)) + p + [self.config.mask_token_id] * opts.max_tokens for p in prompts]
        am = None
        if any(len(p) != P for p in prompts):
            am = [[0] * (P - len(p)) + [1] * (len(p) + opts.max_tokens) for p in prompts]
        blocks, steps = reference_blocks(P, opts.max_tokens, opts.resolved_block_length, opts.resolved_steps)
        region = (P, P + opts.max_tokens)
        return self._run(rows, region, blocks, steps, opts, self._answer_reader(region, opts.stop), attention_mask=am)

    def stream_complete(
        self,
        prefix: str | None = None,
        suffix: str | None = None,
        *,
        options: GenerationOptions | None = None,
        length: int | str | None = None,
        **overrides: Any,
    ) -> Iterator[Event]:
        """Streaming ``complete``: yields ``CanvasEvent``, ``StepEvent``, ``BlockEvent``, ``TextEvent``
        and finally ``ResultEvent``."""
        opts = self._opts(options, overrides)
        tok = self._tok()
        if suffix is None or suffix == "":
            if not prefix:
                raise ValueError("`prefix` and `suffix` are both empty: give at least one")
            return self._answer_stream([self._bos() + tok.encode(prefix)], opts)
        span = _Span(None if length in (None, "auto") else _positive(length, "length", opts.max_tokens))
        parts: list[str | _Span] = [(prefix or "").rstrip(" "), span, suffix]
        return self._infill_stream(parts, opts, max_auto=min(opts.max_tokens, opts.max_auto_length), fill_only=True)

    def complete(
        self,
        prefix: str | None = None,
        suffix: str | None = None,
        *,
        options: GenerationOptions | None = None,
        length: int | str | None = None,
        **overrides: Any,
    ) -> TextResult:
        """Write text after ``prefix`` (forward), before ``suffix`` (backward), or between both (middle).

        Forward: ``max_tokens`` masks after the prefix, cut at EOS/EOT or a stop sequence.
        Backward and middle: a span before the suffix whose length is ``length`` tokens, or chosen
        by the model (``length="auto"``, the default; up to ``min(max_tokens, max_auto_length)``).
        ``text`` is the new text only.
        """
        return self._drain(self.stream_complete(prefix, suffix, options=options, length=length, **overrides))[0]

    def stream_chat(
        self,
        messages: Sequence[Message] | Sequence[Sequence[Message]],
        *,
        options: GenerationOptions | None = None,
        **overrides: Any,
    ) -> Iterator[Event]:
        """Streaming ``chat``: one row per conversation."""
        opts = self._opts(options, overrides)
        convs = _as_batch(messages)
        tok = self._tok()
        return self._answer_stream([tok.apply_chat_template(c) for c in convs], opts)

    def chat(
        self,
        messages: Sequence[Message] | Sequence[Sequence[Message]],
        *,
        options: GenerationOptions | None = None,
        **overrides: Any,
    ) -> Any:
        """Answer a conversation (a list of ``{"role", "content"}``) or a batch of them.

        Returns a ``TextResult`` for one conversation, a list for a batch. The answer is cut at the
        first EOS/EOT and at stop sequences.
        """
        results = self._drain(self.stream_chat(messages, options=options, **overrides))
        return results if _is_batch(messages) else results[0]

    def session(
        self,
        system: str | None = None,
        messages: Sequence[Message] | None = None,
        options: GenerationOptions | None = None,
    ) -> ChatSession:
        """A multi-turn ``ChatSession`` (history kept as token ids, as the official chat.py)."""
        return ChatSession(self, system=system, messages=messages, options=options)

    # -- infilling ------------------------------------------------------------------------------

    def _canvas(self, parts: list[str | _Span], lengths: list[int]) -> tuple[list[int], list[_Span]]:
        tok = self._tok()
        ids = self._bos()
        spans: list[_Span] = []
        it = iter(lengths)
        for i, p in enumerate(parts):
            if isinstance(p, _Span):
                n = next(it)
                spans.append(_Span(n, start=len(ids)))
                ids += [self.config.mask_token_id] * n
            else:
                # whitespace before a span belongs to the span's first token (" Paris", not " " + "Paris")
                text = p.rstrip(" ") if i + 1 < len(parts) and isinstance(parts[i + 1], _Span) else p
                ids += tok.encode(text)
        ids.append(self.config.eos_token_id)
        return ids, spans

    def _infill_once(
        self, parts: list[str | _Span], lengths: list[int], opts: GenerationOptions, fill_only: bool = False
    ) -> Iterator[Any]:
        """Decode one canvas; ``fill_only``: the result's text is the (single) span's fill."""
        ids, spans = self._canvas(parts, lengths)
        first, last = spans[0].start, spans[-1].start + (spans[-1].length or 0)
        n_masks = sum(lengths)
        steps = [min(opts.steps or n_masks, n_masks)]
        tok = self._tok()

        def read(row: list[int]) -> tuple[str, str]:
            return tok.decode(row), "length"

        events = self._run([ids], (first, last), [(first, last)], steps, opts, read, answer_mode=False)
        for ev in events:
            if isinstance(ev, ResultEvent):
                res = ev.results[0]
                res.lengths = list(lengths)
                res.fills = [tok.decode(res.ids[s.start : s.start + (s.length or 0)]).strip() for s in spans]
                if fill_only:
                    res.text = res.fills[0]
                yield TextEvent(row=0, block=0, delta=res.text)
            yield ev

    def _choose_lengths(self, parts: list[str | _Span], opts: GenerationOptions, max_auto: int) -> list[int]:
        """Coordinate search over the ``auto`` spans, left to right (README: "How [MASK:auto] works").

        For each candidate length the canvas is decoded, and the whole resulting text is scored by
        the model's Monte Carlo likelihood bound (``AUTO_MC`` masked copies, fixed seed); the length
        whose text is most likely wins. Texts of different lengths compete on their joint
        likelihood, so a span padded with an extra clause loses to the text without it.
        """
        require_torch()
        import torch

        from llada_sdk.likelihood import monte_carlo_log_likelihood

        spans = [p for p in parts if isinstance(p, _Span)]
        lengths = [s.length if s.length is not None else min(4, max_auto) for s in spans]
        for k, span in enumerate(spans):
            if span.length is not None:
                continue
            best: tuple[float, int] | None = None
            for n in range(1, max_auto + 1):
                trial = [*lengths[:k], n, *lengths[k + 1 :]]
                ids = self._drain(self._infill_once(parts, trial, opts))[0].ids
                start = len(self._bos())
                gen = torch.Generator(device=self.device).manual_seed(0)
                score = monte_carlo_log_likelihood(
                    self.model,
                    torch.tensor(ids[:start], device=self.device),
                    torch.tensor(ids[start:], device=self.device),
                    mask_id=self.config.mask_token_id,
                    mc_num=AUTO_MC,
                    batch_size=AUTO_MC,
                    generator=gen,
                )
                if best is None or score > best[0]:
                    best = (score, n)
            assert best is not None
            lengths[k] = best[1]
        return lengths

    def _infill_stream(
        self, parts: list[str | _Span], opts: GenerationOptions, max_auto: int, fill_only: bool = False
    ) -> Iterator[Any]:
        if any(isinstance(p, _Span) and p.length is None for p in parts):
            lengths = self._choose_lengths(parts, opts, max_auto)
        else:
            lengths = [p.length for p in parts if isinstance(p, _Span) and p.length is not None]
        yield from self._infill_once(parts, lengths, opts, fill_only)

    def stream_infill(
        self, text: str, *, options: GenerationOptions | None = None, **overrides: Any
    ) -> Iterator[Event]:
        """Streaming ``infill``."""
        opts = self._opts(options, overrides)
        parts = parse_masked_text(text)
        return self._infill_stream(parts, opts, max_auto=opts.max_auto_length)

    def infill(self, text: str, *, options: GenerationOptions | None = None, **overrides: Any) -> TextResult:
        """Fill the masked spans of ``text``: ``[MASK]`` (one token), ``[MASK:n]`` (n tokens),
        ``[MASK:auto]`` (the model picks the length, up to ``max_auto_length``); ``\\[MASK]`` is literal.

        All spans are decoded together, most confident token first (one token per step unless
        ``steps`` is smaller). Returns the filled text, ``fills`` per span and their ``lengths``.
        """
        return self._drain(self.stream_infill(text, options=options, **overrides))[0]

    # -- scoring ----------------------------------------------------------------------------------

    def _pair(self, prompt: str | Sequence[int], continuation: str | Sequence[int]) -> tuple[list[int], list[int]]:
        if isinstance(prompt, str) and isinstance(continuation, str):
            moved = len(prompt) - len(prompt.rstrip(" "))  # lm-eval: trailing spaces go to the continuation
            prompt, continuation = prompt[: len(prompt) - moved], prompt[len(prompt) - moved :] + continuation
            tok = self._tok()
            return self._bos() + tok.encode(prompt), tok.encode(continuation)
        if isinstance(prompt, str) or isinstance(continuation, str):
            raise ValueError("`prompt` and `continuation` must both be text or both be token ids")
        return list(prompt), list(continuation)

    def score(
        self,
        prompt: str | Sequence[int],
        continuation: str | Sequence[int],
        *,
        mc_num: int = 128,
        batch_size: int = 16,
        cfg_scale: float = 0.0,
        seed: int | None = 0,
    ) -> float:
        """Monte Carlo lower bound on ``log p(continuation | prompt)`` (the official estimator).

        Text is encoded as ``[BOS] prompt`` and ``continuation`` (trailing spaces of the prompt move
        to the continuation). ``seed`` fixes the estimate; ``None`` uses torch's global RNG.
        """
        require_torch()
        import torch

        from llada_sdk.likelihood import monte_carlo_log_likelihood

        p, c = self._pair(prompt, continuation)
        gen = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        return monte_carlo_log_likelihood(
            self.model,
            torch.tensor(p, device=self.device),
            torch.tensor(c, device=self.device),
            mask_id=self.config.mask_token_id,
            mc_num=mc_num,
            batch_size=batch_size,
            cfg_scale=cfg_scale,
            generator=gen,
        )

    def choose(
        self,
        prompt: str,
        choices: Sequence[str],
        *,
        mc_num: int = 128,
        batch_size: int = 16,
        cfg_scale: float = 0.0,
        seed: int = 0,
        normalize: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> Choice:
        """Multiple choice: the choice with the highest ``score`` (the same seed for every choice).
        ``normalize`` divides each score by the choice's token count (lm-eval's ``acc_norm`` spirit)."""
        if not choices:
            raise ValueError("`choices` must not be empty")
        scores = []
        for i, c in enumerate(choices):
            s = self.score(prompt, c, mc_num=mc_num, batch_size=batch_size, cfg_scale=cfg_scale, seed=seed)
            if normalize:
                s /= max(1, len(self._pair(prompt, c)[1]))
            scores.append(s)
            if progress is not None:
                progress(i + 1)
        best = max(range(len(scores)), key=scores.__getitem__)
        return Choice(index=best, text=choices[best], scores=scores)


class ChatSession:
    """A multi-turn conversation. The history is kept as token ids: each turn appends the new user
    message (through the chat template) to the previous prompt and answer, as the official chat.py
    does, with the answer cut at its first EOS/EOT (correct for any batch size)."""

    def __init__(
        self,
        llm: LLaDA,
        system: str | None = None,
        messages: Sequence[Message] | None = None,
        options: GenerationOptions | None = None,
    ) -> None:
        self.llm = llm
        self.options = options or llm.options
        self.messages: list[Message] = []
        self._ids: list[int] | None = None
        self.reset(system=system, messages=messages)

    def reset(self, system: str | None = None, messages: Sequence[Message] | None = None) -> None:
        """Forget the history (keep ``system`` or start from ``messages``)."""
        self.messages = [dict(m) for m in messages] if messages else []
        if system is not None:
            self.messages = [m for m in self.messages if m.get("role") != "system"]
            self.messages.insert(0, {"role": "system", "content": system})
        self._ids = None

    def stream(self, text: str, *, options: GenerationOptions | None = None, **overrides: Any) -> Iterator[Event]:
        """Send ``text`` as the user; yields the events of ``LLaDA.stream_chat`` and records the answer."""
        opts = (options or self.options).with_overrides(**overrides)
        tok = self.llm._tok()
        user = {"role": "user", "content": text}
        if self._ids is None:
            prompt = tok.apply_chat_template([*self.messages, user])
        else:
            prompt = self._ids + tok.apply_chat_template([user])[1:]
        for ev in self.llm._answer_stream([prompt], opts):
            if isinstance(ev, ResultEvent):
                res = ev.results[0]
                answer = res.ids[len(prompt) :]
                self._ids = next_turn_ids(
                    prompt,
                    answer,
                    [0],
                    eos_id=self.llm.config.eos_token_id,
                    eot_id=self.llm.config.eot_token_id,
                    reference_compat=opts.reference_compat,
                )
                self.messages += [user, {"role": "assistant", "content": res.text}]
            yield ev

    def send(self, text: str, *, options: GenerationOptions | None = None, **overrides: Any) -> TextResult:
        """Send ``text`` as the user and return the answer."""
        return LLaDA._drain(self.stream(text, options=options, **overrides))[0]


def _is_batch(messages: Any) -> bool:
    return bool(messages) and isinstance(messages[0], (list, tuple))


def _as_batch(messages: Any) -> list[list[Message]]:
    if not messages:
        raise ValueError("`messages` must not be empty")
    return [list(c) for c in messages] if _is_batch(messages) else [list(messages)]


def _positive(value: Any, name: str, upper: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= upper:
        raise ValueError(f"`{name}` must be 'auto' or an integer in [1, {upper}], got {value!r}")
    return value
