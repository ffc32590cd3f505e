"""Step-level request batching: concurrent decoding runs share one forward pass per denoising step.

Every request runs the ordinary engine loop (``engine.denoise``, through any text call) in its own
thread, on a ``BatchingBackend``. Its predictor does not run the network: it hands the step's canvas to
the ``StepBatcher``, which runs one batched forward over every request waiting at that moment (on the
thread of one of them: one forward at a time) and hands each request its own rows back. So a request joins at the
next step and leaves when its loop ends, never waiting for another to finish; rows may differ in
canvas length (right-padded, with an attention mask; a torch model skips the padded positions'
work, ``LLaDAModel.forward_unpadded``), in block position and in options, because
choosing and committing stay in each request's own loop. Greedy answers are the single-request
answers: the engine and its arithmetic are the same, only the forward is shared.

Runs that cannot share a forward form their own groups: each distinct predictor (a fused greedy graph,
plain logits) is a group, and KV-cached runs (``cache="prefix"|"dual"``) run alone, between batched steps.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llada_sdk.backends.base import Backend, MaskPredictor
from llada_sdk.decoding.arrays import Array, ops_for

__all__ = ["BatchStats", "BatchingBackend", "Cancelled", "RequestHandle", "StepBatcher"]


class Cancelled(Exception):
    """The request was cancelled (client gone, deadline passed); raised at its next step."""


@dataclass(eq=False)  # identity: servers keep handles in sets
class RequestHandle:
    """One request's controls: ``cancel()`` ends it at its next step; ``deadline`` (monotonic seconds)
    ends it the same way once passed."""

    deadline: float | None = None
    _cancelled: threading.Event = field(default_factory=threading.Event)
    reason: str = "cancelled"

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._cancelled.set()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise Cancelled(self.reason)
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.cancel("timed out")
            raise Cancelled(self.reason)


@dataclass
class BatchStats:
    """Counters of a ``StepBatcher``: forward passes run, rows they held, requests they served, canvas
    positions (the requests' own) and the padding added to batch rows of different lengths."""

    forwards: int = 0
    rows: int = 0
    requests: int = 0
    positions: int = 0
    padding: int = 0
    rows_per_forward: list[int] = field(default_factory=list)  # the last 1000

    def record(self, rows: int, requests: int, positions: int = 0, padding: int = 0) -> None:
        self.forwards += 1
        self.rows += rows
        self.requests += requests
        self.positions += positions
        self.padding += padding
        self.rows_per_forward.append(rows)
        del self.rows_per_forward[:-1000]


@dataclass
class _Job:
    key: Any  # jobs with the same key may share a forward
    ids: Any  # [b, L] canvas rows (None for a job that runs alone)
    attention_mask: Array | None
    run: Callable[[], Any] | None = None  # a job that runs alone
    owner: int = field(default_factory=threading.get_ident)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class StepBatcher:
    """Runs the forward passes of every request one at a time, batching those that wait together.

    Args:
        max_rows: most canvas rows in one forward (a group larger than this is split).
        gather_s: how long a step waits for the requests of the previous forward that have not handed in
            their next canvas yet (they are committing); the forward runs as soon as all have, or
            when this passes. Requests that just joined or are busy elsewhere are not waited for.
        pad_id: the id right-padding shorter canvases (masked out by the attention mask).
        on_forward: called after each batched forward with its rows, requests, canvas positions and
            padding positions (metrics).
    """

    def __init__(
        self,
        *,
        max_rows: int = 64,
        gather_s: float = 0.005,
        pad_id: int = 0,
        on_forward: Callable[[int, int, int, int], None] | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"`max_rows` must be >= 1, got {max_rows}")
        self.max_rows, self.gather_s, self.pad_id = max_rows, gather_s, pad_id
        self.on_forward = on_forward
        self.stats = BatchStats()
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._active: set[int] = set()  # threads inside request()
        self._last: set[int] = set()  # threads served by the previous forward
        self._local = threading.local()
        self._leading = False  # a thread is running forwards
        self._closed = False

    # -- requests ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def request(self, handle: RequestHandle | None = None) -> Iterator[RequestHandle]:
        """The scope of one request on this thread: its steps are batched with the other requests'
        and it may be cancelled through the yielded handle."""
        handle = handle or RequestHandle()
        with self._cond:
            self._active.add(threading.get_ident())
        previous = getattr(self._local, "handle", None)
        self._local.handle = handle
        try:
            yield handle
        finally:
            self._local.handle = previous
            with self._cond:
                self._active.discard(threading.get_ident())
                self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (nothing is accepted any more)."""
        return self._closed

    @property
    def active(self) -> int:
        """Requests in progress."""
        return len(self._active)

    def submit(self, key: Any, ids: Array, attention_mask: Array | None) -> Any:
        """The predictor output for ``ids`` (run batched with other requests' rows of the same ``key``)."""
        return self._wait(_Job(key, ids, attention_mask))

    def run_alone(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` alone, between batched forwards."""
        return self._wait(_Job(None, None, None, run=fn))

    def close(self) -> None:
        """Refuse new work; jobs still waiting get an error."""
        with self._cond:
            self._closed = True
            for job in self._pending:
                job.error = RuntimeError("the batcher is closed")
                job.done.set()
            self._pending.clear()
            self._cond.notify_all()

    def _wait(self, job: _Job) -> Any:
        """Queue ``job``; the first waiting thread that finds no forward running leads: it runs the
        groups in order until its own job is done, then hands the lead to a waiting thread. (No thread
        of its own: a lone request runs its forwards on its own thread, without hand-offs.)"""
        handle: RequestHandle | None = getattr(self._local, "handle", None)
        if handle is not None:
            handle.check()
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._pending.append(job)
            self._cond.notify_all()
            while not job.done.is_set() and self._leading:
                self._cond.wait()
            lead = not job.done.is_set()
            if lead:
                self._leading = True
        if lead:
            try:
                while not job.done.is_set():
                    self._run(self._take())
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        return job.result

    # -- the leader ------------------------------------------------------------------------------

    def _take(self) -> list[_Job]:
        """The next group (FIFO by its first job), after gathering the stragglers of the last forward."""
        with self._cond:
            deadline = time.monotonic() + self.gather_s
            while not (self._last & self._active) <= {j.owner for j in self._pending}:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            first = self._pending[0]
            if first.run is not None:
                group = [first]
            else:
                group, rows = [], 0
                for job in self._pending:
                    b = int(job.ids.shape[0]) if job.ids is not None else 0
                    if job.run is None and job.key is first.key and (not group or rows + b <= self.max_rows):
                        group.append(job)
                        rows += b
            self._last = {j.owner for j in group}
            taken = {id(j) for j in group}
            self._pending = [j for j in self._pending if id(j) not in taken]
            return group

    def _run(self, group: list[_Job]) -> None:
        try:
            if group[0].run is not None:
                group[0].result = group[0].run()
            else:
                for job, out in zip(group, self._forward(group)):
                    job.result = out
        except Exception as exc:  # every job of the group gets the failure; the batcher goes on
            for job in group:
                job.error = exc
        except BaseException:  # Ctrl-C on the leading thread: it stops, the others are told why
            for job in group:
                job.error = RuntimeError("the forward pass was interrupted")
            raise
        finally:
            with self._cond:
                for job in group:
                    job.done.set()
                self._cond.notify_all()

    def _forward(self, group: list[_Job]) -> list[Any]:
        predictor: MaskPredictor = group[0].key
        parts = [(j.ids, j.attention_mask) for j in group]
        xp = ops_for(parts[0][0])
        length = max(int(ids.shape[1]) for ids, _ in parts)
        ragged = any(int(ids.shape[1]) != length for ids, _ in parts)
        if len(group) == 1:
            ids, am = parts[0]
            outs = [predictor(ids, am)]
        else:
            rows, masks = [], []
            for ids, am in parts:
                b, n = int(ids.shape[0]), int(ids.shape[1])
                if am is None:
                    am = xp.full((b, n), 1, "int64", like=ids)
                if n < length:
                    ids = xp.concat([ids, xp.full((b, length - n), self.pad_id, "int64", like=ids)], 1)
                    am = xp.concat([xp.astype(am, "int64"), xp.full((b, length - n), 0, "int64", like=ids)], 1)
                rows.append(ids)
                masks.append(xp.astype(am, "int64"))
            own_masks = any(am is not None for _, am in parts)
            call: Callable[..., Any] = predictor
            # only the batcher's own padding is skipped: a request's own mask keeps the full forward
            if ragged and not own_masks:
                call = getattr(predictor, "forward_unpadded", predictor)
            out = call(xp.concat(rows, 0), xp.concat(masks, 0) if ragged or own_masks else None)
            outs, at = [], 0
            for ids, _ in parts:
                b, n = int(ids.shape[0]), int(ids.shape[1])
                if isinstance(out, tuple):
                    outs.append(tuple(o[at : at + b, :n] for o in out))
                else:
                    outs.append(out[at : at + b, :n])
                at += b
        total = sum(int(ids.shape[0]) for ids, _ in parts)
        positions = sum(int(ids.shape[0]) * int(ids.shape[1]) for ids, _ in parts)
        padding = total * length - positions
        self.stats.record(total, len(group), positions, padding)
        if self.on_forward is not None:
            self.on_forward(total, len(group), positions, padding)
        return outs


class _BatchedPredictor:
    """A ``MaskPredictor`` whose calls run batched on the ``StepBatcher``."""

    def __init__(self, inner: MaskPredictor, batcher: StepBatcher) -> None:
        self.inner, self.batcher = inner, batcher

    def __call__(self, input_ids: Array, attention_mask: Array | None = None) -> Any:
        return self.batcher.submit(self.inner, input_ids, attention_mask)


class _AlonePredictor:
    """A KV-cached predictor: each call runs alone on the batcher's thread (its caches are per run)."""

    def __init__(self, inner: Any, batcher: StepBatcher) -> None:
        self.inner, self.batcher = inner, batcher

    def __call__(self, input_ids: Array, attention_mask: Array | None = None) -> Any:
        return self.batcher.run_alone(lambda: self.inner(input_ids, attention_mask))

    def forward_cached(self, input_ids: Array, past: Any = None, start: int = 0) -> tuple[Array, Any]:
        return self.batcher.run_alone(lambda: self.inner.forward_cached(input_ids, past, start))  # type: ignore[no-any-return]


class BatchingBackend:
    """A ``Backend`` whose predictors run on a ``StepBatcher``: wrap a loaded backend in it, build an
    ``LLaDA`` on it, and call the text API from many threads, each inside ``batcher.request()``."""

    def __init__(self, backend: Backend, batcher: StepBatcher | None = None) -> None:
        self.backend = backend
        self.batcher = batcher or StepBatcher(pad_id=backend.config.mask_token_id)
        self.name = backend.name
        self.config = backend.config
        self.ops = backend.ops

    def predictor(self, decode: Any = None, *, logits: bool = False) -> Any:
        inner = self.backend.predictor(decode, logits=logits)
        if getattr(decode, "cache", None) is not None:
            return _AlonePredictor(inner, self.batcher)
        return _BatchedPredictor(inner, self.batcher)

    def asarray(self, data: Any) -> Array:
        return self.backend.asarray(data)

    def info(self) -> dict[str, Any]:
        return {**self.backend.info(), "batching": True}
