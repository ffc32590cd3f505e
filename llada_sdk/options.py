"""``GenerationOptions``: the one place every generation default, range and description lives.

The Python API takes it (or keyword overrides validated into it), the CLI builds its flags and
``-o KEY VALUE`` from its schema, and other layers derive their fields from it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llada_sdk.decoding.rules import PARALLEL_RULES as _RULES

Remasking = Literal["low_confidence", "random"]
PARALLEL_RULES: tuple[str, ...] = tuple(_RULES)
"""The parallel-decoding rules (``GenerationOptions`` fields; at most one is set): ``rules.PARALLEL_RULES``."""


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
        allow_inf_nan=False,
        description="Gumbel-max sampling temperature (float64); 0 is greedy and ignores the seed.",
    )
    cfg_scale: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        allow_inf_nan=False,
        description="Classifier-free guidance scale (0 disables; doubles the forward batch).",
    )
    remasking: Remasking = Field(
        "low_confidence", description="Which masked positions to commit each step: most confident, or random."
    )
    threshold: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Parallel decoding: commit every position whose confidence reaches this value (at least one per step); `steps` is then ignored.",
    )
    factor: float | None = Field(
        None,
        gt=0.0,
        le=100.0,
        allow_inf_nan=False,
        description="Parallel decoding, Fast-dLLM's factor rule: commit the n most confident masked positions "
        "while (n + 1) * (1 - confidence of the n-th) < factor (at least one per step); `steps` is then ignored.",
    )
    entropy_bound: float | None = Field(
        None,
        gt=0.0,
        le=100.0,
        allow_inf_nan=False,
        description="Parallel decoding, the EB-sampler rule (Ben-Hamu et al. 2025): commit the most confident masked "
        "positions while the sum of their entropies minus the largest stays <= this bound, in nats (at least one per "
        "step); `steps` is then ignored.",
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
    seed: int | None = Field(
        None,
        ge=0,
        le=2**63 - 1,  # what torch's and numpy's generators take
        description="Seed of the sampling RNG (temperature > 0 or random remasking).",
    )
    reference_compat: bool = Field(
        False,
        description="Reproduce the reference sampler's quirks exactly (softmax in model dtype, its EOS/EOT rule, no step skipping, no early stop).",
    )
    max_auto_length: int = Field(
        16, ge=1, le=1024, description="Longest span `[MASK:auto]` and suffix-only completion consider."
    )
    exact_tool_calls: bool = Field(
        True,
        description="With tools offered, a call the model writes becomes exact: an offered tool (the likeliest one "
        "when it names none) with arguments valid for its schema (its values kept by name, then by position; else "
        "filled schema-exact). False: calls are parsed as written (a malformed one is an invalid tool call).",
    )

    @model_validator(mode="after")
    def _check_schedule(self) -> GenerationOptions:
        block = self.block_length or self.max_tokens
        if self.max_tokens % block:
            raise ValueError(
                f"`block_length` ({block}) must divide `max_tokens` ({self.max_tokens}); "
                f"divisors of {self.max_tokens}: {_divisors(self.max_tokens)}"
            )
        if self.cache != "none" and self.cfg_scale > 0:
            raise ValueError(
                f"`cache` does not support classifier-free guidance: set `cfg_scale` to 0 (got {self.cfg_scale}) "
                f"or `cache` to 'none' (got {self.cache!r})"
            )
        rules = {n: getattr(self, n) for n in PARALLEL_RULES if getattr(self, n) is not None}
        if len(rules) > 1:
            given = ", ".join(f"`{n}` ({v})" for n, v in rules.items())
            raise ValueError(
                f"{given} are parallel-decoding rules ({', '.join(PARALLEL_RULES)}): set at most one of them"
            )
        if self.steps is not None and self.steps > self.max_tokens:
            raise ValueError(
                f"`steps` ({self.steps}) must be at most `max_tokens` ({self.max_tokens}): every step commits a token"
            )
        empty = [i for i, s in enumerate(self.stop) if not s]
        if empty:
            raise ValueError(f"`stop` sequences must not be empty (item {empty[0]} is ''); use [] for no stop sequence")
        steps = self.steps or self.max_tokens
        blocks = self.max_tokens // block
        if self.parallel_rule is None and steps % blocks:
            raise ValueError(
                f"`steps` ({steps}) must be divisible by the number of blocks "
                f"(`max_tokens` / `block_length` = {blocks})"
            )
        return self

    @property
    def parallel_rule(self) -> str | None:
        """The name of the parallel-decoding rule in use (one of ``PARALLEL_RULES``), or None."""
        return next((n for n in PARALLEL_RULES if getattr(self, n) is not None), None)

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

    @classmethod
    def reference(cls, **overrides: Any) -> GenerationOptions:
        """The official ``generate.py::generate`` defaults (128 steps, 128 tokens, one block of 128,
        the reference's quirks); ``overrides`` may use its names (``gen_length`` = ``max_tokens``)."""
        values: dict[str, Any] = dict(REFERENCE_PRESET)
        for key, value in overrides.items():
            values[REFERENCE_ALIASES.get(key, key)] = "none" if key == "cache" and value is None else value
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            note = "".join(f" (`{a}` is `{f}`)" for a, f in REFERENCE_ALIASES.items() if a in overrides)
            raise ValueError(format_validation_error(exc) + note) from exc

    @classmethod
    def coerce(cls, options: Any, name: str = "options") -> GenerationOptions | None:
        """``options`` as given to a text call: None, a ``GenerationOptions`` or a dict of its fields."""
        if options is None or isinstance(options, GenerationOptions):
            return options
        if isinstance(options, dict):
            return cls.model_validate(options)
        raise TypeError(
            f"`{name}` must be a GenerationOptions or a dict of its fields, got {type(options).__name__}: {options!r}"
        )


REFERENCE_PRESET: dict[str, Any] = {"max_tokens": 128, "steps": None, "block_length": None, "reference_compat": True}
"""What ``GenerationOptions.reference()`` changes from the text calls' defaults: the reference's
``gen_length=128`` in one block with one step per token (its ``steps=128, block_length=128``)."""

REFERENCE_ALIASES = {"gen_length": "max_tokens"}
"""The reference ``generate()`` argument names that differ from the option names."""


class ScoreOptions(BaseModel):
    """How ``score`` and ``choose`` estimate a log-likelihood (the official Monte Carlo bound)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mc_num: int = Field(128, ge=1, le=65536, description="Monte Carlo samples (masked copies) per estimate.")
    batch_size: int = Field(16, ge=1, le=4096, description="Samples per forward pass; must divide `mc_num`.")
    cfg_scale: float = Field(
        0.0, ge=0.0, le=100.0, allow_inf_nan=False, description="Classifier-free guidance scale (0 disables)."
    )
    seed: int | None = Field(0, ge=0, description="Seed of the masks; None draws from the global RNG (the reference).")

    @model_validator(mode="after")
    def _check_batches(self) -> ScoreOptions:
        if self.mc_num % self.batch_size:
            raise ValueError(f"`batch_size` ({self.batch_size}) must divide `mc_num` ({self.mc_num})")
        return self

    @classmethod
    def coerce(cls, options: Any, name: str = "options") -> ScoreOptions:
        """``options`` as given to ``score``/``choose``: None (the defaults), a ``ScoreOptions`` or a dict."""
        if options is None:
            return cls()
        if isinstance(options, ScoreOptions):
            return options
        if isinstance(options, dict):
            return cls.model_validate(options)
        raise TypeError(
            f"`{name}` must be a ScoreOptions or a dict of its fields, got {type(options).__name__}: {options!r}"
        )

    def with_overrides(self, **overrides: Any) -> ScoreOptions:
        """A validated copy with ``overrides`` applied (unknown keys are rejected by name)."""
        if not overrides:
            return self
        return ScoreOptions.model_validate({**self.model_dump(), **overrides})


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0][:12]


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
