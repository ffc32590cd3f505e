"""The predictors of a bundle (``llada_sdk.backends.base`` protocols on numpy arrays): plain logits, the fused
greedy head, the device loop (``StepPredictor``: greedy then ``commit`` with the canvas kept on the
device) and Fast-dLLM's cached graphs. Never imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llada_export.sessions import Session


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

    def __init__(self, session: Session) -> None:
        self.session = session

    def __call__(self, input_ids: Any, attention_mask: Any = None) -> np.ndarray:
        ids = _ids(input_ids)
        (logits,) = self.session.run({"input_ids": ids, "attention_mask": _mask(attention_mask, ids)})
        return np.asarray(logits, dtype=np.float32)


class GreedyPredictor:
    """``(input_ids, attention_mask) -> (x0 int64 [B, L], confidence float32 [B, L])`` (the fused
    ``greedy`` graph: the model and the torch policy's candidate choice, traced together)."""

    fused = True

    def __init__(self, session: Session) -> None:
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

    def __init__(self, session: Session, commit: Session) -> None:
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

    def __init__(self, open_session: Session, step_session: Session, plain: Any, fused: bool) -> None:
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
