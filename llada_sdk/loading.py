"""Resolve a model (bundled, local directory or Hub id: config, safetensors and tokenizer files only, no
remote code), read its config and tokenizer, and hand it to the backend that loads it: torch (built in,
``torch_plugin``) or a plugin whose format the folder is (an exported bundle)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llada_sdk.errors import ModelNotFoundError

if TYPE_CHECKING:
    from llada_sdk.backends.base import BackendPlugin
    from llada_sdk.config import LLaDAConfig
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


def override_ids(config: LLaDAConfig, mask: int | None, eos: int | None, eot: int | None) -> None:
    if mask is not None:
        config.mask_token_id = mask
    if eos is not None:
        config.eos_token_id = eos
    if eot is not None:
        config.eot_token_id = eot


def backends() -> dict[str, BackendPlugin]:
    """Every backend by name: torch (built in) and the plugins (registered or installed)."""
    from llada_sdk.backends.base import plugins
    from llada_sdk.backends.torch_plugin import PLUGIN as TORCH

    return {TORCH.name: TORCH, **plugins()}


def load_backend(
    folder: Path, backend: str, *, device: Any, dtype: Any, ids: dict[str, int | None], **backend_options: Any
) -> tuple[Any, Tokenizer | None]:
    """The backend and tokenizer for ``folder``: ``backend="auto"`` asks each plugin whether the folder
    is its format (an exported bundle) and falls back to torch; a name chooses directly. The options
    are the chosen backend's own (``BackendPlugin.options``); ``ids`` overrides the special ids."""
    if not isinstance(backend, str):
        raise TypeError(f"`backend` must be a string ('auto', 'torch' or a plugin name), got {backend!r}")
    found = backends()
    if backend == "auto":
        chosen = next((n for n, p in found.items() if n != "torch" and p.detect(folder)), "torch")
    else:
        chosen = backend
    if chosen not in found:
        known = ", ".join(["'auto'", *(repr(n) for n in found)])
        hint = " (pip install 'llada-sdk[onnx]')" if chosen == "onnx" else ""
        raise ValueError(f"`backend` must be one of {known}, got {backend!r}{hint}")
    plugin = found[chosen]
    for name in backend_options:
        owners = [n for n, p in found.items() if p.options is not None and name in p.options.model_fields]
        if owners and chosen not in owners:
            raise TypeError(
                f"`{name}` is a {'/'.join(owners)}-backend option; this model loads with the {chosen} backend"
            )
    options = plugin.check_options(backend_options)
    loaded, tokenizer = plugin.load(folder, device=device, dtype=dtype, ids=ids, **options)
    override_ids(loaded.config, ids.get("mask_token_id"), ids.get("eos_token_id"), ids.get("eot_token_id"))
    return loaded, tokenizer
