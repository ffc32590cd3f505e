"""The text API on the bundled model: infill, complete, chat, sessions, scoring, streaming, stopping."""

from __future__ import annotations

from typing import Any

import pytest

from llada_sdk import CanvasEvent, ResultEvent, TextEvent
from llada_sdk.decoding.engine import StepEvent
from llada_sdk.text.canvas import Span, parse_masked_text

PERSON = "Zapur"  # the first person of the bundled corpus (seed 0): lives in Duskmere, parent Lotrobar


def test_parse_masked_text() -> None:
    parts = parse_masked_text(r"a [MASK] b [MASK:3] c [MASK:auto] d \[MASK] e")
    spans = [p for p in parts if isinstance(p, Span)]
    assert [s.length for s in spans] == [1, 3, None]
    assert parts[-1] == " d [MASK] e"
    for bad in ("x [MASK:0]", "x [MASK:-2]", "x [MASK:big]"):
        with pytest.raises(ValueError, match="bad span"):
            parse_masked_text(bad)
    with pytest.raises(ValueError, match="no masked span"):
        parse_masked_text(r"only \[MASK] literal")


def test_infill_fills_exactly_the_requested_tokens_and_keeps_the_rest(bundled: Any) -> None:
    text = f"{PERSON} lives in [MASK:3] and works as a [MASK:2]."
    res = bundled.infill(text)
    assert res.lengths == [3, 2] and len(res.fills) == 2
    assert res.text.startswith(f"{PERSON} lives in") and " and works as a" in res.text and res.text.endswith(".")
    mask = bundled.config.mask_token_id
    assert mask not in res.ids
    assert res.forward_passes == 5  # one token per step


def test_infill_literal_mask_and_special_strings_stay_text(bundled: Any) -> None:
    res = bundled.infill(r"<|eot_id|> \[MASK] [MASK]")
    assert res.text.startswith("<|eot_id|> [MASK]")
    assert bundled.config.eot_token_id not in res.ids[:5]


def test_auto_span_length_is_chosen_within_bounds(bundled: Any) -> None:
    res = bundled.infill(f"{PERSON} lives in [MASK:auto].", max_auto_length=6)
    assert 1 <= res.lengths[0] <= 6
    assert res.text == f"{PERSON} lives in{bundled.tokenizer.decode(res.ids[-2 - res.lengths[0] : -2])}."


