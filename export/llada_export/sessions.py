"""onnxruntime sessions of a bundle's graphs: created once per graph, IO binding on a GPU provider so
that device buffers (the KV cache, the canvas of the device loop) stay on the device, and the providers
actually in use read back from each session. Imports onnxruntime when a session is made, never torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llada_export.providers import Provider, ProviderUnavailableError, short_name, to_ort
from llada_export.sidecar import SIDECAR, GraphSpec
from llada_sdk._deps import require
from llada_sdk.errors import CheckpointError

ON_DEVICE = ("cuda", "tensorrt")
"""Providers whose buffers live on the GPU."""


def ort_module() -> Any:
    """onnxruntime, or an error naming the `onnx` extra."""
    return require("onnxruntime", "onnx")


class Session:
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
        ort = ort_module()
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
        self.on_device = self.providers[0] in ON_DEVICE
        self.device_id = 0
        self.cuda_graph = False
        for p in providers:
            if p.kind == self.providers[0] and p.kind in ON_DEVICE:
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
        return ort_module().OrtValue.ortvalue_from_numpy(value, "cuda", self.device_id)

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
        ort = ort_module()
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
        ort = ort_module()
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
