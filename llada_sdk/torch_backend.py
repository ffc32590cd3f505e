"""The PyTorch backend: ``LLaDAModel`` behind the ``Backend`` protocol (imports torch)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llada_sdk.arrays import Array, torch_ops
from llada_sdk.backend import MaskPredictor

if TYPE_CHECKING:
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.engine import DecodeConfig
    from llada_sdk.model import LLaDAModel


class TorchBackend:
    """A loaded ``LLaDAModel``: its forward is the logits predictor, ``forward_cached`` the cached one."""

    name = "torch"

    def __init__(self, model: LLaDAModel, config: LLaDAConfig) -> None:
        self.model = model
        self.config = config
        self.ops = torch_ops()

    def predictor(self, decode: DecodeConfig | None = None) -> MaskPredictor:
        """The model itself: it returns logits and has ``forward_cached`` (a ``CachedMaskPredictor``)."""
        return self.model

    def asarray(self, data: Any) -> Array:
        return torch.as_tensor(data, dtype=torch.long, device=self.model.device)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "device": str(self.model.device),
            "dtype": str(self.model.dtype).removeprefix("torch."),
        }


def pick_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device`` (default: CUDA when available), refusing CUDA without a GPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"`device` must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {device!r} but CUDA is not available on this machine; use 'cpu'")
    return dev


def load_torch_backend(folder: Path, config: LLaDAConfig, *, device: Any = None, dtype: Any = None) -> TorchBackend:
    """Load the safetensors weights of ``folder`` into a ``TorchBackend``."""
    from llada_sdk.loading import load_model, parse_dtype

    dev = pick_device(device)
    return TorchBackend(load_model(folder, config, parse_dtype(dtype), dev), config)
