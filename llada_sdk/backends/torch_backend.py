"""The PyTorch backend: official safetensors checkpoints read tensor by tensor into ``LLaDAModel``, behind
the ``Backend`` protocol (imports torch).

Weights are read with plain file reads (no mmap, no pickle) straight into tensors of the target dtype on
the target device: a bfloat16 checkpoint loaded as bfloat16 is never materialised in float32, and at
most one tensor is held twice (during a dtype conversion)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llada_sdk.backends.base import BackendOptionError, MaskPredictor
from llada_sdk.decoding.arrays import Array, torch_ops
from llada_sdk.errors import CheckpointError

if TYPE_CHECKING:
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.decoding.engine import DecodeConfig
    from llada_sdk.model import LLaDAModel


_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}
CHUNK_BYTES = 16 * 2**20
_ST_DTYPES = {"F32": ("float32", 4), "BF16": ("bfloat16", 2), "F16": ("float16", 2), "F64": ("float64", 8)}


# -- reading safetensors: tensor by tensor, straight into the target dtype and device ------------------


def parse_dtype(dtype: Any) -> torch.dtype | None:
    """``"bf16"``/``"bfloat16"``/``torch.bfloat16``... -> torch dtype; None or "auto" -> None."""
    import torch

    if dtype is None or dtype == "auto":
        return None
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"`dtype` must be float32, bfloat16 or float16, got {dtype}")
        return dtype
    name = _DTYPES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise ValueError(f"`dtype` must be one of float32, bfloat16, float16 (or auto), got {dtype!r}")
    return getattr(torch, name)  # type: ignore[no-any-return]


def weight_files(folder: Path) -> list[Path]:
    """``model.safetensors``, or the shards named by ``model.safetensors.index.json``."""
    index = folder / "model.safetensors.index.json"
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{index}: not a valid shard index ({exc})") from exc
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise CheckpointError(f"{index} names shard files that are missing: {', '.join(missing[:5])}")
        return [folder / s for s in shards]
    found = sorted(p.name for p in folder.glob("*"))[:10]
    bins = [f for f in found if f.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    hint = f"; pickle checkpoints ({', '.join(bins)}) are never loaded: convert them to safetensors" if bins else ""
    raise CheckpointError(
        f"no model.safetensors or model.safetensors.index.json in {folder} (found: {', '.join(found) or 'nothing'}){hint}"
    )


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The safetensors JSON header of ``path`` and the offset where tensor data starts."""
    try:
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise CheckpointError(f"{path}: corrupt safetensors file (shorter than its 8-byte header size)")
            n = int.from_bytes(raw, "little")
            size = path.stat().st_size
            if n <= 0 or n > min(size - 8, 100_000_000):
                raise CheckpointError(f"{path}: corrupt safetensors file (header size {n} does not fit the file)")
            header = json.loads(f.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors file (header is not JSON: {exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors file (header is not a JSON object)")
    header.pop("__metadata__", None)
    data_size = size - 8 - n
    for name, info in header.items():
        try:
            begin, end = info["data_offsets"]
            dtype, shape = info["dtype"], info["shape"]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: corrupt safetensors file (bad entry for {name!r})") from exc
        if dtype not in _ST_DTYPES:
            raise CheckpointError(
                f"{path}: tensor {name!r} has dtype {dtype}; only F32, BF16, F16, F64 weights are supported"
            )
        numel = 1
        for s in shape:
            numel *= int(s)
        if not 0 <= begin <= end <= data_size or end - begin != numel * _ST_DTYPES[dtype][1]:
            raise CheckpointError(
                f"{path}: corrupt safetensors file (tensor {name!r}: offsets {begin}..{end} do not match "
                f"shape {shape} {dtype} within {data_size} data bytes; truncated download?)"
            )
    return header, 8 + n


def _canonical(name: str) -> str:
    return name.removeprefix("model.")


def iter_tensors(
    files: list[Path], wanted: dict[str, tuple[int, ...]], dtype: torch.dtype | None, device: torch.device
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(model name, tensor)`` for every tensor in ``files``, checked against ``wanted`` shapes."""
    import torch

    headers = [(p, *read_header(p)) for p in files]
    names = {_canonical(k) for _, h, _ in headers for k in h}
    missing = sorted(set(wanted) - names)
    unexpected = sorted(names - set(wanted))
    if missing:
        raise CheckpointError(
            f"checkpoint is missing {len(missing)} tensor(s) the model needs, e.g. {', '.join('model.' + m for m in missing[:5])}"
        )
    if unexpected:
        raise CheckpointError(
            f"checkpoint has {len(unexpected)} unexpected tensor(s), e.g. {', '.join(unexpected[:5])}; "
            "is it a LLaDA checkpoint with this config.json?"
        )
    staging: dict[torch.dtype, torch.Tensor] = {}  # one reusable chunk buffer per file dtype
    for path, header, start in headers:
        with path.open("rb", buffering=0) as f:
            for raw_name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
                name = _canonical(raw_name)
                shape = tuple(int(s) for s in info["shape"])
                if shape != wanted[name]:
                    raise CheckpointError(
                        f"shape mismatch for tensor {raw_name!r}: the config expects {list(wanted[name])}, "
                        f"the checkpoint has {list(shape)}"
                    )
                file_dtype = getattr(torch, _ST_DTYPES[info["dtype"]][0])
                out = torch.empty(shape, dtype=dtype or file_dtype, device=device)
                begin, end = info["data_offsets"]
                f.seek(start + begin)
                if out.dtype == file_dtype and device.type == "cpu":
                    got = _read_into(f, _bytes_view(out))  # straight into the final tensor
                else:  # convert / upload chunk by chunk: never a second full copy
                    if file_dtype not in staging:
                        staging[file_dtype] = torch.empty(CHUNK_BYTES // out.element_size(), dtype=file_dtype)
                    buf, flat, got = staging[file_dtype], out.view(-1), 0
                    for lo in range(0, flat.numel(), buf.numel()):
                        n = min(buf.numel(), flat.numel() - lo)
                        got += _read_into(f, _bytes_view(buf[:n]))
                        flat[lo : lo + n].copy_(buf[:n])
                if got != end - begin:
                    raise CheckpointError(f"{path}: corrupt safetensors file (tensor {raw_name!r} is truncated)")
                yield name, out


def _bytes_view(t: torch.Tensor) -> memoryview:
    """A writable byte view of a contiguous CPU tensor."""
    import torch

    if t.numel() == 0:
        return memoryview(bytearray())
    raw: Any = t.view(torch.uint8).numpy()
    return memoryview(raw).cast("B")


def _read_into(f: Any, view: memoryview) -> int:
    """readinto until ``view`` is full or EOF (one read() may return less, e.g. above 2 GiB)."""
    done = 0
    while done < len(view):
        n = f.readinto(view[done:])
        if not n:
            break
        done += n
    return done


def load_model(folder: Path, config: Any, dtype: torch.dtype | None, device: torch.device) -> LLaDAModel:
    """Build the model on the meta device and assign checkpoint tensors (no extra full copy)."""
    import torch

    from llada_sdk.model import LLaDAModel

    model = LLaDAModel(config, device="meta")
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = dict(iter_tensors(weight_files(folder), wanted, dtype, device))
    dtypes = {t.dtype for t in state.values()}
    if len(dtypes) > 1:
        target = dtype or torch.float32
        state = {k: v.to(target) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)


# -- the backend -------------------------------------------------------------------------------------


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
        raise BackendOptionError(
            f"`prepack` needs a float32 model on the CPU, got {str(model.dtype).removeprefix('torch.')} on "
            f"{model.device}; load with device='cpu', dtype='float32' or leave `prepack` off",
            "prepack",
        )
    if not prepack_available():
        raise BackendOptionError("`prepack` needs a torch build with oneDNN (mkldnn); this one has none", "prepack")
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

    dev = pick_device(device)
    chosen = parse_dtype(dtype)
    note = "as requested"
    if chosen is None:
        chosen, note = auto_dtype(folder, dev)
    model = load_model(folder, config, chosen, dev)
    if prepack:
        prepack_linears(model)
    return TorchBackend(model, config, note, compile=compile, prepacked=prepack)
