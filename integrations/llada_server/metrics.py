"""Prometheus metrics of one server (its own registry, so two apps in a process never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_ROWS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """Requests by route and status, queue depth, rows per batched step, forward passes, tokens,
    time to the first chunk and latency."""

    def __init__(self, replica: str = "") -> None:
        self.registry = CollectorRegistry()
        self.replica = replica
        r = self.registry
        self._requests = Counter(
            "llada_requests",
            "Requests answered, by route, status and replica.",
            ["route", "status", "replica"],
            registry=r,
        )
        self.queue_depth = Gauge("llada_queue_depth", "Requests waiting for a worker.", registry=r)
        self.running = Gauge("llada_requests_running", "Requests being decoded.", registry=r)
        self.rows_per_step = Histogram(
            "llada_batch_rows", "Canvas rows in one batched forward pass.", buckets=_ROWS, registry=r
        )
        self.requests_per_step = Histogram(
            "llada_batch_requests", "Requests sharing one batched forward pass.", buckets=_ROWS, registry=r
        )
        self.forward_passes = Counter("llada_forward_passes", "Batched forward passes run.", registry=r)
        self.positions = Counter(
            "llada_forward_positions",
            "Canvas positions in batched forward passes, by kind: the requests' own (real) and the padding "
            "that rows of different lengths get (computed by attention only on the torch backend).",
            ["kind"],
            registry=r,
        )
        # the children every forward pass touches, looked up once (a label lookup costs a lock and a dict)
        self._real, self._padding = self.positions.labels("real"), self.positions.labels("padding")
        self.tokens = Counter("llada_tokens", "Tokens, by kind (prompt, completion).", ["kind"], registry=r)
        self.first_chunk = Histogram(
            "llada_time_to_first_chunk_seconds",
            "Time to the first content chunk of a stream.",
            buckets=_LATENCY,
            registry=r,
        )
        self.latency = Histogram(
            "llada_request_latency_seconds",
            "Time to answer a request, by route.",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )

    def request_done(self, route: str, status: int) -> None:
        self._requests.labels(route, str(status), self.replica).inc()

    def count_tokens(self, prompt: int, completion: int) -> None:
        self.tokens.labels("prompt").inc(prompt)
        self.tokens.labels("completion").inc(completion)

    def on_forward(self, rows: int, requests: int, positions: int = 0, padding: int = 0) -> None:
        self.forward_passes.inc()
        self._real.inc(positions)
        self._padding.inc(padding)
        self.rows_per_step.observe(rows)
        self.requests_per_step.observe(requests)

    def render(self) -> bytes:
        return generate_latest(self.registry)
