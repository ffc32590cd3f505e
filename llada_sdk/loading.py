"""Resolve a checkpoint (bundled, local directory or Hub id) and load it without remote code.

Weights are read tensor by tensor with plain file reads (no mmap, no pickle) straight into tensors of
the target dtype on the target device: a bfloat16 checkpoint loaded as bfloat16 is never
materialised in float32, and at most one tensor is held twice (during a dtype conversion).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llada_sdk.errors import CheckpointError, ConfigError, ModelNotFoundError

if TYPE_CHECKING:
    import torch

    from llada_sdk.config import LLaDAConfig
    from llada_sdk.model import LLaDAModel
    from llada_sdk.tokenizer import Tokenizer

BUNDLED_MODEL = "llada-tiny-kb"
BUNDLED_DIR = Path(__file__).parent / "bundled" / BUNDLED_MODEL
HUB_ALLOW_PATTERNS = [
    "config.json",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
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


@dataclass
class ModelSource:
    """Where a model's files came from."""

    kind: str  # "bundled" | "local" | "hub"
    path: Path
    repo_id: str | None = None
    revision: str | None = None

    def describe(self) -> str:
        if self.kind == "hub":
            return f"hub:{self.repo_id}@{self.revision or 'main'} ({self.path})"
        return f"{self.kind}:{self.path}"


def is_repo_id(text: str) -> bool:
    """True when ``text`` has the shape of a Hub repo id (``owner/name``) rather than a path."""
    return bool(_REPO_ID.match(text)) and not text.startswith((".", "/", "~"))


def resolve(path_or_repo_id: str | os.PathLike[str] | None, revision: str | None = None) -> ModelSource:
    """The bundled model (None or its name), a local directory, or a Hub repo id (downloaded or cached).

    Hub downloads fetch config, weights and tokenizer files only (never ``*.py``) and honour
    ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE``.
    """
    if path_or_repo_id is None or str(path_or_repo_id) == BUNDLED_MODEL:
        return ModelSource("bundled", BUNDLED_DIR)
    text = os.fspath(path_or_repo_id)
    local = Path(text).expanduser()
    if local.is_dir():
        return ModelSource("local", local)
    if local.exists():
        raise ModelNotFoundError(f"model path {text!r} is a file; pass the directory that holds config.json")
    if not is_repo_id(text):
        raise ModelNotFoundError(f"model {text!r}: no such directory, and not a Hub repo id (owner/name)")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a base dependency
        raise ModelNotFoundError(f"model {text!r}: huggingface_hub is not installed") from exc
    try:
        folder = snapshot_download(text, revision=revision, allow_patterns=HUB_ALLOW_PATTERNS)
    except LocalEntryNotFoundError as exc:
        raise ModelNotFoundError(
            f"model {text!r}: not a local directory and not in the Hub cache "
            f"({os.environ.get('HF_HUB_CACHE') or os.environ.get('HF_HOME') or '~/.cache/huggingface'}), "
            f"and it cannot be downloaded (offline or no network)"
        ) from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelNotFoundError(f"model {text!r}: Hub download failed ({exc})") from exc
    return ModelSource("hub", Path(folder), repo_id=text, revision=revision)


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


def override_ids(config: LLaDAConfig, mask: int | None, eos: int | None, eot: int | None) -> None:
    if mask is not None:
        config.mask_token_id = mask
    if eos is not None:
        config.eos_token_id = eos
    if eot is not None:
        config.eot_token_id = eot


def load_backend(
    folder: Path, backend: str, *, device: Any, dtype: Any, ids: dict[str, int | None], **backend_options: Any
) -> tuple[Any, Tokenizer | None]:
    """The backend and tokenizer for ``folder``: ``backend="auto"`` asks each installed backend plugin
    whether the folder is its format (an exported bundle) and falls back to torch; ``"torch"`` or a
    plugin's name choose directly. ``ids`` overrides the special ids (``mask_token_id``...)."""
    from llada_sdk.backend import plugins

    if not isinstance(backend, str):
        raise TypeError(f"`backend` must be a string ('auto', 'torch' or a plugin name), got {backend!r}")
    found = plugins()
    chosen = next((n for n, p in found.items() if p.detect(folder)), "torch") if backend == "auto" else backend
    if chosen != "torch":
        if chosen not in found:
            known = ", ".join(["'auto'", "'torch'", *(repr(n) for n in found)])
            hint = " (pip install 'llada-sdk[onnx]')" if chosen == "onnx" else ""
            raise ValueError(f"`backend` must be one of {known}, got {backend!r}{hint}")
        loaded, tokenizer = found[chosen].load(folder, device=device, dtype=dtype, **backend_options)
        override_ids(loaded.config, ids.get("mask_token_id"), ids.get("eos_token_id"), ids.get("eot_token_id"))
        return loaded, tokenizer
    compile, prepack = backend_options.pop("compile", False), backend_options.pop("prepack", False)
    if backend_options:
        raise TypeError(
            f"unexpected keyword arguments for the torch backend: {sorted(backend_options)} "
            "(it takes `compile` and `prepack`)"
        )
    mask, eos, eot = ids.get("mask_token_id"), ids.get("eos_token_id"), ids.get("eot_token_id")
    config, tokenizer = read_checkpoint(folder, mask, eos, eot)
    from llada_sdk import _deps

    _deps.require_torch()
    from llada_sdk.torch_backend import load_torch_backend

    backend_ = load_torch_backend(folder, config, device=device, dtype=dtype, compile=compile, prepack=prepack)
    return backend_, tokenizer
