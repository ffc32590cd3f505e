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
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llada_sdk.config import LLaDAConfig
from llada_sdk.errors import CheckpointError, ConfigError

SIDECAR = "llada_onnx.json"
FORMAT = "llada-onnx"
FORMAT_VERSION = 2  # 2: the `commit` graph role; version-1 bundles (without it) are still read
READABLE_VERSIONS = (1, 2)

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
    dims: list[str | int] = Field(description="a string is a symbolic dimension, an int a fixed size")


class GreedyPolicy(_Strict):
    """The decode settings a fused graph was traced with; the runtime uses the graph only when a run's
    settings match (temperature 0, no CFG, low-confidence remasking and these flags and ids)."""

    eos_id: int | None
    eot_id: int | None
    logits_eos_inf: bool = False
    confidence_eos_eot_inf: bool = False
    reference_compat: bool = False


class GraphSpec(_Strict):
    """One ONNX file of the bundle."""

    file: str
    role: GraphRole
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    bytes: int = Field(description="size of the .onnx file plus its external data, checked at load")
    external_data: str | None = None
    policy: GreedyPolicy | None = None


class SpecialIds(_Strict):
    mask: int
    eos: int
    eot: int | None = None
    bos: int | None = None
    pad: int | None = None


class ParityFigures(BaseModel):
    """Float comparisons of one graph against the PyTorch float32 model on the export's probe inputs
    (the ``commit`` graph: against the engine's own commit; ``argmax_agreement`` is then the fraction
    of equal ``next_ids`` and ``chosen`` entries, 1.0 when exact)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    provider: str
    cases: int
    logits_max_abs: float | None = None
    logits_mean_abs: float | None = None
    argmax_agreement: float | None = None
    confidence_max_abs: float | None = None


class Sidecar(_Strict):
    """The whole sidecar. ``Sidecar.read(folder)`` validates it; errors name the file."""

    format: Literal["llada-onnx"] = "llada-onnx"
    format_version: int = FORMAT_VERSION
    precision: Precision
    opset: int
    config: dict[str, Any] = Field(description="the model's official config.json keys (LLaDAConfig.to_hf_dict)")
    special_ids: SpecialIds
    context_length: int
    graphs: dict[str, GraphSpec]
    options: dict[str, Any] = Field(default_factory=dict, description="default GenerationOptions fields")
    providers: list[str] = Field(default_factory=lambda: ["tensorrt", "cuda", "cpu"])
    tokenizer: bool = False
    parity: dict[str, ParityFigures] = Field(default_factory=dict)
    exported_with: dict[str, str] = Field(default_factory=dict)
    source: str | None = None

    def llada_config(self) -> LLaDAConfig:
        """The ``LLaDAConfig`` of the exported model, special ids included."""
        cfg = LLaDAConfig.from_hf_dict(self.config)
        cfg.eot_token_id = self.special_ids.eot
        cfg.bos_token_id = self.special_ids.bos
        return cfg

    def write(self, folder: Path) -> Path:
        path = folder / SIDECAR
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: str | Path) -> Sidecar:
        """Read and validate ``folder/llada_onnx.json``.

        Raises:
            CheckpointError: a missing, unreadable or invalid sidecar (one line naming the file).
        """
        path = Path(folder) / SIDECAR
        if not path.is_file():
            raise CheckpointError(f"{path}: missing; an ONNX bundle needs its sidecar (made by `llada export`)")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise CheckpointError(f"{path}: not an llada-onnx sidecar (`format` must be {FORMAT!r}, got {got!r})")
        if raw.get("format_version") not in READABLE_VERSIONS:
            raise CheckpointError(
                f"{path}: `format_version` {raw.get('format_version')!r} is not supported (this llada_export "
                f"reads {', '.join(map(str, READABLE_VERSIONS))}); upgrade llada-sdk or re-export the bundle"
            )
        try:
            sidecar = cls.model_validate(raw)
            sidecar.llada_config()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise CheckpointError(f"{path}: invalid field `{where}`: {first['msg']}") from exc
        except ConfigError as exc:
            raise CheckpointError(f"{path}: invalid `config`: {exc}") from exc
        if not sidecar.graphs:
            raise CheckpointError(f"{path}: lists no graphs")
        return sidecar
