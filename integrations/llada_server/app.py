"""``create_app(llm)``: the OpenAI-compatible HTTP server of a loaded ``LLaDA``.

Each generation request runs the ordinary text API in a worker thread, on a ``BatchingBackend``: its
denoising steps share one batched forward with every other request in progress (``llada_sdk.decoding.batching``),
so greedy answers equal the single-request SDK answers. Admission is bounded (``max_concurrent``
requests decode, ``max_queue`` more wait, the rest get 503 with ``Retry-After``); each request has a
deadline and is cancelled at its next step when it passes or when the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse

from llada_sdk import LLaDA
from llada_sdk.decoding.batching import BatchingBackend, Cancelled, RequestHandle, StepBatcher
from llada_sdk.errors import LLaDAError
from llada_sdk.options import GenerationOptions
from llada_sdk.results import ResultEvent, StepEvent, TextEvent, TextResult
from llada_sdk.text.assistant import (
    FINISH_REASONS,
    ToolCall,
    TurnDelta,
    TurnEnd,
    assistant_turn,
    normalize_tool_choice,
)
from llada_sdk.text.tools import tool_spec
from llada_server.guard import Guard
from llada_server.metrics import Metrics
from llada_server.protocol import (
    CHAT_FIELDS,
    COMPLETION_FIELDS,
    INFILL_FIELDS,
    APIError,
    bad,
    chat_messages,
    check_fields,
    options_from,
    positive_int,
    response_schema,
)
from llada_server.settings import ServerSettings

log = logging.getLogger("llada_server")

_DONE = object()


class _Server:
    """The state behind the routes: the model on its batcher, the workers, admission and metrics."""

    def __init__(self, llm: LLaDA, settings: ServerSettings) -> None:
        self.settings = settings
        self.metrics = Metrics(settings.replica_id or "")
        batcher = StepBatcher(
            pad_id=llm.config.mask_token_id, gather_s=settings.gather_ms / 1000, on_forward=self.metrics.on_forward
        )
        self.backend = BatchingBackend(llm.backend, batcher)
        self.llm = LLaDA(self.backend, llm.tokenizer, llm.source, llm.options)
        self.base_options = llm.options
        self.window = int(llm.config.max_sequence_length)
        self.max_tokens = settings.max_tokens_limit or self.window
        self.pool = ThreadPoolExecutor(settings.max_concurrent, thread_name_prefix="llada-request")
        self.lock = threading.Lock()
        self.inflight = 0
        self.running = 0
        self.draining = False
        self.handles: set[RequestHandle] = set()  # of the requests admitted and not finished
        self.created = int(time.time())

    # -- admission -----------------------------------------------------------------------------

    def admit(self) -> None:
        s = self.settings
        with self.lock:
            if self.draining:
                raise APIError(
                    503, "the server is shutting down", type="unavailable_error", headers={"Retry-After": "5"}
                )
            if self.inflight >= s.max_concurrent + s.max_queue:
                raise APIError(
                    503,
                    f"the server is at capacity ({s.max_concurrent} requests decoding, {s.max_queue} waiting); retry later",
                    type="unavailable_error",
                    code="queue_full",
                    headers={"Retry-After": "1"},
                )
            self.inflight += 1
            self.metrics.queue_depth.set(self.inflight - self.running)

    def release(self) -> None:
        with self.lock:
            self.inflight -= 1
            self.metrics.queue_depth.set(self.inflight - self.running)

    def _wrap(self, fn: Callable[[RequestHandle], Any], handle: RequestHandle) -> Callable[[], Any]:
        def run() -> Any:
            with self.lock:
                self.running += 1
                self.metrics.running.set(self.running)
                self.metrics.queue_depth.set(self.inflight - self.running)
            try:
                with self.backend.batcher.request(handle):
                    handle.check()  # a request whose deadline passed in the queue does not start
                    return fn(handle)
            finally:
                with self.lock:
                    self.running -= 1
                    self.metrics.running.set(self.running)

        return run

    def handle(self) -> RequestHandle:
        return RequestHandle(deadline=time.monotonic() + self.settings.timeout_s)

    def track(self, handle: RequestHandle) -> Callable[[], None]:
        """Remember ``handle`` until the returned function is called (shutdown cancels what is left)."""
        with self.lock:
            self.handles.add(handle)
        return lambda: self.handles.discard(handle)

    async def call(self, request: Request, fn: Callable[[RequestHandle], Any]) -> Any:
        """``fn(handle)`` on a worker; the client going away cancels it at its next step."""
        handle = self.handle()
        forget = self.track(handle)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, self._wrap(fn, handle))

        async def watch() -> None:
            # sleep first: a short request (most of them) never pays for a disconnect check
            while not future.done():
                await asyncio.sleep(0.1)
                if await request.is_disconnected():
                    handle.cancel("client disconnected")
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            return await future
        finally:
            watcher.cancel()
            forget()

    async def stream(self, fn: Callable[[RequestHandle], Iterator[Any]]) -> AsyncIterator[Any]:
        """The items of ``fn(handle)`` (run on a worker) as they come; closing the iterator (the client
        went away) cancels the run at its next step."""
        handle = self.handle()
        forget = self.track(handle)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def produce(h: RequestHandle) -> None:
            try:
                for item in fn(h):
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            except BaseException as exc:  # handed to the consumer, which answers it
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        future = loop.run_in_executor(self.pool, self._wrap(produce, handle))
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            handle.cancel("client disconnected")
            await asyncio.shield(future)
            forget()


# -- errors -----------------------------------------------------------------------------------------


def _as_api_error(exc: BaseException) -> APIError:
    """An exception of a request as the error the client gets."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, Cancelled):
        if "timed out" in str(exc):
            return APIError(
                408, "the request took longer than the server's timeout", type="timeout_error", code="timeout"
            )
        return APIError(499, "the request was cancelled", type="cancelled")
    if isinstance(exc, (ValueError, TypeError)):
        text = str(exc)
        if "context window" in text:
            return APIError(400, text, code="context_length_exceeded")
        param = text.split("`")[1] if text.count("`") >= 2 else None  # core errors name the parameter first
        return APIError(400, text, param=param)
    if isinstance(exc, LLaDAError):
        return APIError(400, str(exc))
    log.error("request failed", exc_info=exc)
    return APIError(500, "internal server error (the server log has the details)", type="server_error")


