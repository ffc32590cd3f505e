"""ONNX export of LLaDA models and the onnxruntime backend of the torch-free edge bundle.

- ``export(model, out, precision=..., graphs=...)`` (``llada export``): PyTorch -> an edge bundle
  directory (ONNX graphs, tokenizer files, the ``llada_onnx.json`` sidecar). Needs torch.
- ``load_bundle(folder)`` / ``LLaDA.from_pretrained(folder)``: the bundle on onnxruntime, with numpy,
  tokenizers and onnxruntime only (``pip install 'llada-sdk[onnx]'`` or ``[gpu]``).

Importing this package imports neither torch nor onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llada_export.providers import CPU, CUDA, ProviderUnavailableError, ShapeProfile, TensorRT
from llada_export.runtime import PLUGIN, OnnxBackend, is_bundle, load_bundle
from llada_export.sidecar import SIDECAR, Sidecar

if TYPE_CHECKING:
    from llada_export.exporter import ExportResult

__all__ = [
    "CPU",
    "CUDA",
    "PLUGIN",
    "SIDECAR",
    "OnnxBackend",
    "ProviderUnavailableError",
    "ShapeProfile",
    "Sidecar",
    "TensorRT",
    "export",
    "is_bundle",
    "load_bundle",
]


def export(model: Any = None, out: Any = "llada-onnx", **kwargs: Any) -> ExportResult:
    """PyTorch -> edge bundle; see ``llada_export.exporter.export`` (imports torch)."""
    from llada_export.exporter import export as _export

    return _export(model, out, **kwargs)
