"""The one options model: ranges, combinations, and error messages that name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llada_sdk import GenerationOptions
from llada_sdk.options import format_validation_error


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"steps": 0}, "`steps`: Input should be greater than or equal to 1 (got 0)"),
        ({"temperature": -1}, "`temperature`: Input should be greater than or equal to 0 (got -1)"),
        (
            {"max_tokens": 16, "block_length": 7},
            "`block_length` (7) must divide `max_tokens` (16); divisors of 16: [1, 2, 4, 8, 16]",
        ),
        ({"max_tokens": 16, "block_length": 4, "steps": 6}, "`steps` (6) must be divisible by the number of blocks"),
        ({"remasking": "best"}, "`remasking`: Input should be 'low_confidence' or 'random' (got 'best')"),
        ({"threshold": 1.5}, "`threshold`: Input should be less than or equal to 1 (got 1.5)"),
        ({"bogus": 1}, "`bogus`: Extra inputs are not permitted"),
    ],
)
def test_invalid_options_name_field_rule_and_value(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        GenerationOptions(**kwargs)  # type: ignore[arg-type]
    assert needle in format_validation_error(info.value)


def test_defaults_resolve_and_threshold_relaxes_the_step_rule() -> None:
    opts = GenerationOptions()
    assert opts.resolved_steps == opts.max_tokens
    assert opts.max_tokens % opts.resolved_block_length == 0
    assert GenerationOptions(max_tokens=16, block_length=4, steps=6, threshold=0.9).threshold == 0.9
    assert GenerationOptions(block_length=None, max_tokens=12).resolved_block_length == 12


def test_with_overrides_validates_and_keeps_the_original() -> None:
    base = GenerationOptions(max_tokens=16)
    new = base.with_overrides(temperature=0.5)
    assert (base.temperature, new.temperature, new.max_tokens) == (0.0, 0.5, 16)
    with pytest.raises(ValidationError, match="block_length"):
        base.with_overrides(block_length=5)


def test_every_field_has_a_description() -> None:
    assert all(f.description for f in GenerationOptions.model_fields.values())
