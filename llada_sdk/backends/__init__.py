"""Backends: the seam (``base``: ``MaskPredictor``, ``Backend``, ``BackendPlugin`` and the plugin registry),
the PyTorch backend (``torch_backend``, which imports torch) and its torch-free plugin record
(``torch_plugin``: options and loader). Other backends (onnx, third-party) are plugins of the
``llada_sdk.backends`` entry-point group."""
