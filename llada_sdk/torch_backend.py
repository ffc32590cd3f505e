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


def prepack_available() -> bool:
    """Whether this torch build can reorder linear weights into oneDNN's layout (``PackedLinear``)."""
    mkldnn = torch.ops.mkldnn
    return bool(torch.backends.mkldnn.is_available()) and all(  # type: ignore[no-untyped-call]
        hasattr(mkldnn, op) for op in ("_reorder_linear_weight", "_linear_pointwise")
    )


class PackedLinear(torch.nn.Module):
    """A bias-free ``nn.Linear`` whose weight is reordered once into oneDNN's blocked layout (CPU,
    float32), so that each call skips packing the weight: what a 32-token cached step spends most of
    its matmul time on (measured in ``docs/benchmarks.md``). Inference only; logits move by float32
    rounding (a different summation order), not bit for bit."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        if linear.bias is not None:
            raise ValueError("PackedLinear takes bias-free linears (LLaDA has no biases)")
        self.in_features: int = linear.in_features
        self.out_features: int = linear.out_features
        self.packed: torch.Tensor = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        y: torch.Tensor = torch.ops.mkldnn._linear_pointwise(flat, self.packed, None, "none", [], "")
        return y.reshape(*x.shape[:-1], self.out_features)


def prepack_linears(model: LLaDAModel) -> int:
    """Replace every linear of ``model`` (float32, on the CPU) by a ``PackedLinear``, in place; returns
    how many. The original weights are released (the model is then for inference only)."""
    if model.device.type != "cpu" or model.dtype != torch.float32:
        raise ValueError(
            f"`prepack` needs a float32 model on the CPU, got {str(model.dtype).removeprefix('torch.')} on "
            f"{model.device}; load with device='cpu', dtype='float32' or leave `prepack` off"
        )
    if not prepack_available():
        raise ValueError("`prepack` needs a torch build with oneDNN (mkldnn); this one has none")
    count = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, PackedLinear(child))
                count += 1
    return count


class CompiledPredictor:
    """``torch.compile`` of a model's ``forward`` and ``forward_cached`` (dynamic shapes), compiled on
    first use: the first call of each pays the compilation (tens of seconds on a CPU), later calls of
    any canvas length reuse it. Logits agree with eager within float32 rounding (not bit for bit)."""

    def __init__(self, model: LLaDAModel) -> None:
        self.model = model
        self._forward: Any = None
        self._cached: Any = None

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self._forward is None:
            self._forward = torch.compile(self.model.forward, dynamic=True)
        out: torch.Tensor = self._forward(input_ids, attention_mask)
        return out

    def forward_cached(self, input_ids: torch.Tensor, cache: Any = None, start: int = 0) -> tuple[torch.Tensor, Any]:
        if self._cached is None:
            self._cached = torch.compile(self.model.forward_cached, dynamic=True)
        out: tuple[torch.Tensor, Any] = self._cached(input_ids, cache, start)
        return out


class TorchBackend:
    """A loaded ``LLaDAModel``: its forward is the logits predictor, ``forward_cached`` the cached one.

    ``compile=True`` decodes through ``torch.compile`` (``CompiledPredictor``); scoring stays eager."""

    name = "torch"

    def __init__(
        self,
        model: LLaDAModel,
        config: LLaDAConfig,
        dtype_note: str = "",
        compile: bool = False,
        prepacked: bool = False,
    ) -> None:
        self.model = model
        self.config = config
        self.ops = torch_ops()
        self.dtype_note = dtype_note
        self.prepacked = prepacked
        self.compiled = CompiledPredictor(model) if compile else None

    def predictor(self, decode: DecodeConfig | None = None, *, logits: bool = False) -> MaskPredictor:
        """The model itself (or its compiled twin): it returns logits and has ``forward_cached`` (a
        ``CachedMaskPredictor``)."""
        return self.compiled if self.compiled is not None and decode is not None else self.model

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
            "compile": self.compiled is not None,
            "prepack": self.prepacked,
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


def load_torch_backend(
    folder: Path,
    config: LLaDAConfig,
    *,
    device: Any = None,
    dtype: Any = None,
    compile: bool = False,
    prepack: bool = False,
) -> TorchBackend:
    """Load the safetensors weights of ``folder`` into a ``TorchBackend``.

    ``dtype`` None or ``"auto"``: see ``auto_dtype``; otherwise float32, bfloat16 or float16.
    ``compile``: decode through ``torch.compile`` (see ``CompiledPredictor``).
    ``prepack``: reorder the linear weights for oneDNN once (CPU float32; see ``PackedLinear``)."""
    for name, value in (("compile", compile), ("prepack", prepack)):
        if not isinstance(value, bool):
            raise TypeError(f"`{name}` must be True or False, got {value!r}")
    from llada_sdk.loading import load_model, parse_dtype

    dev = pick_device(device)
    chosen = parse_dtype(dtype)
    note = "as requested"
    if chosen is None:
        chosen, note = auto_dtype(folder, dev)
    model = load_model(folder, config, chosen, dev)
    if prepack:
        prepack_linears(model)
    return TorchBackend(model, config, note, compile=compile, prepacked=prepack)
