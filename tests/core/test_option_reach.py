"""Every option field, set on every command, reaches the decoding (or scoring) call unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from llada_cli.commands.generate import NOT_USED
from llada_cli.main import cli
from llada_sdk.decoding import engine
from llada_sdk.options import GenerationOptions, ScoreOptions
from llada_sdk.text import scoring

# a value different from the default for every field; combinations valid with the defaults of the others
NON_DEFAULT: dict[str, tuple[list[str], Any]] = {
    "max_tokens": (["--max-tokens", "16"], 16),
    "steps": (["--steps", "8"], 8),
    "block_length": (["--block-length", "4"], 4),
    "temperature": (["--temperature", "0.5"], 0.5),
    "cfg_scale": (["--cfg-scale", "0.5"], 0.5),
    "remasking": (["--remasking", "random"], "random"),
    "threshold": (["--threshold", "0.9"], 0.9),
    "factor": (["--factor", "1.5"], 1.5),
    "entropy_bound": (["--entropy-bound", "0.5"], 0.5),
    "cache": (["--cache", "prefix"], "prefix"),
    "logits_eos_inf": (["--logits-eos-inf"], True),
    "confidence_eos_eot_inf": (["--confidence-eos-eot-inf"], True),
    "early_stop": (["--no-early-stop"], False),
    "stop": (["--stop", "xyz"], ["xyz"]),
    "seed": (["--seed", "3"], 3),
    "reference_compat": (["--reference-compat"], True),
    "max_auto_length": (["--max-auto-length", "4"], 4),
    "exact_tool_calls": (["--no-exact-tool-calls"], False),
}
COMMANDS = {
    "infill": ["infill", "Zapur lives in [MASK:2]."],
    "complete": ["complete", "Zapur lives in"],
    "backward": ["complete", "--suffix", " is Zapur's parent."],
    "chat": ["chat", "Where does Zapur live?"],
    "generate": ["generate", "Zapur lives in", "--max-tokens", "8"],
}


class Reached(Exception):
    pass


def test_the_table_covers_every_field() -> None:
    assert set(NON_DEFAULT) == set(GenerationOptions.model_fields)
    for name, (_, value) in NON_DEFAULT.items():
        assert GenerationOptions.model_fields[name].get_default(call_default_factory=True) != value


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("field", list(NON_DEFAULT))
def test_option_reaches_the_decode_configuration(monkeypatch: pytest.MonkeyPatch, command: str, field: str) -> None:
    if command == "generate" and field in NOT_USED:
        pytest.skip("the reference call has no use for this option (and has no flag for it)")
    seen: list[GenerationOptions] = []

    def record(cls: Any, options: GenerationOptions, **ids: Any) -> Any:
        seen.append(options)
        raise Reached

    monkeypatch.setattr(engine.DecodeConfig, "from_options", classmethod(record))
    flags, value = NON_DEFAULT[field]
    args = [*COMMANDS[command], *flags]
    if command == "generate" and field in ("steps", "block_length"):
        args += ["--max-tokens", "16"]
    result = CliRunner().invoke(cli, args, catch_exceptions=True)
    assert seen, (args, result.output)
    assert getattr(seen[0], field) == value, (args, seen[0])


def test_generate_has_a_flag_for_every_used_field() -> None:
    params = {p.name for p in cli.commands["generate"].params}
    assert set(GenerationOptions.model_fields) - set(NOT_USED) <= params
    assert not set(NOT_USED) & params


@pytest.mark.parametrize(
    ("flags", "field", "value"),
    [
        (["--mc-num", "32"], "mc_num", 32),
        (["--batch-size", "8"], "batch_size", 8),
        (["--cfg-scale", "0.5"], "cfg_scale", 0.5),
        (["--seed", "5"], "seed", 5),
    ],
)
def test_score_options_reach_the_estimator(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], field: str, value: Any
) -> None:
    assert set(ScoreOptions.model_fields) == {"mc_num", "batch_size", "cfg_scale", "seed"}
    seen: list[ScoreOptions] = []

    def record(llm: Any, prompt: Any, continuation: Any, options: ScoreOptions) -> float:
        seen.append(options)
        return -1.0

    monkeypatch.setattr(scoring, "score", record)
    for args in (
        ["score", "Zapur lives in", " Duskmere.", *flags],
        ["score", "Zapur lives in", "-c", " A", "-c", " B", *flags],
    ):
        seen.clear()
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert seen and all(getattr(o, field) == value for o in seen)
