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

    def __init__(self, model: LLaDAModel, config: LLaDAConfig, dtype_note: str = "") -> None:
        self.model = model
        self.config = config
        self.ops = torch_ops()
        self.dtype_note = dtype_note

    def predictor(self, decode: DecodeConfig | None = None, *, logits: bool = False) -> MaskPredictor:
        """The model itself: it returns logits and has ``forward_cached`` (a ``CachedMaskPredictor``)."""
        return self.model

    def asarray(self, data: Any) -> Array:
        return torch.as_tensor(data, dtype=torch.long, device=self.model.device)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def info(self) -> dict[str, Any]:
        out = {
            "backend": self.name,
            "device": str(self.model.device),
            "dtype": str(self.model.dtype).removeprefix("torch."),
        }
        if self.dtype_note:
            out["dtype_note"] = self.dtype_note
        return out


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


def cpu_has_fast_half() -> bool:
    """Whether this CPU computes bfloat16/float16 matmuls natively (AMX or AVX512-BF16)."""
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


def auto_dtype(folder: Path, device: torch.device) -> tuple[torch.dtype | None, str]:
    """The dtype ``dtype="auto"`` loads: the checkpoint's own, except half-precision weights on a CPU
    without native bfloat16/float16 math, which load as float32 (about 5x faster there).
    Returns the dtype (None = the checkpoint's) and a note saying why."""
    from llada_sdk.loading import read_header, weight_files

    header, _ = read_header(weight_files(folder)[0])
    stored = {info["dtype"] for info in header.values()}
    if device.type == "cpu" and stored & {"BF16", "F16"} and not cpu_has_fast_half():
        return torch.float32, "float32: this CPU has no native bfloat16/float16 math (the checkpoint is half precision)"
    return None, "the checkpoint's own dtype"


def load_torch_backend(folder: Path, config: LLaDAConfig, *, device: Any = None, dtype: Any = None) -> TorchBackend:
    """Load the safetensors weights of ``folder`` into a ``TorchBackend``.

    ``dtype`` None or ``"auto"``: see ``auto_dtype``; otherwise float32, bfloat16 or float16."""
    from llada_sdk.loading import load_model, parse_dtype

    dev = pick_device(device)
    chosen = parse_dtype(dtype)
    note = "as requested"
    if chosen is None:
        chosen, note = auto_dtype(folder, dev)
    return TorchBackend(load_model(folder, config, chosen, dev), config, note)
