"""The server's outer layer, as plain ASGI: the API key, the declared body size, the replica header, the
request metrics, and an OpenAI-shaped error for anything a route let through.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` runs every
request through an extra task and a memory stream, which cost a measurable share of a short request
(``docs/benchmarks.md``, "Serving").
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from llada_server.metrics import Metrics
from llada_server.protocol import APIError
from llada_server.settings import ServerSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """ASGI middleware around the app (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        settings: ServerSettings,
        metrics: Metrics,
        as_error: Callable[[BaseException], APIError],
    ) -> None:
        self.app, self.settings, self.metrics, self.as_error = app, settings, metrics, as_error
        self.replica = [(b"x-llada-replica", settings.replica_id.encode())] if settings.replica_id is not None else []

    def _refusal(self, scope: Scope) -> APIError | None:
        route: str = scope["path"]
        headers = dict(scope.get("headers") or [])
        s = self.settings
        if route.startswith("/v1/") and s.api_key is not None:
            if headers.get(b"authorization", b"").decode("latin-1") != f"Bearer {s.api_key}":
                return APIError(
                    401,
                    "missing or wrong API key (send Authorization: Bearer KEY)",
                    type="authentication_error",
                    code="invalid_api_key",
                )
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if scope.get("method") == "POST" and declared.isdigit() and int(declared) > s.max_body_bytes:
            return APIError(
                413,
                f"the request body ({declared} bytes) is over the limit of {s.max_body_bytes} bytes",
                code="request_too_large",
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, route = time.perf_counter(), str(scope["path"])
        status = 500
        sent_start = False

        async def send_with_header(message: Message) -> None:
            nonlocal status, sent_start
            if message["type"] == "http.response.start":
                status, sent_start = int(message["status"]), True
                if self.replica:
                    message["headers"] = [*message.get("headers", []), *self.replica]
            await send(message)

        async def respond(err: APIError) -> None:
            await JSONResponse(err.body(), status_code=err.status, headers=err.headers)(
                scope, receive, send_with_header
            )

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await respond(refusal)
            else:
                await self.app(scope, receive, send_with_header)
        except Exception as exc:  # never a traceback to the client
            if sent_start:
                raise  # the response has begun: the server closes the connection
            await respond(self.as_error(exc))
        finally:
            self.metrics.request_done(route, status)
            if route.startswith("/v1/"):
                self.metrics.latency.labels(route).observe(time.perf_counter() - started)
