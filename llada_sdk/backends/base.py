"""The backend seam: what the text API needs from whatever runs the network.

A ``Backend`` bundles the model's ``LLaDAConfig`` (ids, sizes, context window), the array namespace
its predictors speak (``ops``) and ``predictor(decode)``, which returns the ``MaskPredictor`` to use
for one decoding run. The PyTorch model (``torch_backend.py``) is one backend; the onnxruntime
session of ``llada_export`` is another, found through the ``llada_sdk.backends`` entry-point group,
so the core never imports it.

This module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from llada_sdk.decoding.arrays import Array, ArrayOps

if TYPE_CHECKING:
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.decoding.engine import DecodeConfig


@runtime_checkable
class MaskPredictor(Protocol):
    """``(input_ids [B, L] int64, attention_mask [B, L] | None) -> logits [B, L, V]``.

    A *fused* predictor returns ``(x0 [B, L] int64, confidence [B, L] float)`` instead: the greedy
    candidate of every position and its softmax probability, the EOS/EOT rules of the ``DecodeConfig``
    it was made for already applied (e.g. an exported graph with the policy inside).

    Optionally ``forward_unpadded(input_ids, attention_mask)``: the same output where the mask keeps a
    position, anything where it does not, so that the work of padded positions can be skipped (the
    step batcher calls it on rows it padded itself; ``LLaDAModel`` has one).
    """

    def __call__(self, input_ids: Array, attention_mask: Array | None = None) -> Array | tuple[Array, Array]: ...


@runtime_checkable
class StepMaskPredictor(MaskPredictor, Protocol):
    """A fused predictor that also runs a whole budgeted step itself, so that a device backend can
    keep the canvas on its device between steps (the host sends ``k``, never the canvas).

    ``commit_step(x, attention_mask, k, end)`` does what the engine would with this predictor's
    ``(x0, confidence)``: per row, the ``k[row]`` most confident masked positions left of ``end``
    (ties: the lower index) take their candidate. It writes them into ``x`` in place and returns the
    committed positions, bool ``[B, L]``. The engine calls it only for budgeted steps without a cache,
    CFG or logits processor; everything else goes through ``__call__``.
    """

    def commit_step(self, x: Array, attention_mask: Array | None, k: Array, end: int) -> Array: ...


@runtime_checkable
class CachedMaskPredictor(MaskPredictor, Protocol):
    """A predictor with Fast-dLLM's approximate KV cache (``cache="prefix"|"dual"``).

    ``forward_cached(ids, None, 0)`` runs the whole canvas and returns its logits and the per-layer
    keys/values; ``forward_cached(segment, past, start)`` runs canvas positions ``start .. start+n``
    against ``past`` and returns the segment's logits (and keys/values the engine ignores).
    """

    def forward_cached(self, input_ids: Array, past: Any = None, start: int = 0) -> tuple[Array, Any]: ...


@runtime_checkable
class Backend(Protocol):
    """What ``LLaDA`` holds: a config, an array namespace and predictors.

    ``name`` is the backend's short name (``"torch"``, ``"onnxruntime"``); ``config`` the model's sizes,
    special ids and context window; ``ops`` the namespace of the arrays its predictors take and return.
    """

    name: str
    config: LLaDAConfig
    ops: ArrayOps

    def predictor(self, decode: DecodeConfig | None = None, *, logits: bool = False) -> MaskPredictor:
        """The predictor for a run with these settings (``None``: plain logits, e.g. for scoring).

        A backend may return a fused predictor when ``decode`` allows it; ``logits=True`` asks for one
        that returns logits (a caller that edits them, e.g. a logits processor), cached if
        ``decode.cache`` says so."""
        ...

    def asarray(self, data: Any) -> Array:
        """Token ids (nested lists of ints) as an int64 array on the backend's device."""
        ...

    def info(self) -> dict[str, Any]:
        """What runs where: e.g. ``{"backend": "torch", "device": "cpu", "dtype": "float32"}``."""
        ...


class BackendOptionError(ValueError):
    """A bad value of a backend option; ``option`` names it (the CLI maps it to its flag)."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class BackendPlugin:
    """A backend: ``detect(folder)`` says whether the folder is this backend's format;
    ``load(folder, *, device, dtype, ids, **options)`` returns a ``Backend`` and the tokenizer;
    ``options`` is the pydantic model of the loader's own options (the ``llada`` command builds its
    backend flags from it); ``summary`` is a line for ``--backend``'s help. Third-party backends are
    entry points of the ``llada_sdk.backends`` group."""

    name: str
    detect: Callable[[Path], bool]
    load: Callable[..., tuple[Backend, Any]]
    options: type[BaseModel] | None = None
    summary: str = ""

    def check_options(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` validated by ``options`` (the defaults filled in).

        Raises:
            TypeError: an option this backend does not take (naming it and the ones it takes).
            ValueError: a bad value (naming the option and the rule).
        """
        fields = list(self.options.model_fields) if self.options is not None else []
        unknown = sorted(set(values) - set(fields))
        if unknown:
            takes = ", ".join(f"`{f}`" for f in fields) if fields else "no options"
            raise TypeError(f"unexpected keyword arguments for the {self.name} backend: {unknown} (it takes {takes})")
        if self.options is None:
            return {}
        try:
            return self.options.model_validate(values).model_dump()
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            if err["type"] == "bool_type":
                raise TypeError(f"`{where}` must be True or False, got {err.get('input')!r}") from exc
            message = f"`{where}` ({self.name} backend): {err['msg']}, got {err.get('input')!r}"
            if err["type"].endswith("_type"):
                raise TypeError(message) from exc
            raise BackendOptionError(message, where) from exc


_REGISTERED: dict[str, BackendPlugin] = {}


def register(plugin: BackendPlugin) -> None:
    """Make a backend available by name (plugins installed as entry points are found on their own)."""
    _REGISTERED[plugin.name] = plugin


def plugins() -> dict[str, BackendPlugin]:
    """Registered backends plus those installed under the ``llada_sdk.backends`` entry-point group."""
    found = dict(_REGISTERED)
    from llada_sdk._deps import installed_entry_points

    for ep in installed_entry_points("llada_sdk.backends"):
        if ep.name not in found:
            try:
                plugin = ep.load()
            except ImportError:
                continue  # its extra is not installed; loading it by name says which
            if isinstance(plugin, BackendPlugin):
                found[ep.name] = plugin
    return found
