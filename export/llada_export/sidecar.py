"""The edge bundle's JSON sidecar (``llada_onnx.json``): what the runtime reads instead of guessing.

A bundle is a directory holding the ONNX graph files, the tokenizer files (when the model has them)
and this sidecar. The sidecar names every graph with its file, role, inputs and outputs (names,
element types, dimensions: a string is a symbolic dimension, an int a fixed one), the greedy policy
baked into the fused graphs, the opset, the precision, the model config and special ids, the context
window, the default generation options and providers, and the parity figures measured at export.

This module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from llada_sdk.config import LLaDAConfig
from llada_sdk.errors import CheckpointError, ConfigError

SIDECAR = "llada_onnx.json"
FORMAT = "llada-onnx"
FORMAT_VERSION = 2  # 2: the `commit` graph role; version-1 bundles (without it) are still read
READABLE_VERSIONS = (1, 2)
OPSETS = (7, 23)  # the opsets `export` accepts (inclusive)
MAX_SIDECAR_BYTES = 16 * 2**20  # far above any real sidecar; read before parsing, so a huge file is refused cheaply

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
GraphRole = Literal["logits", "greedy", "commit", "cache_open", "cache_step", "cache_open_greedy", "cache_step_greedy"]
# what `--graphs` selects -> the graph files it produces
GRAPH_GROUPS: dict[str, tuple[str, ...]] = {
    "logits": ("logits",),
    "greedy": ("greedy", "commit"),
    "cache": ("cache_open", "cache_step"),
    "cache_greedy": ("cache_open_greedy", "cache_step_greedy"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One graph input or output."""

    name: str
    dtype: str = Field(description="ONNX element type: int64, float32, float16, bool")
    dims: list[str | Annotated[StrictInt, Field(ge=0)]] = Field(
        description="a string is a symbolic dimension, an int a fixed size"
    )


class GreedyPolicy(_Strict):
    """The decode settings a fused graph was traced with; the runtime uses the graph only when a run's
    settings match (temperature 0, no CFG, low-confidence remasking and these flags and ids)."""

    eos_id: StrictInt | None
    eot_id: StrictInt | None
    logits_eos_inf: bool = False
    confidence_eos_eot_inf: bool = False
    reference_compat: bool = False


class GraphSpec(_Strict):
    """One ONNX file of the bundle."""

    file: str
    role: GraphRole
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    bytes: StrictInt = Field(ge=0, description="size of the .onnx file plus its external data, checked at load")
    external_data: str | None = None
    policy: GreedyPolicy | None = None


class SpecialIds(_Strict):
    """The special token ids; ``Sidecar`` checks them against the config's vocabulary."""

    mask: StrictInt
    eos: StrictInt
    eot: StrictInt | None = None
    bos: StrictInt | None = None
    pad: StrictInt | None = None


def _field_error(loc: tuple[str, ...], message: str, value: Any) -> ValidationError:
    """A validation error located at ``loc`` (``Sidecar.read`` names the field from it)."""
    error = PydanticCustomError("sidecar_field", message.replace("{", "{{").replace("}", "}}"))
    return ValidationError.from_exception_data("Sidecar", [{"type": error, "loc": loc, "input": value}])


def _generation_options(value: dict[str, Any]) -> dict[str, Any]:
    """The defaults must be valid ``GenerationOptions``: a bad value or an unknown key fails at load,
    with the key in the error's location, not at the first call."""
    from llada_sdk.options import GenerationOptions

    GenerationOptions.model_validate(value)
    return value


