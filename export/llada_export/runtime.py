"""The onnxruntime backend: an edge bundle (``llada export``) as a ``llada_sdk.backends.base.Backend``.

``OnnxBackend`` speaks numpy (``ops = NUMPY``): its predictors take ``input_ids`` int64 ``[B, L]`` and
an optional ``attention_mask`` ``[B, L]`` and return float32 logits ``[B, L, V]``, or, from the fused
greedy graphs, ``(x0 int64 [B, L], confidence float32 [B, L])`` so that the host loop moves integers
instead of logits. The cached graphs give Fast-dLLM's prefix/dual caches (``forward_cached``).

Sessions are created once per graph and reused. On CUDA/TensorRT the inputs are uploaded into device
buffers and outputs bound with IO binding: keys/values of the cache stay on the device between the
block-opening pass and the block passes, and only ids, candidates and confidences cross to the host.
The providers actually used are read back from each session (onnxruntime-gpu falls back to the CPU
silently); ``strict=True`` raises when the first requested provider is not the one used.

This module must not import torch, even indirectly: the bundle runs with numpy, tokenizers and
onnxruntime only. onnxruntime itself is imported when a bundle is loaded, not on import, so the
plugin entry point can be listed without the ``onnx`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llada_export.predictors import CachedPredictor, GreedyPredictor, LogitsPredictor, StepPredictor
from llada_export.providers import (
    CUDA,
    Provider,
    ProviderSpec,
    parse_providers,
)
from llada_export.sessions import ON_DEVICE, Session, ort_module
from llada_export.sidecar import SIDECAR, Sidecar
from llada_sdk.backends.base import BackendPlugin
from llada_sdk.decoding.arrays import NUMPY, ArrayOps
from llada_sdk.errors import CheckpointError, TokenizerError

if TYPE_CHECKING:
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.decoding.engine import DecodeConfig
    from llada_sdk.tokenizer import Tokenizer

_PRECISION_DTYPES = {"fp32": ("float32", "fp32"), "fp16": ("float16", "fp16"), "int8": ("int8", "qint8")}


class OnnxBackend:
    """An edge bundle run by onnxruntime. Build it with ``load_bundle(folder)`` or
    ``LLaDA.from_pretrained(folder)``.

    Attributes:
        name: ``"onnxruntime"``.
        config: the model's ``LLaDAConfig``, from the sidecar.
        ops: ``llada_sdk.decoding.arrays.NUMPY``: predictors take and return numpy arrays.
        sidecar: the validated ``llada_onnx.json``.
        folder: the bundle directory.
    """

    name = "onnxruntime"
    ops: ArrayOps = NUMPY

    def __init__(
        self,
        folder: Path,
        sidecar: Sidecar,
        providers: Sequence[Provider],
        *,
        strict: bool = False,
        threads: int | None = None,
        device_loop: bool | None = None,
    ) -> None:
        self.folder = folder
        self.sidecar = sidecar
        self.config: LLaDAConfig = sidecar.llada_config()
        self.requested = list(providers)
        self.strict = strict
        self.threads = threads
        self._sessions: dict[str, Session] = {}
        self._predictors: dict[str, Any] = {}
        primary = "greedy" if "greedy" in sidecar.graphs else next(iter(sidecar.graphs))
        self._primary = self.session(primary)  # fail at load, not at the first call
        if device_loop is not None and not isinstance(device_loop, bool):
            raise TypeError(f"`device_loop` must be None, True or False, got {device_loop!r}")
        # budgeted greedy steps commit on the device (the `commit` graph): by default on a GPU provider,
        # not with CUDA graphs (a captured graph replays fixed buffers; the loop binds new ones per step)
        self.device_loop = (
            self._primary.on_device and not self._primary.cuda_graph if device_loop is None else device_loop
        )

    # -- sessions -------------------------------------------------------------------------------

    def has(self, graph: str) -> bool:
        return graph in self.sidecar.graphs

    def session(self, graph: str) -> Session:
        """The (cached) session of one graph of the bundle."""
        if graph not in self._sessions:
            if graph not in self.sidecar.graphs:
                raise ValueError(
                    f"the bundle {self.folder} has no {graph!r} graph (it has {sorted(self.sidecar.graphs)}); "
                    f"re-export with `llada export ... --graphs` including it"
                )
            spec = self.sidecar.graphs[graph]
            providers = self.requested
            if graph == "commit":  # a few integer ops: CUDA instead of a TensorRT engine (and its shape profile)
                swapped = [CUDA(device_id=p.device_id) if p.kind == "tensorrt" else p for p in self.requested]  # type: ignore[union-attr]
                providers = [p for i, p in enumerate(swapped) if p.kind not in {q.kind for q in swapped[:i]}]
            session = Session(self.folder / spec.file, spec, providers, self.threads, self.strict)
            for out in spec.outputs:
                if out.name == "logits":
                    vocab = session.output_dims("logits")[-1]
                    if vocab != self.config.embedding_size:
                        raise CheckpointError(
                            f"{self.folder / spec.file}: logits have {vocab} entries per position but the "
                            f"sidecar's `embedding_size` is {self.config.embedding_size} (vocabulary mismatch)"
                        )
            self._sessions[graph] = session
        return self._sessions[graph]

    # -- the Backend protocol -------------------------------------------------------------------

    def fused_ok(self, decode: DecodeConfig | None, graph: str = "greedy") -> bool:
        """Whether the fused greedy graph gives exactly what the policies would for ``decode``."""
        if decode is None or not self.has(graph):
            return False
        policy = self.sidecar.graphs[graph].policy
        if policy is None:
            return False
        if decode.temperature != 0 or decode.cfg_scale > 0 or decode.remasking != "low_confidence":
            return False
        if decode.rule is not None and decode.rule.needs_logits:  # fused graphs return candidates, not logits
            return False
        if (
            decode.logits_eos_inf != policy.logits_eos_inf
            or decode.confidence_eos_eot_inf != policy.confidence_eos_eot_inf
        ):
            return False
        if (decode.logits_eos_inf or decode.confidence_eos_eot_inf) and (
            decode.eos_id != policy.eos_id or decode.eot_id != policy.eot_id
        ):
            return False
        # reference_compat changes the policy only with confidence_eos_eot_inf (which ids leave the
        # softmax) and for non-float32 logits (softmax dtype)
        compat_matters = policy.confidence_eos_eot_inf or self.sidecar.precision == "fp16"
        return not (compat_matters and decode.reference_compat != policy.reference_compat)

    def predictor(self, decode: DecodeConfig | None = None, *, logits: bool = False) -> Any:
        """The predictor for a run with ``decode`` (None: plain logits, e.g. for scoring).

        The fused greedy graphs are used when the settings allow it and ``logits`` is False (a caller
        that edits logits, e.g. a logits processor, passes ``logits=True``); ``decode.cache``
        ("prefix"/"dual") gives a ``CachedMaskPredictor``.

        Raises:
            ValueError: the bundle lacks the graph these settings need (naming it and ``--graphs``).
        """
        cache = getattr(decode, "cache", None)
        if cache is not None:
            if cache not in ("prefix", "dual"):
                raise ValueError(f"`cache` must be None, 'prefix' or 'dual', got {cache!r}")
            fused = not logits and self.fused_ok(decode, "cache_open_greedy") and self.has("cache_step_greedy")
            return self.cached_predictor(fused, self._plain(None if logits else decode))
        return self._plain(None if logits else decode)

    def asarray(self, data: Any) -> np.ndarray:
        """Token ids (nested lists of ints) as an int64 numpy array."""
        return np.asarray(data, dtype=np.int64)

    def cached_predictor(self, fused: bool, plain: Any = None) -> CachedPredictor:
        """The cached predictor on the ``cache_open``/``cache_step`` graphs (``fused``: their greedy
        twins); ``plain`` serves uncached calls (default: the logits predictor)."""
        suffix = "_greedy" if fused else ""
        return CachedPredictor(
            self.session("cache_open" + suffix),
            self.session("cache_step" + suffix),
            plain if plain is not None else self._plain(None),
            fused,
        )

    def _loop_on_device(self) -> bool:
        """Whether budgeted greedy steps run the ``commit`` graph: asked for (``device_loop``), in the
        bundle, and on the device the ``greedy`` graph runs on."""
        if not (self.device_loop and self.has("commit") and self.has("greedy")):
            return False
        greedy, commit = self.session("greedy"), self.session("commit")
        return greedy.on_device == commit.on_device and greedy.device_id == commit.device_id

    def _plain(self, decode: DecodeConfig | None) -> Any:
        if self.fused_ok(decode) and self._loop_on_device():
            if "step" not in self._predictors:
                self._predictors["step"] = StepPredictor(self.session("greedy"), self.session("commit"))
            return self._predictors["step"]
        if self.fused_ok(decode):
            if "greedy" not in self._predictors:
                self._predictors["greedy"] = GreedyPredictor(self.session("greedy"))
            return self._predictors["greedy"]
        if "logits" not in self._predictors:
            self._predictors["logits"] = LogitsPredictor(self.session("logits"))
        return self._predictors["logits"]

    def info(self) -> dict[str, Any]:
        """What runs where: backend, providers in use (read from the session), precision, bundle."""
        used = self._primary.providers
        device = "cpu" if used[0] not in ON_DEVICE else f"cuda:{self._primary.device_id}"
        return {
            "backend": self.name,
            "providers": used,
            "requested_providers": [p.kind for p in self.requested],
            "device": device,
            "dtype": _PRECISION_DTYPES[self.sidecar.precision][0],
            "precision": self.sidecar.precision,
            "bundle": str(self.folder),
            "graphs": sorted(self.sidecar.graphs),
            "opset": self.sidecar.opset,
            "device_loop": self._loop_on_device(),
            "onnxruntime": str(ort_module().__version__),
        }


def is_bundle(folder: Path) -> bool:
    """Whether ``folder`` is an llada-onnx edge bundle (has the sidecar)."""
    return (Path(folder) / SIDECAR).is_file()


def _check_files(folder: Path, sidecar: Sidecar) -> None:
    for name, spec in sidecar.graphs.items():
        files = [spec.file] + ([spec.external_data] if spec.external_data else [])
        total = 0
        for file in files:
            if Path(file).name != file or file in ("", ".", ".."):
                raise CheckpointError(
                    f"{folder / SIDECAR}: graph {name!r} names the file {file!r}; only plain file names"
                )
            path = folder / file
            if not path.is_file():
                raise CheckpointError(f"{path}: missing (graph {name!r} of {folder / SIDECAR}); re-export the bundle")
            total += path.stat().st_size
        if total != spec.bytes:
            raise CheckpointError(
                f"{folder / spec.file}: {total} bytes with its external data, but {SIDECAR} records {spec.bytes} "
                "(a truncated or replaced file); re-export the bundle"
            )


def _check_tokenizer(folder: Path, tok: Tokenizer, cfg: LLaDAConfig) -> None:
    assert cfg.embedding_size is not None
    if tok.vocab_size > cfg.embedding_size:
        raise CheckpointError(
            f"{folder / 'tokenizer.json'}: {tok.vocab_size} tokens, but the graphs have {cfg.embedding_size} "
            "embedding rows (vocabulary mismatch)"
        )
    if tok.special.mask is not None and tok.special.mask != cfg.mask_token_id:
        raise CheckpointError(
            f"{folder / 'tokenizer.json'}: <|mdm_mask|> is id {tok.special.mask}, but {SIDECAR} says "
            f"mask id {cfg.mask_token_id} (vocabulary mismatch)"
        )


def load_bundle(
    folder: str | Path,
    *,
    device: str | None = None,
    dtype: str | None = None,
    providers: ProviderSpec | Sequence[ProviderSpec] | None = None,
    strict: bool = False,
    threads: int | None = None,
    device_loop: bool | None = None,
    **ignored: Any,
) -> tuple[OnnxBackend, Tokenizer | None]:
    """Load an edge bundle: the backend and its tokenizer (None when the bundle has no tokenizer files).

    Args:
        folder: the bundle directory (with ``llada_onnx.json``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``; None lets ``providers`` (default TensorRT -> CUDA
            -> CPU, those the onnxruntime build has) decide.
        dtype: None, ``"auto"`` or the bundle's own precision (``float32``/``float16``/``int8``, or
            ``fp32``/``fp16``); a bundle holds one precision.
        providers: an ordered provider list (see ``llada_export.providers.parse_providers``).
        strict: raise ``ProviderUnavailableError`` when the first requested provider is not used.
        threads: onnxruntime intra-op threads (None: onnxruntime's default).
        device_loop: budgeted greedy steps run the bundle's ``commit`` graph, so the canvas stays on
            the device between steps (``StepPredictor``); None (default): on a GPU provider only, True:
            on the CPU provider too (same tokens), False: never.
        **ignored: loader options of other backends (e.g. ``revision``), accepted and unused, except
            ``compile=True`` / ``prepack=True`` (torch options: TypeError).

    Raises:
        CheckpointError: a missing, corrupt or mismatching file of the bundle (naming it).
        ValueError: an unknown ``device``, ``dtype`` or provider.
        MissingExtraError: onnxruntime is not installed (``pip install 'llada-sdk[onnx]'``).
    """
    from llada_sdk.tokenizer import Tokenizer

    for name in ("compile", "prepack"):
        if ignored.get(name):
            raise TypeError(f"`{name}` is a torch-backend option; onnxruntime optimises and packs the graph itself")
    folder = Path(folder).expanduser()
    sidecar = Sidecar.read(folder)
    if dtype is not None and str(dtype) != "auto":
        accepted = _PRECISION_DTYPES[sidecar.precision]
        if str(dtype).removeprefix("torch.") not in accepted:
            raise ValueError(
                f"`dtype` must be None, 'auto' or this bundle's precision {accepted[0]!r} "
                f"(an ONNX bundle holds one precision; export another with --precision), got {dtype!r}"
            )
    if providers is None and device is None:
        providers = sidecar.providers
    parsed = parse_providers(providers, None if providers is not None else device)
    _check_files(folder, sidecar)
    tokenizer = None
    if (folder / "tokenizer.json").is_file():
        try:
            tokenizer = Tokenizer.from_dir(folder)
        except TokenizerError as exc:
            raise CheckpointError(str(exc)) from exc  # it names the file
    backend = OnnxBackend(folder, sidecar, parsed, strict=strict, threads=threads, device_loop=device_loop)
    if tokenizer is not None:
        _check_tokenizer(folder, tokenizer, backend.config)
        tokenizer.context_window = backend.config.max_sequence_length  # bounds what is tokenized
    return backend, tokenizer


class OnnxOptions(BaseModel):
    """The onnx backend's own load options (``load_bundle``)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    providers: Any = Field(
        None,
        description="An execution provider to try, in order (tensorrt, cuda, cpu; repeatable). "
        "[default: tensorrt, cuda, cpu -- those the onnxruntime build has]",
        json_schema_extra={"cli_flag": "provider", "cli_multiple": True},  # `--provider NAME`, repeatable
    )
    strict: bool = Field(False, description="Fail when the first requested provider is not the one in use.")
    threads: int | None = Field(None, ge=1, description="onnxruntime intra-op threads.")
    device_loop: bool | None = Field(
        None,
        description="Keep the canvas on the device between greedy steps (the bundle's commit graph). "
        "[default: on a GPU provider only]",
    )


PLUGIN = BackendPlugin(
    name="onnx",
    detect=is_bundle,
    load=load_bundle,
    options=OnnxOptions,
    summary="onnxruntime on an exported bundle (llada export); TensorRT, CUDA or CPU, no torch",
)