def _error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def _sse_error(err: APIError) -> dict[str, str]:
    return {"data": json.dumps(err.body())}


# -- shapes -----------------------------------------------------------------------------------------


def _json(obj: dict[str, Any]) -> JSONResponse:
    """An answer of plain JSON types, sent as is: returned as a dict, FastAPI would walk it through
    ``jsonable_encoder`` first (about 0.1 ms a request, here 0.5 % of a one-block answer)."""
    return JSONResponse(obj)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for c in calls
    ]


def _step(ev: StepEvent, row: int = 0) -> dict[str, Any]:
    return {"block": ev.block, "step": ev.step, "filled": [list(p) for p in ev.filled[row]]}


class _Peeked:
    """An async iterator whose first item was already taken (to learn early whether the run fails)."""

    def __init__(self, head: Any, rest: AsyncIterator[Any]) -> None:
        self.head, self.rest, self.taken = head, rest, False

    def __aiter__(self) -> _Peeked:
        return self

    async def __anext__(self) -> Any:
        if not self.taken:
            self.taken = True
            return self.head
        return await self.rest.__anext__()

    async def aclose(self) -> None:
        await self.rest.aclose()  # type: ignore[attr-defined]


async def _opened(server: _Server, items: AsyncIterator[Any]) -> _Peeked:
    """``items`` with its first item taken; a failure before it releases the request and is raised."""
    try:
        head = await items.__anext__()
    except BaseException:
        await items.aclose()  # type: ignore[attr-defined]
        server.release()
        raise
    return _Peeked(head, items)


class _Tally:
    """What a stream counts as it goes: usage, and when its first content chunk left."""

    def __init__(self, server: _Server) -> None:
        self.server, self.started, self.first = server, time.perf_counter(), True
        self.prompt = self.completion = 0

    def first_chunk(self) -> None:
        if self.first:
            self.server.metrics.first_chunk.observe(time.perf_counter() - self.started)
            self.first = False


