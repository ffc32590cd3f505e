"""The deterministic chain-rule likelihood that ranks `[MASK:auto]` candidates and what it fixed, the
bounds of the `[MASK:auto]` search, and Monte Carlo scores that agree across backends."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from llada_sdk import LLaDA
from llada_sdk.decoding.likelihood import chain_log_likelihoods
from tests.core.test_backends import NumpyWrapped
from tests.export.test_onnx_bundle import kb, kb_bundle  # noqa: F401  (the bundled model exported to ONNX)


def _chain(llm: Any, seqs: list[list[int]], start: int, suffix: int = 1, stops: Any = None) -> list[float]:
    backend = llm.backend
    return chain_log_likelihoods(
        backend.predictor(None),
        seqs,
        start,
        mask_id=llm.config.mask_token_id,
        pad_id=llm.config.eos_token_id,
        ops=backend.ops,
        asarray=backend.asarray,
        stops=stops,
        rows_per_call=5,  # several calls, rows of different sequences mixed in one call
        suffix_length=suffix,
    )


def _by_hand(llm: Any, seq: list[int], start: int, suffix: int, stop: int | None = None) -> float:
    """One unpadded forward per scored token: mask positions j..end-1, read log p(x_j)."""
    end, mask, total = len(seq) - suffix, llm.config.mask_token_id, 0.0
    for j in range(start, end if stop is None else stop):
        row = seq[:j] + [mask] * (end - j) + seq[end:]
        with torch.no_grad():
            logits = llm.model(torch.tensor([row]))
        total += float(torch.log_softmax(logits[0, j].float(), -1)[seq[j]])
    return total


def test_chain_rule_matches_a_row_by_row_computation_with_padding(tiny: Any) -> None:
    gen = torch.Generator().manual_seed(0)
    V = tiny.config.vocab_size
    bos, eos = tiny.bos_ids, tiny.config.eos_token_id
    seqs = [bos + torch.randint(0, 300, (n,), generator=gen).tolist() + [eos] for n in (9, 5, 7)]
    assert all(t < V for s in seqs for t in s)
    got = _chain(tiny, seqs, start=3)
    want = [_by_hand(tiny, s, 3, 1) for s in seqs]
    assert got == pytest.approx(want, abs=1e-4)
    assert _chain(tiny, seqs, start=3) == got  # deterministic: nothing is drawn
    # the suffix is context: scoring it too changes the value by exactly its own term
    whole = _chain(tiny, seqs[:1], start=3, suffix=0)[0]
    assert whole == pytest.approx(_by_hand(tiny, seqs[0], 3, 0), abs=1e-4)
    # `stops` ends the scored tokens early; the rest stays masked in every row
    early = _chain(tiny, seqs, start=3, stops=[5, 4, 6])
    assert early == pytest.approx([_by_hand(tiny, s, 3, 1, stop) for s, stop in zip(seqs, [5, 4, 6])], abs=1e-4)
    assert early[0] != pytest.approx(got[0], abs=1e-3)


def test_chain_rule_needs_a_scored_token(tiny: Any) -> None:
    seq = [*tiny.bos_ids, 5, 6, tiny.config.eos_token_id]
    with pytest.raises(ValueError, match="at least one token between `start` and the suffix"):
        _chain(tiny, [seq], start=len(seq) - 1)
    with pytest.raises(ValueError, match=r"stop 9, end \d+ \(sequence 0\)"):
        _chain(tiny, [seq], start=2, stops=[9])
    with pytest.raises(ValueError, match="`stops` must have one entry per sequence"):
        _chain(tiny, [seq, seq], start=2, stops=[3])


@pytest.mark.parametrize(
    ("sentence", "name"),
    [
        # the Monte Carlo bound's picks (32 copies, seed 0) were 'Mubrarar' and 'N': its noise is larger
        # than the gap between two candidate lengths (README: "How [MASK:auto] works")
        ("Mubrar lives in Orlan and works as a farmer.", "Mubrar"),
        ("Nome is a weaver who lives in Marrowind.", "Nome"),
    ],
)
def test_schema_names_get_their_length_from_the_chain_rule(bundled: Any, sentence: str, name: str) -> None:
    from llada_sdk.text.structured import fill_schema

    schema = {"type": "object", "properties": {k: {"type": "string"} for k in ("name", "city", "job")}}
    assert fill_schema(bundled, sentence, schema)["name"] == name


def test_auto_scoring_calls_keep_the_logits_within_budget(bundled: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from llada_sdk.text import infill

    seen: list[tuple[int, int]] = []
    real = infill.chain_log_likelihoods

    def spy(predictor: Any, sequences: list[list[int]], start: int, **kw: Any) -> list[float]:
        seen.append((kw["rows_per_call"], max(map(len, sequences))))
        return real(predictor, sequences, start, **kw)

    monkeypatch.setattr(infill, "chain_log_likelihoods", spy)
    budget = 3 * 40 * bundled.config.vocab_size
    monkeypatch.setattr(infill, "AUTO_LOGITS_BUDGET", budget)
    bundled.infill("Zapur lives in [MASK:auto].", max_auto_length=4)
    assert seen
    for rows, length in seen:  # rows x length x vocab logits per call: within the budget, >= 1 row
        assert 1 <= rows < 128 and rows * length * bundled.config.vocab_size <= budget


class Counted:
    """The backend's predictor, counting model calls (every decode step and scoring call is one)."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.calls = 0

    def __call__(self, ids: Any, attention_mask: Any = None) -> Any:
        self.calls += 1
        return self.predictor(ids, attention_mask)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)


