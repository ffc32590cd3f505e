"""The PyTorch backend as a plugin like any other: its options and its loader, without importing torch
(the loader imports ``torch_backend`` when it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llada_sdk.backend import BackendPlugin


class TorchOptions(BaseModel):
    """The torch backend's own load options."""

    model_config = ConfigDict(extra="forbid", strict=True)

    compile: bool = Field(
        False,
        description="Decode through torch.compile (faster steps after a one-off compilation of tens of seconds; "
        "worth it for long or repeated generations).",
    )
    prepack: bool = Field(
        False,
        description="On a CPU, float32: reorder the linear weights for oneDNN once at load (faster decoding steps, "
        "most with a KV cache).",
    )


def _detect(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def _load(
    folder: Path, *, device: Any = None, dtype: Any = None, ids: dict[str, int | None] | None = None, **options: Any
) -> tuple[Any, Any]:
    from llada_sdk import _deps

    _deps.require_torch()
    from llada_sdk.loading import read_checkpoint
    from llada_sdk.torch_backend import load_torch_backend

    ids = ids or {}
    config, tokenizer = read_checkpoint(
        folder, ids.get("mask_token_id"), ids.get("eos_token_id"), ids.get("eot_token_id")
    )
    return load_torch_backend(folder, config, device=device, dtype=dtype, **options), tokenizer


PLUGIN = BackendPlugin(
    name="torch",
    detect=_detect,
    load=_load,
    options=TorchOptions,
    summary="PyTorch on an official checkpoint (safetensors); CPU or CUDA",
)