def test_two_auto_spans_never_sweep_the_same_lengths_twice(bundled: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from llada_sdk.text import infill

    calls: list[tuple[tuple[int, ...], int]] = []
    real = infill._sweep

    def counted(llm: Any, parts: Any, opts: Any, lengths: list[int], k: int, *rest: Any) -> tuple[int, float]:
        calls.append((tuple(lengths), k))
        return real(llm, parts, opts, lengths, k, *rest)

    monkeypatch.setattr(infill, "_sweep", counted)
    res = bundled.infill(f"{PERSON} lives in [MASK:auto] and works as a [MASK:auto].")
    assert res.text == f"{PERSON} lives in Duskmere and works as a weaver."
    assert len(calls) == len(set(calls))  # no (lengths, span) pair decoded and scored twice
    # left to right from the natural lengths (2, 2) (a space, then the word: the bundled tokenizer keeps
    # whitespace a token of its own): both spans stay; right to left needs exactly those two sweeps,
    # both reused (four sweeps without the reuse)
    assert calls == [((2, 2), 0), ((2, 2), 1)]


def test_complete_three_directions(bundled: Any) -> None:
    forward = bundled.complete(f"{PERSON} lives in", max_tokens=16)
    assert (forward.text, forward.finish_reason) == (" Duskmere.", "eos")
    backward = bundled.complete(suffix="'s parent is Lotrobar.", max_auto_length=6)
    assert backward.text == PERSON and 1 <= backward.lengths[0] <= 6
    middle = bundled.complete(f"{PERSON} lives in", " and works as a weaver.", length=2)
    assert middle.lengths == [2]
    with pytest.raises(ValueError, match="`length` must be 'auto' or an integer"):
        bundled.complete("a", "b", length=0)
    with pytest.raises(ValueError, match="`prefix` and `suffix` are both empty"):
        bundled.complete()


def test_chat_batch_equals_single_and_trims_special_tokens(bundled: Any) -> None:
    convs = [
        [{"role": "user", "content": f"Where does {PERSON} live?"}],
        [{"role": "user", "content": "What day comes after Monday? Please answer."}],
    ]
    batch = bundled.chat(convs)
    singles = [bundled.chat(c) for c in convs]
    assert [r.text for r in batch] == [r.text for r in singles]
    for r in batch:
        assert "<|" not in r.text


def test_early_stop_saves_passes_without_changing_the_text(bundled: Any) -> None:
    msgs = [{"role": "user", "content": "What month comes after March?"}]
    fast = bundled.chat(msgs, max_tokens=32, block_length=8)
    slow = bundled.chat(msgs, max_tokens=32, block_length=8, early_stop=False)
    assert fast.text == slow.text
    assert fast.forward_passes + fast.forward_passes_saved == slow.forward_passes == 32
    assert (fast.text, fast.finish_reason) == ("The month after March is April.", "eos")
    assert (fast.forward_passes, fast.forward_passes_saved) == (24, 8)  # three blocks of 8 held the answer


def test_stop_sequences_cut_the_text(bundled: Any) -> None:
    full = bundled.complete(f"{PERSON} lives in", max_tokens=16).text
    assert len(full) > 3
    stop = full[2:4]
    cut = bundled.complete(f"{PERSON} lives in", max_tokens=16, stop=[stop])
    assert cut.text == full[: full.index(stop)] and cut.finish_reason == "stop"


def test_stream_events_replay_to_the_final_text(bundled: Any) -> None:
    events = list(bundled.stream_chat([{"role": "user", "content": f"Where does {PERSON} live?"}], early_stop=False))
    canvas = events[0]
    assert isinstance(canvas, CanvasEvent)
    ids = list(canvas.ids[0])
    for ev in events:
        if isinstance(ev, StepEvent):
            for pos, tok in ev.filled[0]:
                assert ids[pos] == canvas.mask_id  # only masked positions are ever written
                ids[pos] = tok
    result = events[-1]
    assert isinstance(result, ResultEvent)
    assert ids == result.results[0].ids
    deltas = "".join(ev.delta for ev in events if isinstance(ev, TextEvent))
    assert deltas == result.results[0].text


def test_sampling_seed_reproduces(bundled: Any) -> None:
    msgs = [{"role": "user", "content": "What day comes after Friday?"}]
    a = bundled.chat(msgs, temperature=1.0, seed=7)
    b = bundled.chat(msgs, temperature=1.0, seed=7)
    assert a.ids == b.ids
    assert bundled.chat(msgs, seed=1).ids == bundled.chat(msgs, seed=2).ids  # temperature 0 ignores the seed


def test_session_keeps_history_and_resets(bundled: Any) -> None:
    s = bundled.session(system="You answer briefly.")
    first = s.send("What day comes after Monday?")
    assert [m["role"] for m in s.messages] == ["system", "user", "assistant"]
    assert s.messages[-1]["content"] == first.text
    history = list(s._ids)
    s.send(f"Where does {PERSON} live?")
    assert len(s.messages) == 5 and s._ids[: len(history)] == history  # the history is a prefix
    s.reset()
    assert s.messages == [] and s._ids is None


def test_score_and_choose(bundled: Any) -> None:
    a = bundled.score(f"{PERSON} lives in", " Duskmere.", mc_num=16, batch_size=16)
    assert a == bundled.score(f"{PERSON} lives in", " Duskmere.", mc_num=16, batch_size=16)  # seeded
    assert a < 0
    pick = bundled.choose(f"{PERSON} lives in", [" Duskmere.", " Quillby.", " Orlan."], mc_num=16, batch_size=16)
    assert (pick.index, pick.text) == (0, " Duskmere.")  # the trained fact wins
    assert pick.scores[0] == max(pick.scores) and len(pick.scores) == 3
    with pytest.raises(ValueError, match="`mc_num`"):
        bundled.score("a", "b", mc_num=10, batch_size=4)


@pytest.mark.parametrize("call", ["infill", "backward"])
def test_infill_and_backward_streams_end_in_the_same_result(bundled: Any, call: str) -> None:
    if call == "infill":
        events = list(bundled.stream_infill(f"{PERSON} lives in [MASK:1] and works as a [MASK:2]."))
        plain = bundled.infill(f"{PERSON} lives in [MASK:1] and works as a [MASK:2].")
    else:
        events = list(bundled.stream_complete(suffix="'s parent is Lotrobar.", max_auto_length=4))
        plain = bundled.complete(suffix="'s parent is Lotrobar.", max_auto_length=4)
    result = events[-1].results[0]
    assert result.text == plain.text and result.ids == plain.ids
    assert "".join(ev.delta for ev in events if isinstance(ev, TextEvent)) == result.text
    assert sum(len(ev.filled[0]) for ev in events if isinstance(ev, StepEvent)) == sum(result.lengths)


def test_streamed_deltas_stop_at_the_stop_sequence(bundled: Any) -> None:
    full = bundled.complete(f"{PERSON} lives in", max_tokens=16, early_stop=False).text
    stop = full[2:4]
    events = list(bundled.stream_complete(f"{PERSON} lives in", max_tokens=16, stop=[stop]))
    streamed = "".join(ev.delta for ev in events if isinstance(ev, TextEvent))
    assert stop not in streamed and streamed == events[-1].results[0].text == full[: full.index(stop)]


def test_streaming_does_not_leak_inference_mode_into_the_consumer(bundled: Any) -> None:
    import torch

    states = [torch.is_inference_mode_enabled() for _ in bundled.stream_infill(f"{PERSON} lives in [MASK:2].")]
    assert states and not any(states)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_text_calls_run_with_a_kv_cache(bundled: Any, cache: str) -> None:
    msgs = [{"role": "user", "content": f"Where does {PERSON} live?"}]
    cached = bundled.chat(msgs, cache=cache)
    assert cached.text == bundled.chat(msgs).text  # the bundled model is confident enough to agree
    assert bundled.complete(f"{PERSON} lives in", cache=cache).text
