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


def _batched(bundled: LLaDA, calls: list[tuple[str, Any]]) -> tuple[BatchingBackend, list[tuple[str, list[int]]]]:
    """The calls run concurrently, one thread each, on a new batching backend over ``bundled``'s."""
    backend = BatchingBackend(bundled.backend)
    llm = LLaDA(backend, bundled.tokenizer)

    def one(call: tuple[str, Any]) -> tuple[str, list[int]]:
        with backend.batcher.request():
            return _run(llm, *call)

    with ThreadPoolExecutor(len(calls)) as pool:
        return backend, list(pool.map(one, calls))


def test_concurrent_calls_share_forwards_and_give_the_single_answers(bundled: Any) -> None:
    single = [_run(bundled, k, a) for k, a in CALLS]
    backend, batched = _batched(bundled, CALLS * 2)
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


@pytest.mark.parametrize("kv_heads", [None, 2])
def test_forward_unpadded_matches_forward_where_the_mask_keeps_a_position(kv_heads: int | None) -> None:
    import dataclasses

    import torch

    from llada_sdk.config import LLaDAConfig
    from llada_sdk.model import LLaDAModel

    cfg = LLaDAConfig(
        d_model=64, n_heads=4, n_layers=2, vocab_size=100, mlp_hidden_size=96, mask_token_id=99, eos_token_id=98
    )
    if kv_heads is not None:
        cfg = dataclasses.replace(cfg, n_kv_heads=kv_heads)
    torch.manual_seed(0)
    model = LLaDAModel(cfg).eval()
    ids = torch.randint(0, 99, (4, 13))
    mask = torch.zeros(4, 13, dtype=torch.long)
    for row, (lo, hi) in enumerate([(0, 13), (0, 5), (4, 13), (0, 1)]):  # right, left and one-token rows
        mask[row, lo:hi] = 1
    with torch.no_grad():
        full, skipped = model(ids, mask), model.forward_unpadded(ids, mask)
        keep = mask.bool()
        torch.testing.assert_close(skipped[keep], full[keep], rtol=1e-5, atol=1e-5)
        assert bool((skipped[~keep] == 0).all())  # padded positions are not computed
        # no mask: the plain forward
        torch.testing.assert_close(model.forward_unpadded(ids), model(ids), rtol=0, atol=0)
        with pytest.raises(ValueError, match="`attention_mask` must have the shape"):
            model.forward_unpadded(ids, mask[:, :5])


def test_the_batcher_skips_the_padding_it_adds(bundled: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of different lengths share a forward; the MLPs see only their real tokens."""
    model = bundled.backend.model
    seen: list[tuple[int, int]] = []  # (tokens the first MLP ran on, rows x length of the forward)
    unpadded = model.forward_unpadded

    def spy(ids: Any, mask: Any = None) -> Any:
        hook = model.transformer.blocks[0].ff_proj.register_forward_hook(
            lambda _m, args, _out: seen.append((int(args[0].reshape(-1, args[0].shape[-1]).shape[0]), ids.numel()))
        )
        try:
            return unpadded(ids, mask)
        finally:
            hook.remove()

    monkeypatch.setattr(model, "forward_unpadded", spy)
    calls = [CALLS[2], CALLS[3], CALLS[0]]  # an infill, a completion and a chat: three canvas lengths
    single = [_run(bundled, k, a) for k, a in calls]
    backend, batched = _batched(bundled, calls)
    assert batched == single
    backend.batcher.close()
    assert seen, "no ragged forward went through forward_unpadded"
    assert all(real < padded for real, padded in seen)
    stats = backend.batcher.stats
    assert stats.padding > 0 and stats.positions > stats.padding  # counted for /metrics
