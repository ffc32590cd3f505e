"""ChatLLaDA / LLaDALLM carry every GenerationOptions field, with the same meaning and defaults."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")

from pydantic import ValidationError

from langchain_llada import ChatLLaDA, LLaDALLM
from langchain_llada._utils import GENERATION_FIELDS, LLaDAParams
from llada_sdk.options import GenerationOptions


@pytest.mark.parametrize("cls", [ChatLLaDA, LLaDALLM])
def test_every_generation_option_is_a_field_with_its_description(cls: type[LLaDAParams]) -> None:
    assert GENERATION_FIELDS == tuple(GenerationOptions.model_fields)
    for name, info in GenerationOptions.model_fields.items():
        field = cls.model_fields[name]
        assert field.default is None, name  # None = the options default, resolved per call
        assert info.description and field.description and field.description.startswith(info.description), name
    extra = {"model_name", "device", "dtype", "timeout", "max_retries", "stream_steps"}
    assert extra <= set(cls.model_fields)


@pytest.mark.parametrize("cls", [ChatLLaDA, LLaDALLM])
def test_unset_fields_resolve_to_the_options_defaults(cls: type[LLaDAParams]) -> None:
    assert cls().generation_options() == GenerationOptions()
    model = cls(temperature=0.5, seed=3, stop=["."], max_tokens=16)
    opts = model.generation_options(stop=["!"], steps=8)
    assert (opts.temperature, opts.seed, opts.stop, opts.max_tokens, opts.steps) == (0.5, 3, [".", "!"], 16, 8)


def test_max_tokens_that_the_default_block_does_not_divide_get_a_divisor_block() -> None:
    assert ChatLLaDA(max_tokens=100).generation_options().block_length == 5  # largest divisor of 100 <= 8
    assert ChatLLaDA(max_tokens=7).generation_options().block_length == 7
    assert ChatLLaDA(max_tokens=64).generation_options().block_length == 8
    with pytest.raises(ValidationError, match="block_length"):  # an explicit block must still divide
        ChatLLaDA(max_tokens=100, block_length=8).generation_options()


def test_bad_values_name_the_field() -> None:
    with pytest.raises(ValidationError, match="temperature"):
        ChatLLaDA(temperature=-1.0).generation_options()
    with pytest.raises(ValidationError, match="remasking"):
        ChatLLaDA(remasking="sideways")  # type: ignore[arg-type]


def test_construction_takes_the_standard_parameters() -> None:
    chat = ChatLLaDA(model="llada-tiny-kb", temperature=0, max_tokens=100, timeout=60, stop=[], max_retries=2)
    assert (chat.model_name, chat.timeout, chat.max_retries) == ("llada-tiny-kb", 60, 2)


BAD_VALUES = {  # a value GenerationOptions refuses, and the rule its error states
    "max_tokens": (-5, "greater than or equal to 1"),
    "steps": (0, "greater than or equal to 1"),
    "block_length": (7, "must divide `max_tokens` (32)"),
    "temperature": (-1.0, "greater than or equal to 0"),
    "cfg_scale": (float("nan"), "finite number"),
    "remasking": ("sideways", "'low_confidence' or 'random'"),
    "threshold": (1.5, "less than or equal to 1"),
    "factor": (0.0, "greater than 0"),
    "entropy_bound": (-1.0, "greater than 0"),
    "cache": ("all", "'none', 'prefix' or 'dual'"),
    "logits_eos_inf": ("maybe", "valid boolean"),
    "confidence_eos_eot_inf": ("maybe", "valid boolean"),
    "early_stop": ("maybe", "valid boolean"),
    "stop": ([""], "must not be empty"),
    "seed": (2**70, "less than or equal to 9223372036854775807"),
    "reference_compat": ("maybe", "valid boolean"),
    "max_auto_length": (0, "greater than or equal to 1"),
    "exact_tool_calls": ("maybe", "valid boolean"),
}


def test_the_bad_values_cover_every_generation_field() -> None:
    assert set(BAD_VALUES) == set(GENERATION_FIELDS)


@pytest.mark.parametrize("cls", [ChatLLaDA, LLaDALLM])
@pytest.mark.parametrize("name", list(BAD_VALUES))
def test_construction_refuses_a_bad_generation_field_naming_it(cls: type[LLaDAParams], name: str) -> None:
    value, rule = BAD_VALUES[name]
    with pytest.raises(ValidationError) as info:
        cls(**{name: value})
    text = str(info.value)
    assert name in text and rule in text, text
    shown = repr(value) if name != "block_length" else f"({value})"
    assert shown in text or f"input_value={value!r}" in text, text


@pytest.mark.parametrize("cls", [ChatLLaDA, LLaDALLM])
def test_construction_reports_every_bad_field_at_once(cls: type[LLaDAParams]) -> None:
    with pytest.raises(ValidationError, match=r"`max_tokens`: .*\(got -5\).*`temperature`: .*\(got -1\.0\)"):
        cls(temperature=-1, max_tokens=-5)


@pytest.mark.parametrize("cls", [ChatLLaDA, LLaDALLM])
@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf")])
def test_timeout_must_be_a_finite_positive_number(cls: type[LLaDAParams], timeout: float) -> None:
    with pytest.raises(ValidationError, match="timeout"):
        cls(timeout=timeout)
    assert cls(timeout=None).timeout is None and cls(timeout=0.5).timeout == 0.5


def test_max_retries_is_not_negative() -> None:
    with pytest.raises(ValidationError, match="max_retries"):
        ChatLLaDA(max_retries=-1)
