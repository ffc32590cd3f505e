"""Parallel-decoding rules: how many masked positions one step commits, decided from the model's
certainty instead of a fixed budget (Fast-dLLM's threshold and factor rules, the EB-sampler).

One ``ParallelRule`` record per rule, in ``PARALLEL_RULES``. The options (at most one rule set), the
engine (which rule selects) and the ONNX runtime (whether a fused graph can serve it) ask the records
and never name a rule. A new rule is a select function and a record here, plus its field, of the same
name, in ``GenerationOptions`` holding the rule's parameter (``None`` = off).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llada_sdk.decoding import policies
from llada_sdk.decoding.arrays import Array

Select = Callable[[Array, Array, float, "Array | None"], Array]
"""``(confidence [B, L], eligible bool [B, L], value, logits [B, L, V]) -> chosen bool [B, L]``;
``confidence`` is -inf where not eligible; ``logits`` (None from a fused graph) are given to rules with
``needs_logits``."""


@dataclass(frozen=True)
class ParallelRule:
    """One parallel-decoding rule.

    Attributes:
        name: the ``GenerationOptions`` field holding the rule's parameter.
        select: the positions one step commits (at least one per row with an eligible position).
        needs_logits: the rule reads the full distribution, not just each candidate's confidence, so
            a backend's fused greedy graph (candidates only) cannot serve it.
    """

    name: str
    select: Select
    needs_logits: bool = False


def _threshold(confidence: Array, eligible: Array, value: float, logits: Array | None) -> Array:
    return policies.select_threshold(confidence, eligible, value)


def _factor(confidence: Array, eligible: Array, value: float, logits: Array | None) -> Array:
    return policies.select_factor(confidence, eligible, value)


def _entropy_bound(confidence: Array, eligible: Array, value: float, logits: Array | None) -> Array:
    assert logits is not None  # needs_logits: the engine never calls it without
    return policies.select_entropy_bound(confidence, policies.entropy(logits), eligible, value)


PARALLEL_RULES: dict[str, ParallelRule] = {
    rule.name: rule
    for rule in (
        ParallelRule("threshold", _threshold),
        ParallelRule("factor", _factor),
        ParallelRule("entropy_bound", _entropy_bound, needs_logits=True),
    )
}


def active_rule(options: Any) -> tuple[ParallelRule, float] | None:
    """The rule ``options`` sets and its value, or None (a fixed step budget)."""
    for rule in PARALLEL_RULES.values():
        value = getattr(options, rule.name, None)
        if value is not None:
            return rule, float(value)
    return None