async def _sse(
    server: _Server,
    items: _Peeked,
    render: Callable[[int, Any, _Tally], list[dict[str, str]]],
    usage: Callable[..., dict[str, str]] | None,
    head: Sequence[dict[str, str]] = (),
) -> AsyncIterator[dict[str, str]]:
    """The SSE events of a run: ``head``, each item rendered, the usage chunk (``usage``: the chunk
    maker, when asked for), then ``[DONE]``; an error after the first event is an error event. Ends the
    run and releases its admission whatever happens."""
    tally = _Tally(server)
    try:
        for event in head:
            yield event
        async for i, ev in items:
            for event in render(i, ev, tally):
                yield event
        server.metrics.count_tokens(tally.prompt, tally.completion)
        if usage is not None:
            yield usage([], usage=_usage(tally.prompt, tally.completion))
    except Exception as exc:
        yield _sse_error(_as_api_error(exc))
    finally:
        await items.aclose()
        server.release()
    yield {"data": "[DONE]"}


async def _respond(events: AsyncIterator[dict[str, str]], server: _Server) -> Response:
    """An SSE response of ``events``, or the error response when the run fails before its first chunk."""
    try:
        first = await events.__anext__()
    except Exception as exc:
        return _error_response(_as_api_error(exc))

    async def all_events() -> AsyncIterator[dict[str, str]]:
        yield first
        async for ev in events:
            yield ev

    # a shutdown lets open streams run to their end for `drain_s` (then they are cancelled)
    return EventSourceResponse(all_events(), sep="\n", shutdown_grace_period=server.settings.drain_s)


def served_name(llm: LLaDA) -> str:
    """The id a model is served under by default: the bundled model's name, else its folder's name."""
    from llada_sdk.loading import BUNDLED_MODEL

    source = llm.source
    if source is None:
        return "llada"
    if source.kind == "bundled":
        return BUNDLED_MODEL
    return source.repo_id or source.path.name


