"""Execution providers as a typed, ordered list, rendered to onnxruntime's ``providers=`` argument.

``CPU()``, ``CUDA(device_id=..., cuda_graph=...)`` and ``TensorRT(fp16=..., engine_cache=..., profile=...)``
hold the options users set, with ranges checked by pydantic; ``to_ort()`` renders each to the exact
onnxruntime key names (TensorRT: ``trt_fp16_enable``, ``trt_engine_cache_path``, ``trt_profile_min_shapes``
...). The order is the priority: the default is TensorRT -> CUDA -> CPU.

onnxruntime-gpu lists TensorRT and CUDA as *available* even without a GPU and then silently runs on
the CPU, so the runtime always reads the providers back from the created session
(``session.get_providers()``); ``strict=True`` turns a fallback into ``ProviderUnavailableError``.

This module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llada_sdk.errors import LLaDAError

ORT_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
SHORT_NAMES = {v: k for k, v in ORT_NAMES.items()}
DEFAULT_ORDER = ("tensorrt", "cuda", "cpu")


class ProviderUnavailableError(LLaDAError, RuntimeError):
    """A requested execution provider is not the one onnxruntime used (``strict=True``)."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llada-sdk" / "tensorrt"


class _Provider(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def ort_name(self) -> str:
        return ORT_NAMES[self.kind]  # type: ignore[attr-defined]

    def options(self) -> dict[str, str]:
        """onnxruntime's option dict (string values, as its C API takes them)."""
        return {}

    def to_ort(self) -> tuple[str, dict[str, str]]:
        return self.ort_name, self.options()


class CPU(_Provider):
    """``CPUExecutionProvider``."""

    kind: Literal["cpu"] = "cpu"
    arena: bool = Field(True, description="use the CPU memory arena")

    def options(self) -> dict[str, str]:
        return {} if self.arena else {"use_arena": "0"}


class CUDA(_Provider):
    """``CUDAExecutionProvider``."""

    kind: Literal["cuda"] = "cuda"
    device_id: int = Field(0, ge=0)
    gpu_mem_limit: int | None = Field(None, gt=0, description="bytes")
    arena_extend_strategy: Literal["kNextPowerOfTwo", "kSameAsRequested"] | None = None
    cuda_graph: bool = Field(
        False, description="capture CUDA graphs (needs IO binding and a fixed shape per graph; one per canvas shape)"
    )
    use_tf32: bool | None = None

    def options(self) -> dict[str, str]:
        out = {"device_id": str(self.device_id)}
        if self.gpu_mem_limit is not None:
            out["gpu_mem_limit"] = str(self.gpu_mem_limit)
        if self.arena_extend_strategy is not None:
            out["arena_extend_strategy"] = self.arena_extend_strategy
        if self.cuda_graph:
            out["enable_cuda_graph"] = "1"
        if self.use_tf32 is not None:
            out["use_tf32"] = "1" if self.use_tf32 else "0"
        return out


class ShapeProfile(BaseModel):
    """TensorRT optimisation profile: min/opt/max shape of every dynamic input, e.g.
    ``{"input_ids": [1, 16], "attention_mask": [1, 16]}``; all three must name the same inputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: dict[str, list[int]]
    opt: dict[str, list[int]]
    max: dict[str, list[int]]

    def model_post_init(self, __context: Any) -> None:
        names = set(self.min)
        if set(self.opt) != names or set(self.max) != names:
            raise ValueError(
                f"`profile` min/opt/max must name the same inputs, got {sorted(self.min)}, "
                f"{sorted(self.opt)}, {sorted(self.max)}"
            )

    @staticmethod
    def render(shapes: dict[str, list[int]]) -> str:
        """trtexec syntax: ``input_ids:1x16,attention_mask:1x16``."""
        return ",".join(f"{name}:{'x'.join(str(d) for d in dims)}" for name, dims in shapes.items())

    @classmethod
    def for_canvas(cls, batch: tuple[int, int, int], length: tuple[int, int, int]) -> ShapeProfile:
        """A profile for ``input_ids``/``attention_mask`` from (min, opt, max) batch and length."""
        shapes = [{n: [batch[i], length[i]] for n in ("input_ids", "attention_mask")} for i in range(3)]
        return cls(min=shapes[0], opt=shapes[1], max=shapes[2])


class TensorRT(_Provider):
    """``TensorrtExecutionProvider`` (engines are built on first use; cache them)."""

    kind: Literal["tensorrt"] = "tensorrt"
    device_id: int = Field(0, ge=0)
    fp16: bool = Field(False, description="let TensorRT run layers in float16")
    bf16: bool = False
    engine_cache: bool = Field(True, description="keep built engines on disk (rebuilt for another GPU/TRT/ORT)")
    engine_cache_path: Path | None = Field(None, description="default: ~/.cache/llada-sdk/tensorrt")
    timing_cache: bool = True
    timing_cache_path: Path | None = None
    max_workspace_size: int | None = Field(None, gt=0, description="bytes")
    profile: ShapeProfile | None = Field(None, description="min/opt/max shapes; None lets TensorRT pick")
    cuda_graph: bool = False
    builder_optimization_level: int | None = Field(None, ge=0, le=5)

    def options(self) -> dict[str, str]:
        out = {"device_id": str(self.device_id)}
        flags = {
            "trt_fp16_enable": self.fp16,
            "trt_bf16_enable": self.bf16,
            "trt_engine_cache_enable": self.engine_cache,
            "trt_timing_cache_enable": self.timing_cache,
            "trt_cuda_graph_enable": self.cuda_graph,
        }
        out.update({k: "True" if v else "False" for k, v in flags.items()})
        if self.engine_cache:
            out["trt_engine_cache_path"] = str(self.engine_cache_path or _cache_dir())
        if self.timing_cache:
            out["trt_timing_cache_path"] = str(self.timing_cache_path or self.engine_cache_path or _cache_dir())
        if self.max_workspace_size is not None:
            out["trt_max_workspace_size"] = str(self.max_workspace_size)
        if self.builder_optimization_level is not None:
            out["trt_builder_optimization_level"] = str(self.builder_optimization_level)
        if self.profile is not None:
            out["trt_profile_min_shapes"] = ShapeProfile.render(self.profile.min)
            out["trt_profile_opt_shapes"] = ShapeProfile.render(self.profile.opt)
            out["trt_profile_max_shapes"] = ShapeProfile.render(self.profile.max)
        return out


Provider = Annotated[CPU | CUDA | TensorRT, Field(discriminator="kind")]
ProviderSpec = str | CPU | CUDA | TensorRT | dict[str, Any]


class _ProviderList(BaseModel):
    items: list[Provider]


def parse_providers(spec: ProviderSpec | Sequence[ProviderSpec] | None, device: str | None = None) -> list[Provider]:
    """Normalise what a user gave into an ordered provider list (CPU is always appended last).

    Args:
        spec: ``None`` (from ``device``, else TensorRT -> CUDA -> CPU), a name (``"tensorrt"``,
            ``"cuda"``, ``"cpu"``, ``"auto"`` or an onnxruntime name such as
            ``"CUDAExecutionProvider"``), a provider object, a dict with ``kind``, or a list of those.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; used when ``spec`` is None.

    Raises:
        ValueError: an unknown name or invalid option, naming it and the allowed values.
    """
    if spec is None:
        if device is None or device == "auto":
            spec = "auto"
        elif device == "cpu":
            spec = "cpu"
        elif device == "cuda" or device.startswith("cuda:"):
            index = device.partition(":")[2] or "0"
            if not index.isdigit():
                raise ValueError(f"`device` must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
            spec = [CUDA(device_id=int(index))]
        else:
            raise ValueError(f"`device` must be 'cpu', 'cuda' or 'cuda:N' for an ONNX bundle, got {device!r}")
    items = [spec] if isinstance(spec, str | dict | CPU | CUDA | TensorRT) else list(spec)
    out: list[Provider] = []
    for item in items:
        if isinstance(item, str):
            name = SHORT_NAMES.get(item, item.lower())
            if name == "auto":
                out.extend([TensorRT(), CUDA(), CPU()])
                continue
            if name not in ORT_NAMES:
                allowed = ", ".join([*ORT_NAMES, "auto"])
                raise ValueError(f"`providers` entries must be one of {allowed} (or an onnxruntime name), got {item!r}")
            item = {"kind": name}
        try:
            out.extend(_ProviderList.model_validate({"items": [item]}).items)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"][3:]) or "kind"
            raise ValueError(f"`providers` entry {item!r}: `{where}` {first['msg']}") from exc
    if not any(p.kind == "cpu" for p in out):
        out.append(CPU())
    seen: set[str] = set()
    unique = []
    for p in out:
        if p.kind not in seen:
            seen.add(p.kind)
            unique.append(p)
    return unique


def to_ort(providers: Sequence[Provider], available: Sequence[str] | None = None) -> list[tuple[str, dict[str, str]]]:
    """onnxruntime's ``providers=`` list; with ``available`` (``onnxruntime.get_available_providers()``)
    those the installed build lacks are left out (a CPU-only build would warn about them)."""
    return [p.to_ort() for p in providers if available is None or p.ort_name in available]


def short_name(ort_name: str) -> str:
    """``"CUDAExecutionProvider"`` -> ``"cuda"`` (unknown names are returned unchanged)."""
    return SHORT_NAMES.get(ort_name, ort_name)
