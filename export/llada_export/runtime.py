"""The onnxruntime backend: an edge bundle (``llada export``) as a ``llada_sdk.backend.Backend``.

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

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llada_export.providers import (
    CUDA,
    Provider,
    ProviderSpec,
    ProviderUnavailableError,
    parse_providers,
    short_name,
    to_ort,
)
from llada_export.sidecar import SIDECAR, GraphSpec, Sidecar
from llada_sdk._deps import require
from llada_sdk.arrays import NUMPY, ArrayOps
from llada_sdk.backend import BackendPlugin
from llada_sdk.errors import CheckpointError, TokenizerError

if TYPE_CHECKING:
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.engine import DecodeConfig
    from llada_sdk.tokenizer import Tokenizer

_ON_DEVICE = ("cuda", "tensorrt")
_PRECISION_DTYPES = {"fp32": ("float32", "fp32"), "fp16": ("float16", "fp16"), "int8": ("int8", "qint8")}


def _ort() -> Any:
    return require("onnxruntime", "onnx")


class _Session:
    """One graph's onnxruntime session, created once; ``run`` uses IO binding on a GPU provider."""

    _graph_ids = itertools.count(1)

    def __init__(
        self,
        path: Path,
        spec: GraphSpec,
        providers: Sequence[Provider],
        threads: int | None,
        strict: bool,
    ) -> None:
        ort = _ort()
        so = ort.SessionOptions()
        so.log_severity_level = 3  # errors only; fallbacks are reported through get_providers()
        if threads is not None:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        requested = to_ort(providers, ort.get_available_providers())
        try:
            self.sess = ort.InferenceSession(str(path), so, providers=requested)
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{path}: onnxruntime cannot load this graph ({msg[:300]})") from exc
        self.path, self.spec = path, spec
        self.providers = [short_name(p) for p in self.sess.get_providers()]
        wanted = providers[0].kind if providers else "cpu"
        if strict and self.providers[0] != wanted:
            raise ProviderUnavailableError(
                f"requested execution provider {wanted!r} for {path.name} but onnxruntime uses "
                f"{self.providers[0]!r} (available in this onnxruntime build: {ort.get_available_providers()}); "
                "install the matching onnxruntime-gpu / CUDA / TensorRT libraries or pass strict=False"
            )
        self.on_device = self.providers[0] in _ON_DEVICE
        self.device_id = 0
        self.cuda_graph = False
        for p in providers:
            if p.kind == self.providers[0] and p.kind in _ON_DEVICE:
                self.device_id = p.device_id  # type: ignore[union-attr]
                self.cuda_graph = bool(p.cuda_graph)  # type: ignore[union-attr]
        self.input_names = [i.name for i in self.sess.get_inputs()]
        self.output_names = [o.name for o in self.sess.get_outputs()]
        want_in = [t.name for t in spec.inputs]
        want_out = [t.name for t in spec.outputs]
        if self.input_names != want_in or self.output_names != want_out:
            raise CheckpointError(
                f"{path}: graph inputs {self.input_names} / outputs {self.output_names} do not match "
                f"{SIDECAR} ({want_in} / {want_out})"
            )
        self._static: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any], Any]] = {}

    def to_device(self, value: np.ndarray) -> Any:
        """``value`` where this session's inputs live: an OrtValue on a GPU provider, else itself."""
        if not self.on_device:
            return value
        return _ort().OrtValue.ortvalue_from_numpy(value, "cuda", self.device_id)

    def output_dims(self, name: str) -> list[Any]:
        return list(next(o.shape for o in self.sess.get_outputs() if o.name == name))

    def run(self, feeds: dict[str, Any], keep: Sequence[str] = ()) -> list[Any]:
        """Run with ``feeds`` (numpy arrays, or device OrtValues from an earlier ``keep``). Outputs are
        numpy arrays, except those named in ``keep``, which stay on the device as OrtValues (numpy on
        the CPU provider)."""
        if not self.on_device:
            return list(self.sess.run(self.output_names, feeds))
        if self.cuda_graph and not keep:
            return self._run_graph(feeds)
        ort = _ort()
        binding = self.sess.io_binding()
        for name, value in feeds.items():
            if isinstance(value, np.ndarray):
                value = ort.OrtValue.ortvalue_from_numpy(value, "cuda", self.device_id)
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, "cuda" if name in keep else "cpu", self.device_id if name in keep else 0)
        self.sess.run_with_iobinding(binding)
        outs = binding.get_outputs()
        return [o if name in keep else o.numpy() for name, o in zip(self.output_names, outs)]

    def _run_graph(self, feeds: dict[str, Any]) -> list[Any]:
        """CUDA graphs: one captured graph per input shape, with fixed device buffers (the canvas is
        written into its buffer in place; the outputs are read from theirs)."""
        ort = _ort()
        key = tuple((n, v.shape) for n, v in feeds.items())
        if key not in self._static:
            inputs = {n: ort.OrtValue.ortvalue_from_numpy(v, "cuda", self.device_id) for n, v in feeds.items()}
            binding = self.sess.io_binding()
            for n, v in inputs.items():
                binding.bind_ortvalue_input(n, v)
            # a captured graph replays fixed addresses: outputs get preallocated buffers too
            sizes = {d: n for t in self.spec.inputs for d, n in zip(t.dims, feeds[t.name].shape) if isinstance(d, str)}
            for out in self.spec.outputs:
                shape = [sizes[d] if isinstance(d, str) else d for d in out.dims]
                buffer = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.dtype(out.dtype), "cuda", self.device_id)
                binding.bind_ortvalue_output(out.name, buffer)
            options = ort.RunOptions()
            options.add_run_config_entry("gpu_graph_id", str(next(self._graph_ids)))
            self._static[key] = (inputs, {"binding": binding}, options)
        inputs, state, options = self._static[key]
        for n, v in feeds.items():
            inputs[n].update_inplace(v)
        self.sess.run_with_iobinding(state["binding"], options)
        return [o.numpy() for o in state["binding"].get_outputs()]