def create_app(llm: LLaDA | None = None, settings: ServerSettings | None = None, **overrides: Any) -> FastAPI:
    """The FastAPI app serving ``llm`` (default: the bundled model) with the OpenAI HTTP API.

    Routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (``suffix``:
    bidirectional completion; ``[MASK…]`` spans in the prompt: infilling), ``POST /v1/infill``,
    ``GET /health``, ``GET /ready``, ``GET /metrics``. ``settings`` (or keyword overrides of its fields)
    bound what is admitted.
    """
    llm = llm if llm is not None else LLaDA.from_pretrained()
    settings = ServerSettings.model_validate({**(settings or ServerSettings()).model_dump(), **overrides})
    if settings.model_name is None:
        settings = settings.model_copy(update={"model_name": served_name(llm)})
    server = _Server(llm, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        # uvicorn has stopped accepting and waited for open requests (its graceful-shutdown timeout);
        # what still runs is cancelled at its next step
        server.draining = True
        for handle in list(server.handles):
            handle.cancel("the server is shutting down")
        await asyncio.to_thread(server.pool.shutdown, True)
        server.backend.batcher.close()

    app = FastAPI(title="llada-sdk", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.llada = server
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"]
        )

    app.add_middleware(Guard, settings=settings, metrics=server.metrics, as_error=_as_api_error)

    async def body_of(request: Request, known: frozenset[str]) -> dict[str, Any]:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > settings.max_body_bytes:
                raise APIError(
                    413,
                    f"the request body is over the limit of {settings.max_body_bytes} bytes",
                    code="request_too_large",
                )
        try:
            body = json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise bad(None, f"the request body is not valid JSON: {exc}") from exc
        body = check_fields(body, known)
        model = body.get("model")
        if model is not None and model != settings.model_name:
            raise bad(
                "model", f"unknown model {model!r}; this server serves {settings.model_name!r}", "model_not_found"
            )
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise bad("stream", f"`stream` must be true or false, got {stream!r}")
        return body

    def include_usage(body: dict[str, Any]) -> bool:
        so = body.get("stream_options")
        if so is None:
            return False
        if not isinstance(so, dict):
            raise bad("stream_options", "`stream_options` must be an object")
        return bool(so.get("include_usage"))

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return _error_response(exc)

    # -- info routes -------------------------------------------------------------------------------

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        if server.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        return JSONResponse({"status": "ready", "model": settings.model_name})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(server.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {
            "id": settings.model_name,
            "object": "model",
            "created": server.created,
            "owned_by": "llada-sdk",
            "max_model_len": server.window,
        }
        return {"object": "list", "data": [card]}

    # -- chat --------------------------------------------------------------------------------------

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Any:
        body = await body_of(request, CHAT_FIELDS)
        messages = chat_messages(body.get("messages"))
        opts = options_from(body, server.base_options, max_tokens_cap=server.max_tokens)
        n = positive_int(body, "n", 1, settings.max_n)
        tools = body.get("tools") or []
        if not isinstance(tools, list):
            raise bad("tools", "`tools` must be a list of tools")
        schema = response_schema(body.get("response_format"))
        tool_choice = body.get("tool_choice")
        try:
            names = [tool_spec(t).name for t in tools]
        except (TypeError, ValueError) as exc:
            raise bad("tools", str(exc)) from exc
        try:
            normalize_tool_choice(tool_choice, names)
        except ValueError as exc:
            raise bad("tool_choice", str(exc)) from exc
        steps = bool(body.get("stream_steps"))
        fit_calls = all(body.get(k) is None for k in ("max_tokens", "max_completion_tokens"))
        usage_chunk = include_usage(body)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        server.admit()

        def turns(handle: RequestHandle) -> Iterator[tuple[int, Any]]:
            for i in range(n):
                o = opts if opts.seed is None or i == 0 else opts.with_overrides(seed=opts.seed + i)
                for ev in assistant_turn(
                    server.llm,
                    messages,
                    options=o,
                    tools=tools,
                    tool_choice=tool_choice,
                    response_format=schema,
                    check=lambda _what: handle.check(),
                    fit_calls=fit_calls,
                ):
                    if isinstance(ev, StepEvent):
                        if steps:
                            yield i, _step(ev)
                    else:
                        yield i, ev

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
            obj = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": settings.model_name}
            return {"data": json.dumps({**obj, "choices": choices, **extra}, ensure_ascii=False)}

        if not body.get("stream"):
            try:
                ends = await server.call(request, lambda h: [ev for _, ev in turns(h) if isinstance(ev, TurnEnd)])
            finally:
                server.release()
            choices = []
            for i, end in enumerate(ends):
                message: dict[str, Any] = {
                    "role": "assistant",
                    "content": end.content if end.content or not end.tool_calls else None,
                }
                if end.tool_calls:
                    message["tool_calls"] = _tool_calls(end.tool_calls)
                choices.append({"index": i, "message": message, "finish_reason": end.finish_reason})
            prompt = ends[0].prompt_tokens
            completion = sum(e.completion_tokens for e in ends)
            server.metrics.count_tokens(prompt, completion)
            return _json(
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": settings.model_name,
                    "choices": choices,
                    "usage": _usage(prompt, completion),
                }
            )

        def render(i: int, ev: Any, tally: _Tally) -> list[dict[str, str]]:
            if isinstance(ev, dict):
                return [chunk([], llada_step={"index": i, **ev})]
            if isinstance(ev, TurnDelta):
                tally.first_chunk()
                return [chunk([{"index": i, "delta": {"content": ev.text}, "finish_reason": None}])]
            out = []
            if ev.tool_calls:
                calls = [{"index": k, **c} for k, c in enumerate(_tool_calls(ev.tool_calls))]
                out.append(chunk([{"index": i, "delta": {"tool_calls": calls}, "finish_reason": None}]))
            out.append(chunk([{"index": i, "delta": {}, "finish_reason": ev.finish_reason}]))
            tally.prompt, tally.completion = ev.prompt_tokens, tally.completion + ev.completion_tokens
            return out

        async def events() -> AsyncIterator[dict[str, str]]:
            items = await _opened(server, server.stream(turns))  # errors before any output keep their status
            roles = [
                chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
                for i in range(n)
            ]
            async for event in _sse(server, items, render, chunk if usage_chunk else None, roles):
                yield event

        return await _respond(events(), server)

    # -- completions and infill --------------------------------------------------------------------

    def completion_run(
        body: dict[str, Any], opts: GenerationOptions, prompt: str
    ) -> Callable[[RequestHandle], Iterator[Any]]:
        suffix = body.get("suffix")
        if suffix is not None and not isinstance(suffix, str):
            raise bad("suffix", f"`suffix` must be a string, got {type(suffix).__name__}")
        length = body.get("length")
        masked = "[MASK" in prompt

        def run(handle: RequestHandle) -> Iterator[Any]:
            if masked:
                if suffix is not None:
                    raise bad("suffix", "`suffix` cannot be combined with [MASK] spans in the prompt")
                events = server.llm.stream_infill(prompt, options=opts)
            elif suffix is not None:
                events = server.llm.stream_complete(prompt or None, suffix, length=length, options=opts)
            else:
                events = server.llm.stream_complete(prompt, options=opts)
            for ev in events:
                handle.check()
                yield ev

        return run

    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request) -> Any:
        body = await body_of(request, COMPLETION_FIELDS)
        prompt = body.get("prompt", "")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise bad("prompt", "`prompt` must be a string or a non-empty list of strings (token ids are not accepted)")
        opts = options_from(body, server.base_options, max_tokens_cap=server.max_tokens)
        if body.get("suffix") is not None and body.get("max_tokens") is not None and "max_auto_length" not in body:
            opts = opts.with_overrides(max_auto_length=min(opts.max_tokens, 1024))
        n = positive_int(body, "n", 1, settings.max_n)
        runs = [completion_run(body, opts, p) for p in prompts for _ in range(n)]
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        usage_chunk = include_usage(body)
        server.admit()

        def every(handle: RequestHandle) -> Iterator[tuple[int, Any]]:
            for i, run in enumerate(runs):
                for ev in run(handle):
                    yield i, ev

        def choice(i: int, r: TextResult) -> dict[str, Any]:
            extra = {"llada": {"fills": r.fills, "lengths": r.lengths}} if r.fills else {}
            return {
                "index": i,
                "text": r.text,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(r.finish_reason, r.finish_reason),
                **extra,
            }

        if not body.get("stream"):
            try:
                results = await server.call(
                    request, lambda h: [ev.results[0] for _, ev in every(h) if isinstance(ev, ResultEvent)]
                )
            finally:
                server.release()
            prompt_tokens = sum(r.prompt_tokens for r in results[::n])
            completion_tokens = sum(r.completion_tokens for r in results)
            server.metrics.count_tokens(prompt_tokens, completion_tokens)
            return _json(
                {
                    "id": rid,
                    "object": "text_completion",
                    "created": created,
                    "model": settings.model_name,
                    "choices": [choice(i, r) for i, r in enumerate(results)],
                    "usage": _usage(prompt_tokens, completion_tokens),
                }
            )

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
            obj = {"id": rid, "object": "text_completion", "created": created, "model": settings.model_name}
            return {"data": json.dumps({**obj, "choices": choices, **extra}, ensure_ascii=False)}

        def render(i: int, ev: Any, tally: _Tally) -> list[dict[str, str]]:
            if isinstance(ev, TextEvent) and ev.delta:
                tally.first_chunk()
                return [chunk([{"index": i, "text": ev.delta, "logprobs": None, "finish_reason": None}])]
            if isinstance(ev, ResultEvent):
                r = ev.results[0]
                tally.prompt += r.prompt_tokens if i % n == 0 else 0
                tally.completion += r.completion_tokens
                return [chunk([{**choice(i, r), "text": ""}])]
            return []

        async def events() -> AsyncIterator[dict[str, str]]:
            items = await _opened(server, server.stream(every))
            async for event in _sse(server, items, render, chunk if usage_chunk else None):
                yield event

        return await _respond(events(), server)

    @app.post("/v1/infill")
    async def infill(request: Request) -> JSONResponse:
        body = await body_of(request, INFILL_FIELDS)
        text = body.get("text")
        if not isinstance(text, str):
            raise bad("text", f"`text` must be a string holding [MASK] spans, got {type(text).__name__}")
        if body.get("stream"):
            raise bad("stream", "`stream` is not supported on /v1/infill; stream infilling through /v1/completions")
        opts = options_from(body, server.base_options, max_tokens_cap=server.max_tokens)
        server.admit()
        try:
            r: TextResult = await server.call(request, lambda h: server.llm.infill(text, options=opts))
        finally:
            server.release()
        return _json(
            {
                "id": f"infill-{uuid.uuid4().hex}",
                "object": "infill",
                "created": int(time.time()),
                "model": settings.model_name,
                "text": r.text,
                "fills": r.fills,
                "lengths": r.lengths,
                "finish_reason": "stop",
                "usage": _usage(r.prompt_tokens, r.completion_tokens),
            }
        )

    return app
