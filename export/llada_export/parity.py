"""The parity run of an export: every graph of a bundle, on the CPU provider, against the float32
PyTorch model on fixed probe canvases (the figures go into the sidecar). Only public calls of the
runtime and the engine: ``OnnxBackend.predictor``/``session`` and ``engine.commit``. Imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from llada_export.graphs import candidates
from llada_export.sidecar import ParityFigures, Sidecar
from llada_sdk._deps import require_torch


def _probes(config: Any) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Probe canvases: a plain batch, a left-padded batch with its mask, a half-masked long row."""
    rng = np.random.default_rng(0)
    V = config.vocab_size
    a = rng.integers(0, V, (2, 16))
    b = rng.integers(0, V, (2, 23))
    b_mask = np.ones_like(b)
    b_mask[1, :5] = 0
    b[1, :5] = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    c = rng.integers(0, V, (1, 37))
    c[0, rng.random(37) < 0.5] = config.mask_token_id
    return [(a, None), (b, b_mask), (c, None)]


def _commit_pairs(backend: Any, decode: Any, probes: list[tuple[np.ndarray, np.ndarray | None]]) -> list[Any]:
    """The ``commit`` graph against the engine's own commit (``engine.commit``) on the probe canvases
    with masks, for several budgets and block ends, and on coarsened confidences (many exact ties):
    pairs of ``[next_ids, chosen]`` (graph, engine)."""
    from llada_sdk.decoding.engine import commit

    rng = np.random.default_rng(1)
    session, greedy = backend.session("commit"), backend.predictor(decode)
    conf_dtype = next(t.dtype for t in session.spec.inputs if t.name == "confidence")
    pairs = []
    for ids, am in probes:
        canvas = ids.copy()
        canvas[rng.random(ids.shape) < 0.6] = decode.mask_id
        x0, conf = greedy(canvas, am)
        conf = conf.astype(np.float16 if conf_dtype == "float16" else np.float32)
        L = canvas.shape[1]
        for ties in (False, True):
            c = np.round(conf, 1) if ties else conf
            for end, k in ((L, 1), (L // 2, 3), (L, L)):  # k = L: more than the eligible positions
                budget = np.full(canvas.shape[0], k, dtype=np.int64)
                budget[0] = max(0, k - 1)  # rows with different budgets
                got_ids, got_chosen = session.run(
                    {"input_ids": canvas, "x0": x0, "confidence": c, "k": budget, "end": np.array(end, dtype=np.int64)}
                )
                want = canvas.copy()
                chosen = commit(want, 0, (x0, c), end, budget, decode, None)
                pairs.append(
                    (np.stack([got_ids, got_chosen.astype(np.int64)]), np.stack([want, chosen.astype(np.int64)]))
                )
    return pairs


def parity_run(
    folder: Path, net: Any, decode: Any, *, threads: int | None = None, sidecar: Sidecar | None = None
) -> dict[str, ParityFigures]:
    """Run every graph of the bundle in ``folder`` on the CPU provider against the float32 PyTorch
    model ``net`` and return per-graph figures (the export writes them into the sidecar).
    ``sidecar``: the bundle's sidecar when ``folder`` has none yet (during the export, which writes
    it last); None reads ``folder``'s."""
    torch = require_torch()
    from llada_export.providers import parse_providers
    from llada_export.runtime import OnnxBackend, load_bundle

    if sidecar is None:
        backend, _ = load_bundle(folder, providers="cpu", threads=threads)
    else:
        backend = OnnxBackend(folder, sidecar, parse_providers("cpu"), threads=threads)
    config = backend.config
    figures: dict[str, ParityFigures] = {}
    provider = ""

    def record(role: str, pairs: list[tuple[np.ndarray, np.ndarray]], conf: list[tuple[Any, Any]] | None) -> None:
        diffs = [np.abs(g - r) for g, r in pairs]
        fig: dict[str, Any] = {"provider": provider, "cases": len(pairs)}
        if conf is None:
            fig["logits_max_abs"] = float(max(d.max() for d in diffs))
            fig["logits_mean_abs"] = float(np.mean([d.mean() for d in diffs]))
            fig["argmax_agreement"] = float(
                np.mean(np.concatenate([(g.argmax(-1) == r.argmax(-1)).ravel() for g, r in pairs]))
            )
        else:
            fig["argmax_agreement"] = float(np.mean(np.concatenate([(g == r).ravel() for g, r in pairs])))
            if conf:
                fig["confidence_max_abs"] = float(max(np.abs(g - r).max() for g, r in conf))
        figures[role] = ParityFigures(**fig)

    probes = _probes(config)
    with torch.inference_mode():
        refs = [net(torch.from_numpy(ids), None if am is None else torch.from_numpy(am)) for ids, am in probes]
        ref_np = [r.float().numpy() for r in refs]
        if backend.has("logits"):
            session = backend.session("logits")
            provider = session.providers[0]
            pred = backend.predictor(None)
            record("logits", [(pred(ids, am), r) for (ids, am), r in zip(probes, ref_np)], None)
        if backend.has("greedy"):
            session = backend.session("greedy")
            provider = session.providers[0]
            got = [backend.predictor(decode)(ids, am) for ids, am in probes]
            want = [candidates(r.clone(), decode) for r in refs]
            record(
                "greedy",
                [(g[0], w[0].numpy()) for g, w in zip(got, want)],
                [(g[1], w[1].numpy()) for g, w in zip(got, want)],
            )
        if backend.has("commit") and backend.has("greedy"):
            provider = backend.session("commit").providers[0]
            record("commit", _commit_pairs(backend, decode, probes), [])
        for fused in (False, True):
            suffix = "_greedy" if fused else ""
            if not backend.has("cache_open" + suffix):
                continue
            cached = backend.cached_predictor(fused)
            provider = cached.open.providers[0]
            opens, steps, open_conf, step_conf = [], [], [], []
            for ids, _ in probes:
                L = ids.shape[1]
                t_ids = torch.from_numpy(ids)
                ref_logits, kv = net.forward_cached(t_ids)
                out, past = cached.forward_cached(ids)
                for start, end in ((L // 4, L // 2), (L // 2, L), (L - 1, L)):  # dual, prefix, one token
                    ref_seg, _ = net.forward_cached(t_ids[:, start:end], kv, start)
                    seg, _ = cached.forward_cached(ids[:, start:end], past, start)
                    if fused:
                        w = candidates(ref_seg.clone(), decode)
                        steps.append((seg[0], w[0].numpy()))
                        step_conf.append((seg[1], w[1].numpy()))
                    else:
                        steps.append((seg, ref_seg.float().numpy()))
                if fused:
                    w = candidates(ref_logits.clone(), decode)
                    opens.append((out[0], w[0].numpy()))
                    open_conf.append((out[1], w[1].numpy()))
                else:
                    opens.append((out, ref_logits.float().numpy()))
            record("cache_open" + suffix, opens, open_conf if fused else None)
            record("cache_step" + suffix, steps, step_conf if fused else None)
    return figures