def _ids(input_ids: Any) -> np.ndarray:
    ids = np.ascontiguousarray(input_ids, dtype=np.int64)
    if ids.ndim != 2:
        raise ValueError(f"`input_ids` must have shape [batch, length], got {ids.shape}")
    return ids


def _mask(attention_mask: Any, ids: np.ndarray) -> np.ndarray:
    if attention_mask is None:
        return np.ones(ids.shape, dtype=np.int64)
    am = np.ascontiguousarray(attention_mask, dtype=np.int64)
    if am.shape != ids.shape:
        raise ValueError(f"`attention_mask` must have the shape of `input_ids` {ids.shape}, got {am.shape}")
    return am


class LogitsPredictor:
    """``(input_ids, attention_mask) -> logits`` float32 ``[B, L, V]`` (the ``logits`` graph)."""

    fused = False

    def __init__(self, session: _Session) -> None:
        self.session = session

    def __call__(self, input_ids: Any, attention_mask: Any = None) -> np.ndarray:
        ids = _ids(input_ids)
        (logits,) = self.session.run({"input_ids": ids, "attention_mask": _mask(attention_mask, ids)})
        return np.asarray(logits, dtype=np.float32)


class GreedyPredictor:
    """``(input_ids, attention_mask) -> (x0 int64 [B, L], confidence float32 [B, L])`` (the fused
    ``greedy`` graph: the model and the torch policy's candidate choice, traced together)."""

    fused = True

    def __init__(self, session: _Session) -> None:
        self.session = session

    def __call__(self, input_ids: Any, attention_mask: Any = None) -> tuple[np.ndarray, np.ndarray]:
        ids = _ids(input_ids)
        x0, conf = self.session.run({"input_ids": ids, "attention_mask": _mask(attention_mask, ids)})
        return np.asarray(x0, dtype=np.int64), np.asarray(conf, dtype=np.float32)


def _host(value: Any) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else np.asarray(value.numpy())


