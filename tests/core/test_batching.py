"""Step-level request batching: concurrent text calls share forwards and keep their single answers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from llada_sdk import LLaDA
from llada_sdk.decoding.batching import BatchingBackend, Cancelled, RequestHandle, StepBatcher

CALLS: list[tuple[str, Any]] = [
    ("chat", [{"role": "user", "content": "Where does Zapur live?"}]),
    ("chat", [{"role": "user", "content": "What month comes after March?"}]),
    ("infill", "Zapur lives in [MASK:2] and works as a [MASK:2]."),
    ("complete", "Zapur lives in"),
    ("complete", "The parent of Zapur is"),
    ("suffix", "'s parent is Lotrobar."),
    ("threshold", [{"role": "user", "content": "Who is Zapur's parent?"}]),
    ("infill", "count: 4 5 [MASK:2] 7 [MASK:2] 9"),
]


def _run(llm: LLaDA, kind: str, arg: Any) -> tuple[str, list[int]]:
    if kind == "chat":
        r = llm.chat(arg)
    elif kind == "threshold":
        r = llm.chat(arg, threshold=0.9)
    elif kind == "infill":
        r = llm.infill(arg)
    elif kind == "complete":
        r = llm.complete(arg)
    else:
        r = llm.complete(suffix=arg, length=2)
    return r.text, list(r.ids)


def test_concurrent_calls_share_forwards_and_give_the_single_answers(bundled: Any) -> None:
    single = [_run(bundled, k, a) for k, a in CALLS]
    backend = BatchingBackend(bundled.backend)
    llm = LLaDA(backend, bundled.tokenizer)

    def one(call: tuple[str, Any]) -> tuple[str, list[int]]:
        with backend.batcher.request():
            return _run(llm, *call)

    with ThreadPoolExecutor(len(CALLS)) as pool:
        batched = list(pool.map(one, CALLS * 2))
    assert batched == single * 2
    stats = backend.batcher.stats
    assert stats.rows > stats.forwards  # some forwards held several requests' rows (of different lengths)
    assert max(stats.rows_per_forward) > 1
    backend.batcher.close()


def test_a_cancelled_request_stops_at_its_next_step(bundled: Any) -> None:
    backend = BatchingBackend(bundled.backend)
    llm = LLaDA(backend, bundled.tokenizer)
    steps = 0
    with backend.batcher.request() as handle:
        with pytest.raises(Cancelled, match="client gone"):
            for _event in llm.stream_complete("Zapur lives in", max_tokens=32):
                steps += 1
                if steps == 3:
                    handle.cancel("client gone")
    assert steps == 3  # no step ran after the cancel
    assert backend.batcher.active == 0


def test_a_passed_deadline_cancels_and_a_forward_error_reaches_every_waiter(bundled: Any) -> None:
    backend = BatchingBackend(bundled.backend)
    llm = LLaDA(backend, bundled.tokenizer)
    with backend.batcher.request(RequestHandle(deadline=0.0)), pytest.raises(Cancelled, match="timed out"):
        llm.complete("Zapur lives in")

    batcher = StepBatcher()
    barrier = threading.Barrier(2)

    def broken(ids: Any, attention_mask: Any = None) -> Any:
        raise RuntimeError("device lost")

    def call() -> str:
        barrier.wait()
        try:
            batcher.submit(broken, bundled.backend.asarray([[1, 2]]), None)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda _: call(), range(2))) == ["device lost"] * 2
    assert batcher.run_alone(lambda: 7) == 7  # the model thread survived
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.run_alone(lambda: 7)


def test_bad_batcher_settings_are_named() -> None:
    with pytest.raises(ValueError, match="`max_rows` must be >= 1, got 0"):
        StepBatcher(max_rows=0)


def test_golden_generations_stay_token_exact_when_batched_together(tiny: Any, golden: Any) -> None:
    from tests.conftest import GENERATE_KEYS

    cases = [c for c in golden["generation"] if c["torch_manual_seed"] is None and "args" in c]
    cases = [c for c in cases if set(GENERATE_KEYS) <= set(c["args"])]
    assert len(cases) >= 8
    backend = BatchingBackend(tiny.backend)
    llm = LLaDA(backend, tiny.tokenizer)

    def one(case: dict[str, Any]) -> list[list[int]]:
        with backend.batcher.request():
            out = llm.generate(case["prompt"], case["attention_mask"], **{k: case["args"][k] for k in GENERATE_KEYS})
        return out.tolist()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(len(cases)) as pool:
        got = list(pool.map(one, cases))
    assert got == [c["output"] for c in cases]
    assert max(backend.batcher.stats.rows_per_forward) > 2  # cases did share forwards