@pytest.fixture
def counted(bundled: Any, monkeypatch: pytest.MonkeyPatch) -> list[Counted]:
    made: list[Counted] = []
    real = bundled.backend.predictor

    def predictor(*args: Any, **kw: Any) -> Counted:
        made.append(Counted(real(*args, **kw)))
        return made[-1]

    monkeypatch.setattr(bundled.backend, "predictor", predictor)
    return made


def test_too_many_auto_spans_are_refused_before_any_model_call(bundled: Any, counted: list[Counted]) -> None:
    from llada_sdk.text.infill import MAX_AUTO_SPANS

    text = " ".join(["[MASK:auto]"] * 20)
    message = rf"`text` has 20 \[MASK:auto\] spans, over the limit of {MAX_AUTO_SPANS} .*explicit lengths, \[MASK:n\]"
    with pytest.raises(ValueError, match=message):
        bundled.infill(text)
    with pytest.raises(ValueError, match=message):
        bundled.stream_infill(text)  # refused when called, not when first iterated
    assert sum(c.calls for c in counted) == 0


def test_five_auto_spans_on_a_known_text_are_refused_and_explicit_lengths_fill_it(
    bundled: Any, counted: list[Counted]
) -> None:
    # on the bundled model the search over these five spans took 1134 model calls and wrote runaway
    # text ('weaver.The parent', 'Kelso.Zapur lives in Duskmere'); with explicit lengths it is right
    known = "Zapur lives in {} and works as a {}. Zapur's parent is {}. Rotu lives in {} and works as a {}."
    with pytest.raises(ValueError, match=r"`text` has 5 \[MASK:auto\] spans, over the limit of 4"):
        bundled.infill(known.format(*["[MASK:auto]"] * 5))
    assert sum(c.calls for c in counted) == 0
    res = bundled.infill(known.format("[MASK:2]", "[MASK:2]", "[MASK:5]", "[MASK:2]", "[MASK:2]"))
    assert res.fills == ["Duskmere", "weaver", "Lotrobar", "Kelso", "farmer"]


def test_the_length_search_stops_at_its_forward_pass_budget(
    bundled: Any, counted: list[Counted], monkeypatch: pytest.MonkeyPatch
) -> None:
    from llada_sdk.text import infill

    text = "Zapur lives in [MASK:auto] and works as a [MASK:auto]."
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within the budget: no warning
        assert bundled.infill(text).fills == ["Duskmere", "weaver"]
    full = sum(c.calls for c in counted)
    counted.clear()
    budget = 60  # the first decode (2 spans x 16 tokens = 32 passes) and one sweep fit, not two
    monkeypatch.setattr(infill, "AUTO_PASS_BUDGET", budget)
    with pytest.warns(RuntimeWarning, match=r"stopped at its budget of 60 forward passes \(2 auto spans"):
        res = bundled.infill(text)
    calls = sum(c.calls for c in counted)
    # past the budget: at most one sweep's scoring calls (16 candidates) and the final decode (4 tokens)
    assert calls < full and calls <= budget + 4 + 4
    assert len(res.lengths) == 2
    counted.clear()
    monkeypatch.setattr(infill, "AUTO_PASS_BUDGET", 10)  # not even the first decode: the spans keep AUTO_START
    with pytest.warns(RuntimeWarning, match=r"budget of 10 forward passes \(2 auto spans, 0 passes made\)"):
        res = bundled.infill(text)
    assert res.lengths == [infill.AUTO_START] * 2 and sum(c.calls for c in counted) == 2 * infill.AUTO_START


def test_a_seeded_score_is_the_same_on_torch_and_numpy_arrays(bundled: Any) -> None:
    # a seeded score draws its masks from numpy on every backend; torch and numpy RNGs drew different ones
    other = LLaDA(NumpyWrapped(bundled.backend), bundled.tokenizer)
    for seed in (0, 7):
        kw = {"mc_num": 32, "batch_size": 16, "seed": seed}
        a = bundled.score("Zapur lives in", " Duskmere.", **kw)
        b = other.score("Zapur lives in", " Duskmere.", **kw)
        assert b == pytest.approx(a, abs=1e-4)
        assert other.choose("Zapur lives in", [" Kelso.", " Duskmere."], **kw).scores == pytest.approx(
            bundled.choose("Zapur lives in", [" Kelso.", " Duskmere."], **kw).scores, abs=1e-4
        )
    assert bundled.score("Zapur lives in", " Duskmere.", mc_num=32, batch_size=16, seed=1) != pytest.approx(a, abs=1e-6)


def test_an_unseeded_score_keeps_the_reference_draws(bundled: Any) -> None:
    # seed=None: torch's global RNG, as the official get_log_likelihood.py
    values = []
    for _ in range(2):
        torch.manual_seed(3)
        values.append(bundled.score("Zapur lives in", " Duskmere.", mc_num=16, batch_size=16, seed=None))
    assert values[0] == values[1]


@pytest.mark.slow  # exports the bundled model to ONNX first (~20 s)
def test_a_seeded_score_is_the_same_on_the_onnx_backend(kb: Any, bundled: Any) -> None:  # noqa: F811
    for seed in (0, 7):
        kw = {"mc_num": 32, "batch_size": 16, "seed": seed}
        assert kb.score("Zapur lives in", " Duskmere.", **kw) == pytest.approx(
            bundled.score("Zapur lives in", " Duskmere.", **kw), abs=1e-4
        )
