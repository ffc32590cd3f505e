"""``GenerationOptions``: the one place every generation default, range and description lives.

The Python API takes it (or keyword overrides validated into it), the CLI builds its flags and
``-o KEY VALUE`` from its schema, and other layers derive their fields from it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Remasking = Literal["low_confidence", "random"]


class GenerationOptions(BaseModel):
    """How a text call decodes. Invalid values and combinations raise an error naming the field."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_tokens: int = Field(
        32, ge=1, le=8192, description="Tokens to generate (the canvas length; `gen_length` of the reference)."
    )
    steps: int | None = Field(
        None,
        ge=1,
        le=8192,
        description="Denoising steps; default: one per token (`max_tokens`). Fewer steps commit several tokens per step.",
    )
    block_length: int | None = Field(
        8,
        ge=1,
        le=8192,
        description="Semi-autoregressive block size; must divide `max_tokens`. None: one block (pure diffusion).",
    )
    temperature: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="Gumbel-max sampling temperature (float64); 0 is greedy and ignores the seed.",
    )
    cfg_scale: float = Field(
        0.0, ge=0.0, le=100.0, description="Classifier-free guidance scale (0 disables; doubles the forward batch)."
    )
    remasking: Remasking = Field(
        "low_confidence", description="Which masked positions to commit each step: most confident, or random."
    )
    threshold: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Parallel decoding: commit every position whose confidence reaches this value (at least one per step); `steps` is then ignored.",
    )
    cache: Literal["none", "prefix", "dual"] = Field(
        "none",
        description="Fast-dLLM approximate KV cache: 'prefix' reuses the keys/values left of the block, 'dual' also "
        "those right of it, refreshed once per block (faster on long canvases; no CFG or padded batches).",
    )
    logits_eos_inf: bool = Field(False, description="Never generate <|endoftext|> (its logit is set to -inf).")
    confidence_eos_eot_inf: bool = Field(
        False, description="Commit <|endoftext|>/<|eot_id|> last (their confidence is zeroed) at any temperature."
    )
    early_stop: bool = Field(
        True, description="Skip the remaining blocks once every answer has ended in EOS/EOT (text calls only)."
    )
    stop: list[str] = Field(
        default_factory=list,
        description="Stop sequences: the text is cut before the first one, and decoding ends at the block that produced it.",
    )
    seed: int | None = Field(None, ge=0, description="Seed of the sampling RNG (temperature > 0 or random remasking).")
    reference_compat: bool = Field(
        False,
        description="Reproduce the reference sampler's quirks exactly (softmax in model dtype, its EOS/EOT rule, no step skipping, no early stop).",
    )
    max_auto_length: int = Field(
        16, ge=1, le=1024, description="Longest span `[MASK:auto]` and suffix-only completion consider."
    )

    @model_validator(mode="after")
    def _check_schedule(self) -> GenerationOptions:
        block = self.block_length or self.max_tokens
        if self.max_tokens % block:
            raise ValueError(
                f"`block_length` ({block}) must divide `max_tokens` ({self.max_tokens}); "
                f"divisors of {self.max_tokens}: {_divisors(self.max_tokens)}"
            )
        steps = self.steps or self.max_tokens
        blocks = self.max_tokens // block
        if self.threshold is None and steps % blocks:
            raise ValueError(
                f"`steps` ({steps}) must be divisible by the number of blocks "
                f"(`max_tokens` / `block_length` = {blocks})"
            )
        return self

    @property
    def resolved_steps(self) -> int:
        return self.steps or self.max_tokens

    @property
    def resolved_block_length(self) -> int:
        return self.block_length or self.max_tokens

    def with_overrides(self, **overrides: Any) -> GenerationOptions:
        """A validated copy with ``overrides`` applied (unknown keys are rejected by name)."""
        if not overrides:
            return self
        return GenerationOptions.model_validate({**self.model_dump(), **overrides})


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0][:12]


def field_help() -> dict[str, str]:
    """``{field: description with its default}`` for help texts."""
    out = {}
    for name, f in GenerationOptions.model_fields.items():
        out[name] = f"{f.description} [default: {f.default if f.default_factory is None else []}]"
    return out


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field: message (got value)``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "options"
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        shown = "" if err["type"] == "value_error" or isinstance(got, dict) else f" (got {got!r})"
        parts.append(f"`{loc}`: {msg}{shown}" if loc != "options" else f"{msg}{shown}")
    return "; ".join(parts)
