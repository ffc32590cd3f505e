"""The deterministic chain-rule likelihood that ranks `[MASK:auto]` candidates, and what it fixed."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llada_sdk.likelihood import chain_log_likelihoods


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
    from llada_sdk.structured import fill_schema

    schema = {"type": "object", "properties": {k: {"type": "string"} for k in ("name", "city", "job")}}
    assert fill_schema(bundled, sentence, schema)["name"] == name


def test_auto_scoring_calls_keep_the_logits_within_budget(bundled: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from llada_sdk import infill

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
