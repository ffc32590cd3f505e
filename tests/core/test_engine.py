"""Policies on hand-computed examples and the engine's invariants."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from llada_sdk.decoding import policies
from llada_sdk.decoding.engine import BlockEvent, DecodeConfig, DoneEvent, StepEvent, denoise, reference_blocks
from llada_sdk.decoding.engine import generate as engine_generate
from llada_sdk.options import GenerationOptions

MASK = 336


def test_num_transfer_tokens_spreads_the_remainder_first() -> None:
    masked = torch.tensor([[True] * 12, [True] * 7 + [False] * 5])
    assert policies.num_transfer_tokens(masked, 5).tolist() == [[3, 3, 2, 2, 2], [2, 2, 1, 1, 1]]
    assert policies.num_transfer_tokens(torch.ones(1, 4, dtype=torch.bool), 8).tolist() == [[1, 1, 1, 1, 0, 0, 0, 0]]


def test_gumbel_noise_is_identity_at_zero_temperature_and_draws_nothing() -> None:
    logits = torch.randn(2, 3, 5)
    state = torch.get_rng_state()
    assert policies.add_gumbel_noise(logits, 0.0) is logits
    assert torch.equal(torch.get_rng_state(), state)
    noisy = policies.add_gumbel_noise(logits, 1.0, torch.Generator().manual_seed(0))
    assert noisy.dtype == torch.float64


def test_gumbel_max_samples_the_tempered_softmax() -> None:
    logits = torch.log(torch.tensor([[[0.7, 0.2, 0.1]]]))
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([policies.add_gumbel_noise(logits, 1.0, g).argmax(-1) for _ in range(4000)]).flatten()
    freq = torch.bincount(draws, minlength=3).float() / 4000
    assert torch.allclose(freq, torch.tensor([0.7, 0.2, 0.1]), atol=0.03)


def test_select_top_k_and_threshold_by_hand() -> None:
    conf = torch.tensor([[0.1, 0.9, 0.5, -torch.inf], [0.3, 0.2, 0.8, 0.7]])
    assert policies.select_top_k(conf, torch.tensor([2, 1])).tolist() == [
        [False, True, True, False],
        [False, False, True, False],
    ]
    masked = torch.tensor([[True, True, True, False], [True, True, False, False]])
    chosen = policies.select_threshold(torch.where(masked, conf, -torch.inf), masked, 0.85)
    assert chosen.tolist() == [[False, True, False, False], [True, False, False, False]]  # best one at least


def test_factor_rule_by_hand() -> None:
    # sorted masked confidences 0.99, 0.9, 0.8, 0.3: (i + 1) * (1 - c_i) = 0.02, 0.3, 0.8, 3.5
    conf = torch.tensor([[0.8, 0.99, 0.3, 0.9, -torch.inf], [0.1, 0.2, 0.3, 0.4, 0.5]])
    masked = torch.tensor([[True, True, True, True, False], [True] * 5])
    chosen = policies.select_factor(torch.where(masked, conf, -torch.inf), masked, 1.0)
    assert chosen.tolist() == [[True, True, False, True, False], [False, False, False, False, True]]
    assert policies.select_factor(conf[:1], masked[:1], 0.5).sum().item() == 2  # 0.02, 0.3 < 0.5 <= 0.8
    assert policies.select_factor(conf[:1], masked[:1], 5.0).sum().item() == 4
    # the numpy path picks the same positions
    np_chosen = policies.select_factor(conf.numpy(), masked.numpy(), 1.0)
    assert np_chosen.tolist() == chosen.tolist()


def test_entropy_bound_rule_by_hand() -> None:
    # masked positions by confidence: 1 (0.99, H 0.1), 3 (0.9, H 0.4), 0 (0.8, H 0.7), 2 (0.3, H 2.0)
    conf = torch.tensor([[0.8, 0.99, 0.3, 0.9, 0.95]])
    ent = torch.tensor([[0.7, 0.1, 2.0, 0.4, 0.0]])
    masked = torch.tensor([[True, True, True, True, False]])
    conf = torch.where(masked, conf, -torch.inf)
    # prefix sums minus max: {1}: 0; {1,3}: 0.1; {1,3,0}: 0.5; {1,3,0,2}: 1.2
    expect = {0.05: [1], 0.2: [1, 3], 0.45: [1, 3], 0.6: [0, 1, 3], 1.3: [0, 1, 2, 3]}
    for bound, picked in expect.items():
        chosen = policies.select_entropy_bound(conf, ent, masked, bound)
        assert torch.nonzero(chosen[0]).flatten().tolist() == picked, bound
        np_chosen = policies.select_entropy_bound(conf.numpy(), ent.numpy(), masked.numpy(), bound)
        assert np_chosen.tolist() == chosen.tolist()
    nothing = torch.zeros_like(masked)
    assert not policies.select_entropy_bound(conf, ent, nothing, 1.0).any()


def test_entropy_in_nats() -> None:
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, -torch.inf, -torch.inf, -torch.inf]]])
    for arr in (logits, logits.numpy()):
        h = policies.entropy(arr)
        assert abs(float(h[0, 0]) - math.log(4)) < 1e-6 and float(h[0, 1]) == 0.0


def test_parallel_rules_decode_the_bundled_answer_in_fewer_passes(bundled: Any) -> None:
    msgs = [{"role": "user", "content": "Where does Zapur live?"}]
    one = bundled.chat(msgs, max_tokens=32, block_length=32, early_stop=False)
    for rule in ({"threshold": 0.9}, {"factor": 1.0}, {"entropy_bound": 0.5}):
        fast = bundled.chat(msgs, max_tokens=32, block_length=32, **rule)
        assert fast.text == one.text == "Zapur lives in Duskmere."
        assert fast.forward_passes * 3 <= one.forward_passes, (rule, fast.forward_passes)
    with pytest.raises(ValueError, match=r"`threshold` \(0.9\), `factor` \(1.0\) are parallel-decoding rules"):
        bundled.chat(msgs, threshold=0.9, factor=1.0)
    with pytest.raises(ValueError, match="set at most one"):
        bundled.chat(msgs, factor=1.0, entropy_bound=0.5)


def test_every_parallel_rule_is_an_option_field_that_is_off_until_set() -> None:
    from llada_sdk.decoding import rules

    # the default options decode with the step budget; a rule's field, set alone, hands the count to it
    assert not DecodeConfig.from_options(GenerationOptions(), mask_id=MASK).parallel
    for name, rule in rules.PARALLEL_RULES.items():
        cfg = DecodeConfig.from_options(GenerationOptions(**{name: 0.5}), mask_id=MASK)
        assert cfg.parallel and cfg.rule is rule and cfg.rule_value == 0.5, name
        assert GenerationOptions(**{name: 0.5}).parallel_rule == name


def test_the_engine_asks_the_rule_record(monkeypatch: pytest.MonkeyPatch) -> None:
    from llada_sdk.decoding import rules

    seen: list[float] = []

    def everything(confidence: Any, eligible: Any, value: float, logits: Any) -> Any:
        seen.append(value)
        return eligible

    monkeypatch.setitem(rules.PARALLEL_RULES, "threshold", rules.ParallelRule("threshold", everything, True))
    cfg = DecodeConfig.from_options(GenerationOptions(max_tokens=8, threshold=0.5), mask_id=MASK)
    assert cfg.parallel and cfg.rule is not None and cfg.rule.needs_logits
    x = torch.tensor([[5] + [MASK] * 8])
    events = list(denoise(Scripted([0.1] * 9), x, [(1, 9)], [8], cfg))
    assert seen == [0.5] and sum(isinstance(e, StepEvent) for e in events) == 1  # the record chose all 8
    assert x[0, 1:].tolist() == [11 + i for i in range(8)]
    with pytest.raises(ValueError, match="`threshold` needs a backend that returns logits"):
        fused = (torch.zeros(1, 9, dtype=torch.long), torch.ones(1, 9))
        list(denoise(lambda ids, am=None: fused, torch.tensor([[5] + [MASK] * 8]), [(1, 9)], [8], cfg))


def test_classifier_free_guidance_formula() -> None:
    cond, un = torch.tensor([2.0]), torch.tensor([1.0])
    assert policies.classifier_free_guidance(cond, un, 1.5).item() == 1.0 + 2.5 * 1.0


class Scripted:
    """Each position prefers token ``10 + position`` with a fixed confidence from ``scores``."""

    def __init__(self, scores: list[float], vocab: int = 400) -> None:
        self.scores, self.vocab, self.calls = torch.tensor(scores), vocab, 0

    def __call__(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        B, L = ids.shape
        logits = torch.zeros(B, L, self.vocab)
        logits[:, torch.arange(L), 10 + torch.arange(L)] = self.scores[:L]
        return logits


def test_low_confidence_commits_most_confident_first_exactly_k_per_step() -> None:
    scores = [0.0, 0.0, 5.0, 1.0, 9.0, 3.0, 7.0, 2.0]  # positions 2..7 are masked
    x = torch.tensor([[1, 2] + [MASK] * 6])
    events = list(
        denoise(Scripted(scores), x, [(2, 8)], [3], DecodeConfig.from_options(GenerationOptions(), mask_id=MASK))
    )
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [[p for p, _ in e.filled[0]] for e in steps] == [[4, 6], [2, 5], [3, 7]]
    assert x.tolist() == [[1, 2, 12, 13, 14, 15, 16, 17]]


def test_semi_autoregressive_blocks_finish_in_order_and_never_write_ahead() -> None:
    scores = [0.0] * 2 + [1.0, 2.0, 3.0, 4.0, 9.0, 8.0, 7.0, 6.0]  # the second block is more confident
    x = torch.tensor([[1, 2] + [MASK] * 8])
    seen = []
    for ev in denoise(
        Scripted(scores), x, [(2, 6), (6, 10)], [2, 2], DecodeConfig.from_options(GenerationOptions(), mask_id=MASK)
    ):
        if isinstance(ev, StepEvent):
            seen.append((ev.block, [p for p, _ in ev.filled[0]]))
        if isinstance(ev, BlockEvent):
            assert not (x[:, ev.start : ev.end] == MASK).any()
            assert (x[:, ev.end :] == MASK).all()
    assert seen == [(0, [4, 5]), (0, [2, 3]), (1, [6, 7]), (1, [8, 9])]


@pytest.mark.parametrize(("gen_length", "block_length", "steps"), [(16, 4, 16), (16, 16, 5), (12, 4, 6), (8, 8, 3)])
def test_engine_invariants_on_the_fixture_model(tiny: Any, gen_length: int, block_length: int, steps: int) -> None:
    prompt = torch.tensor([[300, 346, 10, 347, 12, 192, 9, 85, 231, 348, 346, 11, 347, 12]])
    P = prompt.shape[1]
    x = torch.cat([prompt, torch.full((1, gen_length), MASK)], dim=1)
    blocks, budget = reference_blocks(P, gen_length, block_length, steps)
    expected = torch.cat(
        [policies.num_transfer_tokens(torch.ones(1, block_length, dtype=torch.bool), s) for s in budget], dim=1
    )[0].tolist()
    counts = []
    with torch.inference_mode():
        for ev in denoise(
            tiny.model,
            x,
            blocks,
            budget,
            DecodeConfig.from_options(GenerationOptions(reference_compat=True), mask_id=MASK),
        ):
            if isinstance(ev, StepEvent):
                counts.append(len(ev.filled[0]))
                assert all(p >= P for p, _ in ev.filled[0])
                assert torch.equal(x[:, :P], prompt)  # the prompt never changes
    assert counts == expected  # exactly the scheduled number per step
    assert not (x == MASK).any()


def test_zero_budget_steps_are_skipped_outside_reference_mode(tiny: Any) -> None:
    prompt = torch.tensor([[300, 5, 6, 7]])
    x1 = torch.cat([prompt, torch.full((1, 4), MASK)], dim=1)
    x2 = x1.clone()
    blocks, steps = [(4, 8)], [8]
    with torch.inference_mode():
        ref = list(
            denoise(
                tiny.model,
                x1,
                blocks,
                steps,
                DecodeConfig.from_options(GenerationOptions(reference_compat=True), mask_id=MASK),
            )
        )
        fixed = list(
            denoise(tiny.model, x2, blocks, steps, DecodeConfig.from_options(GenerationOptions(), mask_id=MASK))
        )
    assert torch.equal(x1, x2)
    assert ref[-1].forward_passes == 8 and fixed[-1].forward_passes == 4


def generate(predictor: Any, prompt: torch.Tensor, generator: Any = None, mask_id: int = MASK, **kw: Any) -> Any:
    """The reference call through the engine: its arguments become ``GenerationOptions.reference``."""
    return engine_generate(
        predictor, prompt, None, GenerationOptions.reference(**kw), mask_id=mask_id, generator=generator
    )


def test_temperature_zero_ignores_the_seed_and_seeds_reproduce(tiny: Any) -> None:
    prompt = torch.tensor([[300, 5, 6, 7, 8]])
    kw: dict[str, Any] = {"steps": 8, "gen_length": 8, "block_length": 4, "mask_id": MASK}
    a = generate(tiny.model, prompt, generator=torch.Generator().manual_seed(1), **kw)
    b = generate(tiny.model, prompt, generator=torch.Generator().manual_seed(2), **kw)
    assert torch.equal(a, b)
    s1 = generate(tiny.model, prompt, temperature=1.0, generator=torch.Generator().manual_seed(3), **kw)
    s2 = generate(tiny.model, prompt, temperature=1.0, generator=torch.Generator().manual_seed(3), **kw)
    s3 = [
        generate(tiny.model, prompt, temperature=1.0, generator=torch.Generator().manual_seed(s), **kw)
        for s in range(4, 8)
    ]
    assert torch.equal(s1, s2)
    assert any(not torch.equal(s1, s) for s in s3)


def test_batch_rows_equal_single_runs(tiny: Any) -> None:
    prompts = torch.tensor([[300, 5, 6, 7, 8], [300, 9, 10, 11, 12], [300, 40, 41, 42, 43]])
    kw: dict[str, Any] = {"steps": 8, "gen_length": 8, "block_length": 4, "mask_id": MASK}
    batch = generate(tiny.model, prompts, **kw)
    for i in range(3):
        assert torch.equal(batch[i : i + 1], generate(tiny.model, prompts[i : i + 1], **kw))


def test_fused_backend_gives_the_same_tokens(tiny: Any) -> None:
    def fused(ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        logits = tiny.model(ids, attention_mask)
        x0 = logits.argmax(-1)
        return x0, torch.softmax(logits, -1).gather(-1, x0[..., None])[..., 0]

    prompt = torch.tensor([[300, 5, 6, 7, 8]])
    kw: dict[str, Any] = {"steps": 8, "gen_length": 8, "block_length": 4, "mask_id": MASK}
    assert torch.equal(generate(fused, prompt, **kw), generate(tiny.model, prompt, **kw))
    with pytest.raises(ValueError, match="cfg_scale"):
        generate(fused, prompt, cfg_scale=1.0, **kw)


class Stepping:
    """A fused predictor that commits a budgeted step itself (a ``StepMaskPredictor``), recording which
    path the engine took; its commit is deliberately written apart from the engine's (``topk`` per row)."""

    def __init__(self, model: Any) -> None:
        self.model, self.steps, self.calls = model, 0, 0

    def __call__(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any:
        self.calls += 1
        logits = self.model(ids, attention_mask)
        x0 = logits.argmax(-1)
        return x0, torch.softmax(logits.float(), -1).gather(-1, x0[..., None])[..., 0]

    def commit_step(self, x: torch.Tensor, attention_mask: Any, k: torch.Tensor, end: int) -> torch.Tensor:
        self.steps += 1
        logits = self.model(x, attention_mask)
        x0 = logits.argmax(-1)
        conf = torch.softmax(logits.float(), -1).gather(-1, x0[..., None])[..., 0]
        masked = x == MASK
        eligible = masked & (torch.arange(x.shape[1]) < end)[None, :]
        conf = torch.where(eligible, conf, torch.tensor(-math.inf))
        chosen = torch.zeros_like(masked)
        for row in range(x.shape[0]):
            chosen[row, conf[row].topk(int(k[row])).indices] = True
        x[chosen & masked] = x0[chosen & masked]
        return chosen


def test_a_step_predictor_runs_the_budgeted_steps_and_nothing_else(tiny: Any) -> None:
    from llada_sdk.backends.base import StepMaskPredictor

    prompt = torch.tensor([[300, 5, 6, 7, 8], [300, 9, 10, 11, 12]])
    kw: dict[str, Any] = {"steps": 8, "gen_length": 8, "block_length": 4, "mask_id": MASK}
    stepping = Stepping(tiny.model)
    assert isinstance(stepping, StepMaskPredictor)
    assert torch.equal(generate(stepping, prompt, **kw), generate(tiny.model, prompt, **kw))
    assert (stepping.steps, stepping.calls) == (8, 0)
    # a threshold rule has no budget: the engine predicts and selects itself
    x = torch.cat([prompt, torch.full((2, 8), MASK)], 1)
    cfg = DecodeConfig.from_options(GenerationOptions(threshold=0.9), mask_id=MASK)
    list(denoise(stepping, x, [(5, 9), (9, 13)], [4, 4], cfg))
    assert stepping.steps == 8 and stepping.calls > 0 and not bool((x == MASK).any())
    # a logits processor needs logits: the step predictor is not asked to commit
    calls = stepping.calls
    x = torch.cat([prompt, torch.full((2, 8), MASK)], 1)
    with pytest.raises(ValueError, match="logits processor needs a backend that returns logits"):
        list(
            denoise(
                stepping,
                x,
                [(5, 13)],
                [8],
                DecodeConfig.from_options(GenerationOptions(), mask_id=MASK),
                logits_processor=lambda logits, start: logits,
            )
        )
    assert stepping.steps == 8 and stepping.calls == calls + 1


def test_stop_check_fills_the_rest_with_eos_and_counts_saved_passes(tiny: Any) -> None:
    x = torch.cat([torch.tensor([[300, 5, 6]]), torch.full((1, 8), MASK)], dim=1)
    cfg = DecodeConfig.from_options(GenerationOptions(), mask_id=MASK, eos_id=301)
    with torch.inference_mode():
        events = list(denoise(tiny.model, x, [(3, 7), (7, 11)], [4, 4], cfg, stop_check=lambda canvas, b: True))
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.stopped_early and done.forward_passes_saved == 4
    assert done.forward_passes == 4 and x[0, 7:].tolist() == [301] * 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"gen_length": 16, "block_length": 7, "steps": 16},
            r"`block_length` \(7\) must divide `max_tokens` \(16\).*\(`gen_length` is `max_tokens`\)",
        ),
        ({"gen_length": 16, "block_length": 4, "steps": 6}, r"`steps` \(6\) must be divisible by the number of blocks"),
        (
            {"gen_length": 16, "block_length": 4, "steps": 0},
            r"`steps`: Input should be greater than or equal to 1 \(got 0\)",
        ),
        (
            {"gen_length": 8, "block_length": 8, "steps": 8, "temperature": -1.0},
            r"`temperature`: Input should be greater than or equal to 0 \(got -1.0\)",
        ),
        (
            {"gen_length": 8, "block_length": 8, "steps": 8, "remasking": "best"},
            r"`remasking`: Input should be 'low_confidence' or 'random' \(got 'best'\)",
        ),
    ],
)
def test_generate_errors_name_the_parameter(tiny: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny.generate([[300, 5]], **kwargs)