class ParityFigures(BaseModel):
    """Float comparisons of one graph against the PyTorch float32 model on the export's probe inputs
    (the ``commit`` graph: against the engine's own commit; ``argmax_agreement`` is then the fraction
    of equal ``next_ids`` and ``chosen`` entries, 1.0 when exact)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    provider: str
    cases: StrictInt = Field(ge=0)
    logits_max_abs: float | None = None
    logits_mean_abs: float | None = None
    argmax_agreement: float | None = None
    confidence_max_abs: float | None = None


class Sidecar(_Strict):
    """The whole sidecar. ``Sidecar.read(folder)`` validates it; errors name the file."""

    format: Literal["llada-onnx"] = "llada-onnx"
    format_version: StrictInt = FORMAT_VERSION
    precision: Precision
    opset: StrictInt = Field(ge=OPSETS[0], le=OPSETS[1])
    config: dict[str, Any] = Field(description="the model's official config.json keys (LLaDAConfig.to_hf_dict)")
    special_ids: SpecialIds
    context_length: StrictInt = Field(ge=1, description="at most the config's `max_sequence_length`")
    graphs: dict[str, GraphSpec]
    options: Annotated[dict[str, Any], AfterValidator(_generation_options)] = Field(
        default_factory=dict, description="default GenerationOptions fields"
    )
    providers: list[str] = Field(default_factory=lambda: ["tensorrt", "cuda", "cpu"])
    tokenizer: bool = False
    parity: dict[str, ParityFigures] = Field(
        default_factory=dict, description="empty only with `parity_skipped` (else the export did not finish)"
    )
    parity_skipped: bool = Field(False, description="exported with parity=False: no parity run, deliberately")
    exported_with: dict[str, str] = Field(default_factory=dict)
    source: str | None = None

    @model_validator(mode="after")
    def _against_config(self) -> Sidecar:
        # the config's own checks first: the bounds below come from it
        try:
            cfg = self.llada_config()
        except (ConfigError, TypeError, ValueError) as exc:
            raise _field_error(("config",), str(exc), self.config) from exc
        limit = cfg.max_sequence_length
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _field_error(("config", "max_sequence_length"), f"must be a positive integer, got {limit!r}", limit)
        if self.context_length > limit:
            raise _field_error(
                ("context_length",),
                f"must be at most the config's `max_sequence_length` {limit}, got {self.context_length}",
                self.context_length,
            )
        vocab = cfg.embedding_size or cfg.vocab_size
        for name, value in self.special_ids.model_dump().items():
            if value is not None and not 0 <= value < vocab:
                raise _field_error(
                    ("special_ids", name), f"must be in [0, {vocab}) (the config's embedding rows), got {value}", value
                )
        return self

    def llada_config(self) -> LLaDAConfig:
        """The ``LLaDAConfig`` of the exported model, special ids included."""
        cfg = LLaDAConfig.from_hf_dict(self.config)
        cfg.eot_token_id = self.special_ids.eot
        cfg.bos_token_id = self.special_ids.bos
        return cfg

    def write(self, folder: Path) -> Path:
        """Write ``folder/llada_onnx.json`` atomically (a temporary file, then ``os.replace``): a reader
        sees the old sidecar or the new one, never half of one."""
        path = folder / SIDECAR
        # `parity_skipped` only when set: bundles with parity figures stay readable by older readers
        data = self.model_dump(mode="json", exclude=None if self.parity_skipped else {"parity_skipped"})
        tmp = path.with_name(f".{SIDECAR}.tmp")
        try:
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def read(cls, folder: str | Path) -> Sidecar:
        """Read and validate ``folder/llada_onnx.json``.

        Raises:
            CheckpointError: not a bundle, or an unreadable or invalid sidecar (one line naming the file,
                the field, the rule and the value).
        """
        folder = Path(folder)
        path = folder / SIDECAR
        if not path.is_file():
            raise CheckpointError(
                f"{folder}: this is not an ONNX bundle (it has no {SIDECAR}): export one with `llada export`"
            )
        try:
            with path.open("rb") as f:
                data = f.read(MAX_SIDECAR_BYTES + 1)  # bounded: the file may be huge
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
        if len(data) > MAX_SIDECAR_BYTES:
            raise CheckpointError(
                f"{path}: larger than the {MAX_SIDECAR_BYTES // 2**20} MiB a sidecar may have; not a sidecar"
            )
        try:
            raw = json.loads(data.decode("utf-8"))
        except RecursionError as exc:
            raise CheckpointError(f"{path}: not valid JSON (nested too deeply)") from exc
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise CheckpointError(f"{path}: not an llada-onnx sidecar (`format` must be {FORMAT!r}, got {got!r})")
        version = raw.get("format_version")
        if type(version) is not int:  # bool is an int subclass: `true` must not read as version 1
            raise CheckpointError(f"{path}: invalid field `format_version`: must be an integer, got {_short(version)}")
        if version not in READABLE_VERSIONS:
            raise CheckpointError(
                f"{path}: `format_version` {version!r} is not supported (this llada_export "
                f"reads {', '.join(map(str, READABLE_VERSIONS))}); upgrade llada-sdk or re-export the bundle"
            )
        try:
            sidecar = cls.model_validate(raw)
        except ValidationError as exc:
            raise CheckpointError(f"{path}: {describe(exc)}") from exc
        except RecursionError as exc:
            raise CheckpointError(f"{path}: invalid: nested too deeply") from exc
        if not sidecar.graphs:
            raise CheckpointError(f"{path}: invalid field `graphs`: lists no graphs")
        if not sidecar.parity and not sidecar.parity_skipped:
            raise CheckpointError(
                f"{path}: invalid field `parity`: empty, so the export that wrote this bundle did not finish "
                "(interrupted or failed); re-export it with `llada export`"
            )
        return sidecar


def describe(exc: ValidationError) -> str:
    """``invalid field `a.b`: <rule>, got <value>`` for the first error of ``exc``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"]
    value = first.get("input")
    if first["type"] not in ("missing", "sidecar_field") and not isinstance(value, dict | list):
        message += f", got {_short(value)}"
    return f"invalid field `{where}`: {message}"


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, bool | int | float | str | None) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
