"""A small array namespace: the few operations the decode loop needs, on torch tensors or numpy arrays.

The policies (``policies.py``), the engine (``engine.py``) and the likelihood estimator are written once
against ``ArrayOps``; ``ops_for(x)`` picks the implementation from the array type. numpy is always
available; torch is imported only when a torch tensor is seen (so the edge bundle runs without it).

Each method is the namespace's primitive, not a policy: the policies themselves live in one place.
Both implementations follow the same rules where the libraries differ: top-k ties go to the lower
index, ``argmax`` ties to the first maximum, random draws come from the given generator (or the
library's global RNG when it is None, which is the reference's call order for torch).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

Array = Any  # a torch.Tensor or a numpy.ndarray; one run uses one kind throughout
Generator = Any  # torch.Generator | numpy.random.Generator | None


class ArrayOps:
    """The namespace interface. ``NumpyOps`` and ``TorchOps`` implement it."""

    name = "abstract"

    def asarray(self, data: Any, dtype: str = "int64", like: Array | None = None) -> Array:
        raise NotImplementedError

    def full(self, shape: tuple[int, ...], value: float, dtype: str, like: Array) -> Array:
        raise NotImplementedError

    def arange(self, start: int, stop: int, like: Array) -> Array:
        raise NotImplementedError

    def concat(self, arrays: list[Array], axis: int = 0) -> Array:
        raise NotImplementedError

    def copy(self, x: Array) -> Array:
        raise NotImplementedError

    def astype(self, x: Array, dtype: str) -> Array:
        raise NotImplementedError

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        raise NotImplementedError

    def exp(self, x: Array) -> Array:
        raise NotImplementedError

    def log(self, x: Array) -> Array:
        raise NotImplementedError

    def argmax(self, x: Array, axis: int) -> Array:
        raise NotImplementedError

    def softmax(self, x: Array, axis: int = -1) -> Array:
        raise NotImplementedError

    def log_softmax(self, x: Array, axis: int = -1) -> Array:
        raise NotImplementedError

    def take_last(self, x: Array, index: Array) -> Array:
        """``x[..., index]`` elementwise: ``[B, L, V]`` and ``[B, L]`` -> ``[B, L]``."""
        raise NotImplementedError

    def topk_mask(self, scores: Array, k: int) -> Array:
        """Bool mask of the ``k`` largest entries of the 1-D ``scores`` (ties: lower index first)."""
        raise NotImplementedError

    def rand(self, shape: tuple[int, ...], dtype: str, like: Array, generator: Generator = None) -> Array:
        raise NotImplementedError

    def randint(self, low: int, high: int, like: Array, generator: Generator = None) -> int:
        raise NotImplementedError

    def randperm(self, n: int, like: Array, generator: Generator = None) -> Array:
        raise NotImplementedError

    def nonzero(self, x: Array) -> list[int]:
        """Indices of the True entries of a 1-D bool array, as Python ints."""
        raise NotImplementedError

    def linspace(self, start: float, stop: float, num: int, like: Array) -> Array:
        """float32 ``[num]`` evenly spaced from ``start`` to ``stop``."""
        raise NotImplementedError

    def round(self, x: Array) -> Array:
        """Round half to even (both libraries' rule)."""
        raise NotImplementedError

    def generator(self, seed: int, like: Array) -> Generator:
        """A seeded RNG for arrays like ``like`` (``torch.Generator`` on its device, or numpy's)."""
        raise NotImplementedError

    def no_grad(self) -> AbstractContextManager[Any]:
        """Context for a predictor call and the commit after it (torch: inference mode)."""
        return nullcontext()


_DTYPES = {"int64": np.int64, "float32": np.float32, "float64": np.float64, "bool": np.bool_}


class NumpyOps(ArrayOps):
    """numpy implementation (the edge bundle's, and any backend that speaks numpy)."""

    name = "numpy"

    def asarray(self, data: Any, dtype: str = "int64", like: Array | None = None) -> Array:
        return np.asarray(data, dtype=_DTYPES[dtype])

    def full(self, shape: tuple[int, ...], value: float, dtype: str, like: Array) -> Array:
        return np.full(shape, value, dtype=_DTYPES[dtype])

    def arange(self, start: int, stop: int, like: Array) -> Array:
        return np.arange(start, stop, dtype=np.int64)

    def concat(self, arrays: list[Array], axis: int = 0) -> Array:
        return np.concatenate(arrays, axis=axis)

    def copy(self, x: Array) -> Array:
        return np.array(x, copy=True)

    def astype(self, x: Array, dtype: str) -> Array:
        return x.astype(_DTYPES[dtype], copy=False)

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        return np.where(cond, a, b)

    def exp(self, x: Array) -> Array:
        return np.exp(x)

    def log(self, x: Array) -> Array:
        return np.log(x)

    def argmax(self, x: Array, axis: int) -> Array:
        return np.argmax(x, axis=axis)

    def softmax(self, x: Array, axis: int = -1) -> Array:
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    def log_softmax(self, x: Array, axis: int = -1) -> Array:
        shifted = x - np.max(x, axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    def take_last(self, x: Array, index: Array) -> Array:
        return np.take_along_axis(x, index[..., None], axis=-1)[..., 0]

    def topk_mask(self, scores: Array, k: int) -> Array:
        out = np.zeros(scores.shape, dtype=np.bool_)
        out[np.argsort(-scores, kind="stable")[:k]] = True
        return out

    def rand(self, shape: tuple[int, ...], dtype: str, like: Array, generator: Generator = None) -> Array:
        rng = generator if generator is not None else np.random
        return rng.random(shape).astype(_DTYPES[dtype], copy=False)

    def randint(self, low: int, high: int, like: Array, generator: Generator = None) -> int:
        rng = generator if generator is not None else np.random.default_rng()
        return int(rng.integers(low, high))

    def randperm(self, n: int, like: Array, generator: Generator = None) -> Array:
        rng = generator if generator is not None else np.random.default_rng()
        return rng.permutation(n)

    def nonzero(self, x: Array) -> list[int]:
        return [int(i) for i in np.flatnonzero(x)]

    def linspace(self, start: float, stop: float, num: int, like: Array) -> Array:
        return np.linspace(start, stop, num, dtype=np.float32)

    def round(self, x: Array) -> Array:
        return np.round(x)

    def generator(self, seed: int, like: Array) -> Generator:
        return np.random.default_rng(seed)


class TorchOps(ArrayOps):
    """torch implementation; arrays stay on the device of ``like``."""

    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self._dtypes = {"int64": torch.int64, "float32": torch.float32, "float64": torch.float64, "bool": torch.bool}

    def _device(self, like: Array | None) -> Any:
        return None if like is None else like.device

    def asarray(self, data: Any, dtype: str = "int64", like: Array | None = None) -> Array:
        return self.torch.as_tensor(data, dtype=self._dtypes[dtype], device=self._device(like))

    def full(self, shape: tuple[int, ...], value: float, dtype: str, like: Array) -> Array:
        return self.torch.full(shape, value, dtype=self._dtypes[dtype], device=like.device)

    def arange(self, start: int, stop: int, like: Array) -> Array:
        return self.torch.arange(start, stop, device=like.device)

    def concat(self, arrays: list[Array], axis: int = 0) -> Array:
        return self.torch.cat(arrays, dim=axis)

    def copy(self, x: Array) -> Array:
        return x.clone()

    def astype(self, x: Array, dtype: str) -> Array:
        return x.to(self._dtypes[dtype])

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        return self.torch.where(cond, a, b)

    def exp(self, x: Array) -> Array:
        return x.exp()

    def log(self, x: Array) -> Array:
        return self.torch.log(x)

    def argmax(self, x: Array, axis: int) -> Array:
        return x.argmax(dim=axis)

    def softmax(self, x: Array, axis: int = -1) -> Array:
        return self.torch.softmax(x, dim=axis)

    def log_softmax(self, x: Array, axis: int = -1) -> Array:
        return self.torch.log_softmax(x, dim=axis)

    def take_last(self, x: Array, index: Array) -> Array:
        return self.torch.gather(x, -1, index.unsqueeze(-1)).squeeze(-1)

    def topk_mask(self, scores: Array, k: int) -> Array:
        out = self.torch.zeros_like(scores, dtype=self.torch.bool)
        order = self.torch.sort(scores, descending=True, stable=True).indices
        out[order[:k]] = True
        return out

    def rand(self, shape: tuple[int, ...], dtype: str, like: Array, generator: Generator = None) -> Array:
        return self.torch.rand(shape, dtype=self._dtypes[dtype], device=like.device, generator=generator)

    def randint(self, low: int, high: int, like: Array, generator: Generator = None) -> int:
        return int(self.torch.randint(low, high, (), device=like.device, generator=generator))

    def randperm(self, n: int, like: Array, generator: Generator = None) -> Array:
        return self.torch.randperm(n, generator=generator, device=like.device)

    def nonzero(self, x: Array) -> list[int]:
        return [int(i) for i in x.nonzero().flatten().tolist()]

    def linspace(self, start: float, stop: float, num: int, like: Array) -> Array:
        return self.torch.linspace(start, stop, steps=num, device=like.device)

    def round(self, x: Array) -> Array:
        return self.torch.round(x)

    def generator(self, seed: int, like: Array) -> Generator:
        return self.torch.Generator(device=like.device).manual_seed(seed)

    def no_grad(self) -> AbstractContextManager[Any]:
        return self.torch.inference_mode()


NUMPY = NumpyOps()
_TORCH: list[TorchOps] = []


def ops_for(x: Array) -> ArrayOps:
    """The namespace of ``x``: numpy for ``numpy.ndarray``, torch for anything else tensor-like."""
    if isinstance(x, np.ndarray):
        return NUMPY
    if not _TORCH:
        _TORCH.append(TorchOps())
    return _TORCH[0]


def torch_ops() -> ArrayOps:
    """The torch namespace (imports torch)."""
    if not _TORCH:
        _TORCH.append(TorchOps())
    return _TORCH[0]
