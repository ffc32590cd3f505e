"""``LLaDA``: a loaded model and its text calls -- infill, complete (forward, backward, middle), chat,
score -- plus the reference-compatible ``generate``. A facade: canvases are built in ``canvas.py``,
decoded by ``runner.py`` on a ``Backend``, infilling lives in ``infill.py``, scoring in ``scoring.py``,
multi-turn chat in ``session.py``. Nothing here touches torch directly.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llada_sdk.backends.base import Backend
from llada_sdk.decoding.engine import DecodeConfig
from llada_sdk.decoding.engine import generate as _generate
from llada_sdk.errors import TokenizerError
from llada_sdk.options import GenerationOptions, ScoreOptions
from llada_sdk.results import BlockEvent, CanvasEvent, Choice, Event, ResultEvent, StepEvent, TextEvent, TextResult
from llada_sdk.text import infill as _infill
from llada_sdk.text import scoring as _scoring
from llada_sdk.text.canvas import AnswerReader, Span, next_turn_ids, parse_masked_text
from llada_sdk.text.parts import bos_ids as _bos_ids
from llada_sdk.text.runner import answer_job, drain, stream_canvas
from llada_sdk.text.session import ChatSession
from llada_sdk.text.validate import as_batch, as_id_rows, check_messages, check_text, is_batch, positive_length

if TYPE_CHECKING:
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.loading import ModelSource
    from llada_sdk.tokenizer import Message, Tokenizer


__all__ = [
    "BlockEvent",
    "CanvasEvent",
    "ChatSession",
    "Choice",
    "Event",
    "LLaDA",
    "ResultEvent",
    "StepEvent",
    "TextEvent",
    "TextResult",
    "next_turn_ids",
    "parse_masked_text",
]


class LLaDA:
    """A loaded LLaDA model: ``backend`` (what predicts the masks), ``tokenizer`` (or None), ``config``.

    Construct with ``LLaDA.from_pretrained``. ``options`` holds the defaults of the text calls; every
    call also takes ``options=`` (a ``GenerationOptions`` or a dict) and keyword overrides of any field.
    """

    def __init__(
        self,
        backend: Backend,
        tokenizer: Tokenizer | None,
        source: ModelSource | None = None,
        options: GenerationOptions | dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.source = source
        self.options = GenerationOptions.coerce(options) or GenerationOptions()

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | Path | None = None,
        *,
        backend: str = "auto",
        device: Any = None,
        dtype: Any = None,
        revision: str | None = None,
        mask_token_id: int | None = None,
        eos_token_id: int | None = None,
        eot_token_id: int | None = None,
        options: GenerationOptions | dict[str, Any] | None = None,
        **backend_options: Any,
    ) -> LLaDA:
        """Load the bundled model (no argument), a local directory in the official format, an
        exported bundle, or a Hugging Face Hub repo id (config, safetensors and tokenizer files only).

        Args:
            path_or_repo_id: None for the bundled model, a directory, or ``owner/name``.
            backend: ``"auto"`` (a bundle's own backend, else torch), ``"torch"``, or an installed
                backend plugin's name (``"onnx"`` with ``llada-sdk[onnx]``).
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available.
            dtype: ``float32``/``bfloat16``/``float16``; default the checkpoint's own dtype.
            revision: Hub branch, tag or commit.
            mask_token_id, eos_token_id, eot_token_id: override the ids of config.json and the
                tokenizer files (for checkpoints without tokenizer files).
            options: default generation options of the text calls.
            backend_options: for the torch backend ``compile=True`` (decode through ``torch.compile``:
                faster steps after a one-off compilation of tens of seconds) and ``prepack=True``
                (CPU float32: linear weights reordered for oneDNN once at load, faster small cached
                steps; inference only); a plugin backend's loader options otherwise (e.g. ``providers=``).

        Raises:
            ModelNotFoundError, CheckpointError, ConfigError: naming the file, tensor or key at fault.
        """
        from llada_sdk.loading import load_backend, resolve

        source = resolve(path_or_repo_id, revision)
        ids = {"mask_token_id": mask_token_id, "eos_token_id": eos_token_id, "eot_token_id": eot_token_id}
        loaded, tokenizer = load_backend(source.path, backend, device=device, dtype=dtype, ids=ids, **backend_options)
        return cls(loaded, tokenizer, source, options)

    # -- what the layers above use ----------------------------------------------------------------

    @property
    def config(self) -> LLaDAConfig:
        """The model's sizes, special ids and context window."""
        return self.backend.config

    @property
    def model(self) -> Any:
        """The PyTorch ``LLaDAModel`` of a torch backend (AttributeError on other backends)."""
        model = getattr(self.backend, "model", None)
        if model is None:
            raise AttributeError(f"the {self.backend.name} backend has no PyTorch model")
        return model

    @property
    def device(self) -> Any:
        """Where the backend runs (a ``torch.device`` for torch)."""
        return getattr(self.backend, "device", "cpu")

    @property
    def bos_ids(self) -> list[int]:
        """``[BOS]`` if the tokenizer defines it, else ``[]``."""
        return _bos_ids(self.config)

    @property
    def end_ids(self) -> set[int]:
        """Ids that end an answer: EOS, and EOT when the model has one."""
        ends = {self.config.eos_token_id}
        if self.config.eot_token_id is not None:
            ends.add(self.config.eot_token_id)
        return ends

    def require_tokenizer(self) -> Tokenizer:
        """The tokenizer, or a ``TokenizerError`` saying text calls need tokenizer files."""
        if self.tokenizer is None:
            where = self.source.path if self.source else "the model directory"
            raise TokenizerError(
                f"this model has no tokenizer files (tokenizer.json, tokenizer_config.json in {where}); "
                "text calls need them -- use generate() on token ids instead"
            )
        return self.tokenizer

    def resolve_options(
        self, options: GenerationOptions | dict[str, Any] | None, overrides: dict[str, Any]
    ) -> GenerationOptions:
        """``options`` (or the defaults) with ``overrides``, validated."""
        return (GenerationOptions.coerce(options) or self.options).with_overrides(**overrides)

    def stream_prompt_ids(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        options: GenerationOptions | dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Iterator[Event]:
        """Stream answers to prompts given as token ids (left-padded, ``max_tokens`` masks appended,
        decoded block by block, each answer cut at its first EOS/EOT and at stop sequences)."""
        opts = self.resolve_options(options, overrides)
        reader = AnswerReader(self.require_tokenizer().decode, self.end_ids, opts.stop)
        return stream_canvas(self.backend, answer_job(self.config, prompts, opts, reader), opts)

    # -- reference-compatible generation ------------------------------------------------------------

    def generate(
        self,
        prompt_ids: Any,
        attention_mask: Any = None,
        *,
        options: GenerationOptions | dict[str, Any] | None = None,
        generator: Any = None,
        **overrides: Any,
    ) -> Any:
        """The official ``generate.py::generate``, token for token: returns ``[B, P + gen_length]`` ids
        (an array of the backend's kind: a torch tensor on the torch backend).

        Takes the reference's arguments (``steps``, ``gen_length``, ``block_length``, ``temperature``,
        ``cfg_scale``, ``remasking``, ``logits_eos_inf``, ``confidence_eos_eot_inf``) and any other
        ``GenerationOptions`` field (``threshold``, ``cache``, ``reference_compat``...) as keywords, with
        the reference's defaults (``GenerationOptions.reference()``), or a whole ``options``.
        ``generator=None`` draws from the global RNG like the reference.
        """
        given = GenerationOptions.coerce(options)
        opts = GenerationOptions.reference(**{**(given.model_dump() if given else {}), **overrides})
        cfg = self.config
        prompt = self.backend.asarray(as_id_rows(prompt_ids, "prompt_ids"))
        am = None if attention_mask is None else self.backend.asarray(as_id_rows(attention_mask, "attention_mask"))
        return _generate(
            self.backend.predictor(DecodeConfig.for_model(opts, cfg)),
            prompt,
            am,
            opts,
            mask_id=cfg.mask_token_id,
            eos_id=cfg.eos_token_id,
            eot_id=cfg.eot_token_id,
            generator=generator,
        )

    # -- completion and chat --------------------------------------------------------------------------

    def stream_complete(
        self,
        prefix: str | None = None,
        suffix: str | None = None,
        *,
        options: GenerationOptions | dict[str, Any] | None = None,
        length: int | str | None = None,
        **overrides: Any,
    ) -> Iterator[Event]:
        """Streaming ``complete``: yields ``CanvasEvent``, ``StepEvent``, ``BlockEvent``, ``TextEvent``
        and finally ``ResultEvent``."""
        if prefix is not None:
            check_text(prefix, "prefix")
        if suffix is not None:
            check_text(suffix, "suffix")
        opts = self.resolve_options(options, overrides)
        tok = self.require_tokenizer()
        if not suffix:
            if not prefix:
                raise ValueError("`prefix` and `suffix` are both empty: give at least one")
            return self.stream_prompt_ids([self.bos_ids + tok.encode(prefix)], options=opts)
        span = Span(None if length in (None, "auto") else positive_length(length, "length", opts.max_tokens))
        parts: list[str | Span] = [(prefix or "").rstrip(" "), span, suffix]
        return _infill.stream_infill_parts(
            self, parts, opts, min(opts.max_tokens, opts.max_auto_length), fill_only=True
        )

    def complete(
        self,
        prefix: str | None = None,
        suffix: str | None = None,
        *,
        options: GenerationOptions | dict[str, Any] | None = None,
        length: int | str | None = None,
        **overrides: Any,
    ) -> TextResult:
        """Write text after ``prefix`` (forward), before ``suffix`` (backward), or between both (middle).

        Forward: ``max_tokens`` masks after the prefix, cut at EOS/EOT or a stop sequence.
        Backward and middle: a span before the suffix whose length is ``length`` tokens, or chosen
        by the model (``length="auto"``, the default; up to ``min(max_tokens, max_auto_length)``).
        ``text`` is the new text only.
        """
        return drain(self.stream_complete(prefix, suffix, options=options, length=length, **overrides))[0]

    def stream_chat(
        self,
        messages: Sequence[Message] | Sequence[Sequence[Message]],
        *,
        options: GenerationOptions | dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Iterator[Event]:
        """Streaming ``chat``: one row per conversation."""
        opts = self.resolve_options(options, overrides)
        convs = as_batch(messages)
        for i, c in enumerate(convs):
            check_messages(c, "messages" if len(convs) == 1 else f"messages[{i}]")
        tok = self.require_tokenizer()
        return self.stream_prompt_ids([tok.apply_chat_template(c) for c in convs], options=opts)

    def chat(
        self,
        messages: Sequence[Message] | Sequence[Sequence[Message]],
        *,
        options: GenerationOptions | dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Any:
        """Answer a conversation (a list of ``{"role", "content"}``) or a batch of them.

        Returns a ``TextResult`` for one conversation, a list for a batch. The answer is cut at the
        first EOS/EOT and at stop sequences.
        """
        results = drain(self.stream_chat(messages, options=options, **overrides))
        return results if is_batch(messages) else results[0]

    def session(
        self,
        system: str | None = None,
        messages: Sequence[Message] | None = None,
        options: GenerationOptions | dict[str, Any] | None = None,
    ) -> ChatSession:
        """A multi-turn ``ChatSession`` (history kept as token ids, as the official chat.py)."""
        return ChatSession(self, system=system, messages=messages, options=options)

    # -- infilling ----------------------------------------------------------------------------------

    def stream_infill(
        self,
        text: str,
        *,
        options: GenerationOptions | dict[str, Any] | None = None,
        allowed_tokens: Sequence[Collection[int] | None] | None = None,
        **overrides: Any,
    ) -> Iterator[Event]:
        """Streaming ``infill``."""
        check_text(text, "text")
        opts = self.resolve_options(options, overrides)
        self.require_tokenizer()
        return _infill.stream_infill_parts(
            self, parse_masked_text(text), opts, opts.max_auto_length, allowed=allowed_tokens
        )

    def infill(
        self,
        text: str,
        *,
        options: GenerationOptions | dict[str, Any] | None = None,
        allowed_tokens: Sequence[Collection[int] | None] | None = None,
        **overrides: Any,
    ) -> TextResult:
        """Fill the masked spans of ``text``: ``[MASK]`` (one token), ``[MASK:n]`` (n tokens),
        ``[MASK:auto]`` (the model picks the length, up to ``max_auto_length``); ``\\[MASK]`` is literal.

        All spans are decoded together, most confident token first (one token per step unless
        ``steps`` is smaller). Returns the filled text, ``fills`` per span and their ``lengths``.
        ``allowed_tokens``: one entry per span, None or the token ids that span may contain.
        """
        return drain(self.stream_infill(text, options=options, allowed_tokens=allowed_tokens, **overrides))[0]

    def fill_schema(self, prompt: str, schema: Any, **kwargs: Any) -> Any:
        """Fill ``schema`` (a pydantic model, TypedDict or JSON-schema dict) from ``prompt``: the JSON
        skeleton is fixed text, the model writes only the values, and the result always parses and
        validates (a model instance for a pydantic schema, else a dict). Keywords: ``max_string_tokens``,
        ``max_number_tokens``, ``max_items``, ``mc_num``, ``options`` (``llada_sdk.text.structured.fill_schema``)."""
        from llada_sdk.text.structured import fill_schema

        return fill_schema(self, prompt, schema, **kwargs)

    # -- scoring ------------------------------------------------------------------------------------

    def score(
        self,
        prompt: str | Sequence[int],
        continuation: str | Sequence[int],
        *,
        options: ScoreOptions | dict[str, Any] | None = None,
        **overrides: Any,
    ) -> float:
        """Monte Carlo lower bound on ``log p(continuation | prompt)`` (the official estimator).

        Text is encoded as ``[BOS] prompt`` and ``continuation`` (trailing spaces of the prompt move
        to the continuation). ``ScoreOptions`` fields (``mc_num``, ``batch_size``, ``cfg_scale``,
        ``seed``) as keywords or ``options``; ``seed=None`` uses the global RNG (the reference's order).
        """
        return _scoring.score(self, prompt, continuation, ScoreOptions.coerce(options).with_overrides(**overrides))

    def choose(
        self,
        prompt: str,
        choices: Sequence[str],
        *,
        options: ScoreOptions | dict[str, Any] | None = None,
        normalize: bool = False,
        progress: Callable[[int], None] | None = None,
        **overrides: Any,
    ) -> Choice:
        """Multiple choice: the choice with the highest ``score`` (the same seed for every choice).
        ``normalize`` divides each score by the choice's token count (lm-eval's ``acc_norm`` spirit)."""
        check_text(prompt, "prompt")
        opts = ScoreOptions.coerce(options).with_overrides(**overrides)
        return _scoring.choose(self, prompt, choices, opts, normalize=normalize, progress=progress)
