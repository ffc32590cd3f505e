"""The PyTorch backend as a plugin like any other: its options and its loader, without importing torch
(the loader imports ``torch_backend`` when it runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from llada_sdk.backends.base import BackendPlugin
from llada_sdk.errors import ConfigError

if TYPE_CHECKING:
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.tokenizer import Tokenizer


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
    threads: int | None = Field(
        None,
        ge=1,
        description="Compute threads (torch: torch.set_num_threads, for the whole process; onnx: per session).",
    )


def read_checkpoint(
    folder: Path, mask_token_id: int | None, eos_token_id: int | None, eot_token_id: int | None
) -> tuple[LLaDAConfig, Tokenizer | None]:
    """config.json and the tokenizer files of an official-format checkpoint (ids filled in)."""
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.tokenizer import Tokenizer

    path = folder / "config.json"
    if not path.is_file():
        raise ConfigError(f"no config.json in {folder}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    tokenizer = Tokenizer.from_dir(folder) if (folder / "tokenizer.json").is_file() else None
    if tokenizer is not None:
        raw.setdefault("mask_token_id", tokenizer.special.mask)
        raw.setdefault("eos_token_id", tokenizer.special.eos)
    for key, value in (("mask_token_id", mask_token_id), ("eos_token_id", eos_token_id)):
        if value is not None:
            raw[key] = value
    config = LLaDAConfig.from_hf_dict(raw)
    config.eot_token_id = eot_token_id if eot_token_id is not None else (tokenizer.special.eot if tokenizer else None)
    config.bos_token_id = tokenizer.special.bos if tokenizer else None
    return config, tokenizer


def _detect(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def _load(
    folder: Path, *, device: Any = None, dtype: Any = None, ids: dict[str, int | None] | None = None, **options: Any
) -> tuple[Any, Any]:
    from llada_sdk import _deps

    _deps.require_torch()
    from llada_sdk.backends.torch_backend import load_torch_backend

    threads = options.pop("threads", None)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
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
