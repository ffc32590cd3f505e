"""Shared plumbing of ``ChatLLaDA`` and ``LLaDALLM``: fields, the model cache, options, messages."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, Optional, TypeVar

from langchain_core.language_models import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, create_model, model_validator

from llada_sdk.loading import BUNDLED_MODEL
from llada_sdk.options import GenerationOptions, format_validation_error
from llada_sdk.text.tools import assistant_message, tool_result_message

if TYPE_CHECKING:
    from llada_sdk.api import LLaDA

GENERATION_FIELDS: tuple[str, ...] = tuple(GenerationOptions.model_fields)
"""The ``GenerationOptions`` fields, which both LangChain classes carry (``None`` = the default)."""


def _describe(name: str) -> str:
    info = GenerationOptions.model_fields[name]
    default = info.get_default(call_default_factory=True)
    return f"{info.description} (GenerationOptions.{name}; None = {default!r})"


class _Params(BaseModel):
    """Fields shared by ``ChatLLaDA`` and ``LLaDALLM``.

    Every ``GenerationOptions`` field is a field here, default ``None`` (= the options default);
    ``tests/test_langchain_fields.py`` keeps the two in sync.
    """

    model_config = ConfigDict(populate_by_name=True, protected_namespaces=())

    model_name: str = Field(default=BUNDLED_MODEL, alias="model")
    """Model to load: the bundled model (default), a local directory or a Hub repo id."""
    device: str | None = None
    """``cpu``, ``cuda``, ``cuda:1``...; default CUDA when available."""
    dtype: str | None = None
    """``float32`` / ``bfloat16`` / ``float16``; default the checkpoint's dtype."""
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Seconds a call may decode (finite, > 0; None = no limit); past it the decode stops at the next step
    and ``TimeoutError`` is raised."""
    max_retries: int = Field(default=2, ge=0)
    """Accepted for LangChain compatibility; local decoding has no transient failure to retry."""
    stream_steps: bool = False
    """Stream a chunk per denoising step too (empty text; the step in ``response_metadata["llada_steps"]``)."""
    base_url: str | None = None
    """A ``llada serve`` to call instead of loading the model here (``http://host:8000/v1``): the same
    fields and features over HTTP; ``model`` is then the server's model id."""
    api_key: SecretStr | None = None
    """The server's API key (``llada serve --api-key``), with ``base_url``."""

    @model_validator(mode="after")
    def _check_generation_fields(self) -> Any:
        # the options are otherwise only built per call: a bad value must fail where it is written
        try:
            self.generation_options()
        except ValidationError as exc:
            raise ValueError(format_validation_error(exc)) from None
        return self

    def generation_options(self, stop: Sequence[str] | None = None, **overrides: Any) -> GenerationOptions:
        """The ``GenerationOptions`` of a call: the fields set here, then ``overrides``, then ``stop``.

        When ``max_tokens`` is set but ``block_length`` is not, and the default block length does not
        divide it, the largest divisor of ``max_tokens`` not above the default is used (so
        ``max_tokens=100`` decodes 100 tokens in blocks of 5).

        Raises:
            pydantic.ValidationError: a value out of range, naming the field.
        """
        # a field the options gained after this class was written is simply not set here (the sync
        # test in tests/test_langchain_fields.py fails until it is declared)
        values = {k: getattr(self, k, None) for k in GENERATION_FIELDS}
        values = {k: v for k, v in values.items() if v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        stops = [*(values.pop("stop", None) or []), *(stop or [])]
        if stops:
            values["stop"] = list(dict.fromkeys(stops))
        base = GenerationOptions()
        if "max_tokens" in values and "block_length" not in values:
            n, block = values["max_tokens"], base.block_length
            if isinstance(n, int) and n >= 1 and block is not None and n % block:
                values["block_length"] = max(d for d in range(1, block + 1) if n % d == 0)
        return GenerationOptions.model_validate({**base.model_dump(), **values})

    def sent_options(self, stop: Sequence[str] | None = None, **overrides: Any) -> dict[str, Any]:
        """The options a call sets itself (fields given here or per call, ``stop``): what a remote call
        sends, so the server's own defaults hold for the rest. Validated like ``generation_options``."""
        opts = self.generation_options(stop=stop, **overrides)
        given = {k for k in GENERATION_FIELDS if getattr(self, k, None) is not None}
        given |= {k for k, v in overrides.items() if v is not None}
        if opts.stop:
            given.add("stop")
        if "max_tokens" in given:
            given.add("block_length")  # the block length chosen to divide max_tokens
        return {k: v for k, v in opts.model_dump(mode="json").items() if k in given}

    def remote(self) -> tuple[str, str | None] | None:
        """``(base_url, api key)`` when calls go to a server, else None."""
        if self.base_url is None:
            return None
        return self.base_url, None if self.api_key is None else self.api_key.get_secret_value()

    @classmethod
    def from_llada(cls, llm: Any, **kwargs: Any) -> Any:
        """Wrap an already loaded ``llada_sdk.LLaDA`` (shared through the model cache, not copied).

        Args:
            llm: the loaded model.
            kwargs: other fields (``temperature``, ``max_tokens``...).

        Returns:
            The LangChain model.
        """
        from llada_sdk import LLaDA

        if not isinstance(llm, LLaDA):
            raise TypeError(f"`llm` must be a llada_sdk.LLaDA, got {type(llm).__name__}: {llm!r}")
        return cls(model=register_model(llm), **kwargs)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, **self.generation_options().model_dump(exclude_defaults=True)}

    def _ls_params(
        self, model_type: Literal["chat", "llm"], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> LangSmithParams:
        """The LangSmith parameters of a call (``ls_model_type``: ``chat`` or ``llm``)."""
        opts = self.generation_options(stop=stop)
        params = LangSmithParams(
            ls_provider="llada",
            ls_model_name=str(kwargs.get("model") or self.model_name),
            ls_model_type=model_type,
            ls_temperature=kwargs.get("temperature", opts.temperature),
            ls_max_tokens=kwargs.get("max_tokens", opts.max_tokens),
        )
        if opts.stop:
            params["ls_stop"] = list(opts.stop)
        return params


def _option_fields() -> dict[str, Any]:
    """A field per ``GenerationOptions`` field, default None (= the options default): a new option (a
    new parallel-decoding rule, say) becomes a LangChain field without an edit here."""
    return {
        name: (Optional[info.annotation], Field(default=None, description=_describe(name)))  # noqa: UP045
        for name, info in GenerationOptions.model_fields.items()
    }


if TYPE_CHECKING:
    LLaDAParams = _Params
else:
    LLaDAParams = create_model("LLaDAParams", __base__=_Params, __module__=__name__, **_option_fields())

# ---------------------------------------------------------------------------------------------
# the model cache

_CACHE: dict[tuple[str, str | None, str | None], LLaDA] = {}
_CACHE_LOCK = threading.Lock()


def load_model(model: str, device: str | None, dtype: str | None) -> LLaDA:
    """The ``LLaDA`` for ``(model, device, dtype)``, loaded once per process and shared."""
    key = (model, device, dtype)
    with _CACHE_LOCK:
        llm = _CACHE.get(key)
        if llm is None:
            from llada_sdk import LLaDA

            llm = LLaDA.from_pretrained(None if model == BUNDLED_MODEL else model, device=device, dtype=dtype)
            _CACHE[key] = llm
        return llm


def register_model(llm: LLaDA) -> str:
    """Put an already loaded ``LLaDA`` into the cache; returns the ``model`` name that finds it."""
    name = llm.source.describe() if llm.source is not None else f"llada@{id(llm):x}"
    with _CACHE_LOCK:
        _CACHE[(name, None, None)] = llm
    return name


def cached_models() -> dict[tuple[str, str | None, str | None], LLaDA]:
    """A copy of the cache (for tests and diagnostics)."""
    with _CACHE_LOCK:
        return dict(_CACHE)


def split_call_kwargs(kwargs: dict[str, Any], allowed: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(generation overrides, other call kwargs)``; an unknown keyword raises ``TypeError``."""
    overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in GENERATION_FIELDS}
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {unknown}; accepted: the GenerationOptions fields "
            f"{list(GENERATION_FIELDS)} and {sorted(allowed)}"
        )
    return overrides, kwargs


# ---------------------------------------------------------------------------------------------
# messages


def text_of(content: Any, where: str) -> str:
    """The text of a message content: a string, or a list of text blocks (other blocks refused)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, block in enumerate(content):
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, dict) and block.get("type") in ("tool_call", "tool_use", "reasoning", "thinking"):
                continue  # tool calls are rendered from `AIMessage.tool_calls`; reasoning is not replayed
            else:
                kind = block.get("type") if isinstance(block, dict) else type(block).__name__
                raise ValueError(f"`{where}` content block {i} has type {kind!r}; LLaDA reads text blocks only")
        return "".join(parts)
    raise ValueError(f"`{where}` content must be a string or a list of text blocks, got {type(content).__name__}")


def to_llada_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as ``{"role", "content"}`` dicts in the format of ``llada_sdk.text.tools``.

    System -> ``system``, human -> ``user``, AI -> ``assistant`` (its tool calls rendered after its
    text), tool -> ``tool``, ``ChatMessage`` -> its role.

    Raises:
        ValueError: an unsupported message type or content block (named).
    """
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": text_of(m.content, where)})
        elif isinstance(m, HumanMessage):
            out.append({"role": "user", "content": text_of(m.content, where)})
        elif isinstance(m, AIMessage):
            calls = [(c["name"], c.get("args") or {}) for c in m.tool_calls]
            out.append(assistant_message(text_of(m.content, where), calls))
        elif isinstance(m, ToolMessage):
            out.append(tool_result_message(text_of(m.content, where)))
        elif isinstance(m, ChatMessage):
            out.append({"role": m.role, "content": text_of(m.content, where)})
        else:
            raise ValueError(
                f"`{where}` is a {type(m).__name__}; expected SystemMessage, HumanMessage, AIMessage, "
                "ToolMessage or ChatMessage"
            )
    return out


# ---------------------------------------------------------------------------------------------
# running a sync stream from async code

T = TypeVar("T")


def check_timeout(timeout: object) -> None:
    """Refuse a ``timeout`` that is not None or a finite number of seconds above 0 (a per-call value
    does not go through the field's validation)."""
    ok = timeout is None or (
        isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 < timeout < math.inf
    )
    if not ok:
        raise ValueError(f"`timeout` must be a finite number of seconds > 0 or None, got {timeout!r}")


class Deadline:
    """``timeout`` seconds from now (None: never); ``check()`` raises ``TimeoutError`` once past."""

    def __init__(self, timeout: float | None) -> None:
        check_timeout(timeout)
        self.timeout = timeout
        self.end = None if timeout is None else time.monotonic() + timeout

    def check(self, what: str = "decoding") -> None:
        if self.end is not None and time.monotonic() > self.end:
            raise TimeoutError(f"`timeout` ({self.timeout} s) exceeded while {what}")


async def iterate_in_thread(make: Callable[[threading.Event], Iterator[T]]) -> AsyncIterator[T]:
    """Iterate a blocking iterator in a worker thread without blocking the event loop.

    ``make(cancel)`` builds the iterator; it must stop at its next step once ``cancel`` is set. When
    the consumer stops (``aclose``, ``break``, task cancellation or a timeout), ``cancel`` is set.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancel = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop closed under us: nobody is listening any more
            cancel.set()

    def worker() -> None:
        try:
            for item in make(cancel):
                if cancel.is_set():
                    break
                put(("item", item))
        except BaseException as exc:  # handed to the consumer
            put(("error", exc))
        finally:
            put(("done", None))

    thread = threading.Thread(target=worker, name="langchain-llada-decode", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        cancel.set()