class StepPredictor(GreedyPredictor):
    """The ``greedy`` graph plus the ``commit`` graph: a ``StepMaskPredictor`` whose budgeted steps
    run on the device. The canvas goes to the device once and then stays there: each step feeds the
    previous step's ``next_ids`` back (device to device); the host sends ``k`` and ``end`` and reads
    ``next_ids`` and ``chosen`` back for its events. The canvas is sent again only when the host's
    copy changed in between (a new call, or the engine's early-stop fill); ``uploads`` counts how often.
    """

    def __init__(self, session: _Session, commit: _Session) -> None:
        super().__init__(session)
        self.commit = commit
        self._canvas: tuple[np.ndarray, Any] | None = None  # (host copy, device value) after the last step
        self._mask: tuple[np.ndarray, Any] | None = None
        self.uploads = 0

    def commit_step(self, x: Any, attention_mask: Any, k: Any, end: int) -> np.ndarray:
        ids = _ids(x)
        # one read of the shared state per call: another thread may replace it meanwhile (the device value
        # is used only together with the host copy it was checked against)
        last, last_mask = self._canvas, self._mask
        if last is not None and last[0].shape == ids.shape and np.array_equal(last[0], ids):
            canvas = last[1]
        else:
            canvas = self.session.to_device(ids)
            self.uploads += 1
        am = _mask(attention_mask, ids)
        if last_mask is not None and last_mask[0].shape == am.shape and np.array_equal(last_mask[0], am):
            mask = last_mask[1]
        else:
            mask = self.session.to_device(am)
            self._mask = (am, mask)
        x0, conf = self.session.run({"input_ids": canvas, "attention_mask": mask}, keep=["x0", "confidence"])
        feeds = {
            "input_ids": canvas,
            "x0": x0,
            "confidence": conf,
            "k": np.ascontiguousarray(k, dtype=np.int64).reshape(-1),
            "end": np.array(end, dtype=np.int64),
        }
        nxt, chosen = self.commit.run(feeds, keep=["next_ids"])
        host = _host(nxt)
        x[...] = host
        self._canvas = (host.copy(), nxt)
        return np.asarray(chosen, dtype=np.bool_)


class CachedPredictor:
    """Fast-dLLM's approximate KV caches on two graphs: ``cache_open*`` runs a whole canvas and returns
    its keys/values ``[layers, B, kv_heads, L, head_dim]``; ``cache_step*`` runs canvas positions
    ``start .. start+n`` against them. ``fused`` graphs return ``(x0, confidence)`` instead of logits.
    """

    def __init__(self, open_session: _Session, step_session: _Session, plain: Any, fused: bool) -> None:
        self.open, self.step, self.plain, self.fused = open_session, step_session, plain, fused

    def __call__(self, input_ids: Any, attention_mask: Any = None) -> Any:
        return self.plain(input_ids, attention_mask)

    def _out(self, outs: list[Any]) -> Any:
        if self.fused:
            return np.asarray(outs[0], dtype=np.int64), np.asarray(outs[1], dtype=np.float32)
        return np.asarray(outs[0], dtype=np.float32)

    def forward_cached(self, input_ids: Any, past: Any = None, start: int = 0) -> tuple[Any, Any]:
        """``past=None``: the block-opening pass over the whole canvas (``start`` must be 0); otherwise
        the segment at canvas positions ``start ..`` against ``past``. Returns ``(out, past)``."""
        ids = _ids(input_ids)
        if past is None:
            if start != 0:
                raise ValueError(f"`start` must be 0 without a cache, got {start}")
            n_out = 2 if self.fused else 1
            outs = self.open.run({"input_ids": ids}, keep=self.open.output_names[n_out:])
            return self._out(outs[:n_out]), (outs[n_out], outs[n_out + 1])
        keys, values = past
        total = keys.shape()[3] if callable(getattr(keys, "shape", None)) else keys.shape[3]
        if start < 0 or start + ids.shape[1] > total:
            raise ValueError(f"segment [{start}, {start + ids.shape[1]}) is outside the cached length {total}")
        feeds = {"input_ids": ids, "past_keys": keys, "past_values": values, "start": np.array(start, dtype=np.int64)}
        return self._out(self.step.run(feeds)), past


class OnnxBackend:
    """An edge bundle run by onnxruntime. Build it with ``load_bundle(folder)`` or
    ``LLaDA.from_pretrained(folder)``.

    Attributes:
        name: ``"onnxruntime"``.
        config: the model's ``LLaDAConfig``, from the sidecar.
        ops: ``llada_sdk.arrays.NUMPY``: predictors take and return numpy arrays.
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
        self._sessions: dict[str, _Session] = {}
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

    def session(self, graph: str) -> _Session:
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
            session = _Session(self.folder / spec.file, spec, providers, self.threads, self.strict)
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
        device = "cpu" if used[0] not in _ON_DEVICE else f"cuda:{self._primary.device_id}"
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
            "onnxruntime": str(_ort().__version__),
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
    return backend, tokenizer


PLUGIN = BackendPlugin(name="onnx", detect=is_bundle, load=load_bundle)
