"""What only the ONNX backend does, on the golden fixture exported to ONNX (the ``tiny_bundle`` fixture,
exported once per run): the sidecar and its parity figures, the choice between the fused greedy graphs
and the logits graph, the device loop (the ``commit`` graph) against the engine, the cached step's
bounds, and version-1 bundles. The golden cases themselves, on every backend: tests/test_golden_parity.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from llada_export.runtime import (
    PLUGIN,
    CachedPredictor,
    GreedyPredictor,
    LogitsPredictor,
    StepPredictor,
    load_bundle,
)
from llada_export.sidecar import Sidecar
from llada_sdk.backends.base import CachedMaskPredictor, StepMaskPredictor, register
from tests.conftest import GENERATE_KEYS, golden_case, onnx_cuda_available

register(PLUGIN)  # until the entry point of pyproject.toml is installed


@pytest.fixture(scope="module")
def bundle(tiny_bundle: Path) -> Path:
    return tiny_bundle


@pytest.fixture(scope="module")
def onnx_llm(bundle: Path) -> Any:
    from llada_sdk import LLaDA

    return LLaDA.from_pretrained(bundle, eot_token_id=348, providers="cpu", threads=1)


@pytest.fixture(scope="module")
def step_llm(bundle: Path) -> Any:
    """The same bundle with the device loop forced on the CPU provider (the ``commit`` graph)."""
    from llada_sdk import LLaDA

    return LLaDA.from_pretrained(bundle, eot_token_id=348, providers="cpu", threads=1, device_loop=True)


def test_export_writes_sidecar_with_symbolic_dims_and_parity(bundle: Path) -> None:
    side = Sidecar.read(bundle)
    assert side.precision == "fp32" and side.opset == 20
    assert set(side.graphs) == {
        "logits",
        "greedy",
        "commit",
        "cache_open",
        "cache_step",
        "cache_open_greedy",
        "cache_step_greedy",
    }
    logits = side.graphs["logits"]
    assert [t.name for t in logits.inputs] == ["input_ids", "attention_mask"]
    assert all(isinstance(d, str) for t in logits.inputs for d in t.dims)  # batch and seq stay symbolic
    assert logits.outputs[0].dims[2] == 384 and isinstance(logits.outputs[0].dims[0], str)
    assert side.special_ids.mask == 336 and side.special_ids.eot == 348
    assert side.graphs["greedy"].policy is not None and side.graphs["logits"].policy is None
    for role in side.graphs:
        fig = side.parity[role]
        assert fig.provider == "cpu" and fig.argmax_agreement == 1.0
        if fig.logits_max_abs is not None:
            assert fig.logits_max_abs <= 1e-4
    assert not (bundle / "tokenizer.json").exists() and side.tokenizer is False
    assert load_bundle(bundle, providers="cpu", threads=1)[1] is None  # loads without a tokenizer


def test_the_device_loop_sends_the_canvas_once(step_llm: Any, golden: Any) -> None:
    """Budgeted greedy steps run the commit graph: the canvas goes to the device once per call, every
    later step feeds the previous step's output back; same tokens and forward passes as the host loop."""
    from llada_sdk.decoding.engine import DecodeConfig
    from llada_sdk.options import GenerationOptions

    cfg = DecodeConfig.from_options(GenerationOptions(), mask_id=336, eos_id=301, eot_id=348)
    predictor = step_llm.backend.predictor(cfg)
    assert isinstance(predictor, StepPredictor) and isinstance(predictor, StepMaskPredictor)
    assert step_llm.backend.info()["device_loop"] is True
    threshold = DecodeConfig.from_options(GenerationOptions(threshold=0.9), mask_id=336, eos_id=301, eot_id=348)
    assert step_llm.backend.predictor(threshold) is predictor  # the same graphs; threshold steps use __call__
    case = golden_case(golden, "semi_autoregressive")
    args = {k: case["args"][k] for k in GENERATE_KEYS}
    before = predictor.uploads
    out = step_llm.generate(case["prompt"], case["attention_mask"], **args)
    assert out.tolist() == case["output"]
    assert predictor.uploads - before == 1 and args["steps"] > 1 and args["gen_length"] > args["block_length"]


def test_device_loop_is_off_on_the_cpu_by_default_and_typed(onnx_llm: Any, bundle: Path) -> None:
    from llada_sdk.decoding.engine import DecodeConfig
    from llada_sdk.options import GenerationOptions

    cfg = DecodeConfig.from_options(GenerationOptions(), mask_id=336, eos_id=301, eot_id=348)
    assert onnx_llm.backend.device_loop is False and onnx_llm.backend.info()["device_loop"] is False
    assert isinstance(onnx_llm.backend.predictor(cfg), GreedyPredictor)
    assert not isinstance(onnx_llm.backend.predictor(cfg), StepPredictor)
    with pytest.raises(TypeError, match="`device_loop` must be None, True or False, got 'yes'"):
        load_bundle(bundle, providers="cpu", device_loop="yes")


def test_greedy_runs_use_the_fused_graph_and_others_the_logits_graph(onnx_llm: Any) -> None:
    from llada_sdk.decoding.engine import DecodeConfig
    from llada_sdk.options import GenerationOptions

    def pick(**kw: Any) -> Any:
        cfg = DecodeConfig.from_options(GenerationOptions(**kw), mask_id=336, eos_id=301, eot_id=348)
        return onnx_llm.backend.predictor(cfg)

    assert isinstance(pick(), GreedyPredictor)
    assert isinstance(pick(threshold=0.9), GreedyPredictor)  # selection stays on the host
    for kw in (
        {"temperature": 0.5},
        {"cfg_scale": 1.0},
        {"remasking": "random"},
        {"logits_eos_inf": True},
        {"entropy_bound": 0.5},  # reads each position's entropy
    ):
        assert isinstance(pick(**kw), LogitsPredictor), kw
    assert not pick(cache="dual", entropy_bound=0.5).fused
    cached = pick(cache="dual")
    assert isinstance(cached, CachedPredictor) and isinstance(cached, CachedMaskPredictor) and cached.fused
    for kw in ({}, {"threshold": 0.9}, {"cache": "prefix"}, {"cache": "dual"}):  # logits=True: the logits graphs
        cfg = DecodeConfig.from_options(GenerationOptions(**kw), mask_id=336, eos_id=301, eot_id=348)
        assert not getattr(onnx_llm.backend.predictor(cfg, logits=True), "fused", False), kw
    assert not pick(cache="prefix", confidence_eos_eot_inf=True).fused
    assert isinstance(onnx_llm.backend.predictor(None), LogitsPredictor)


def test_fused_candidates_equal_the_policy_on_the_logits_graph(bundle: Path) -> None:
    from llada_sdk.decoding import policies
    from llada_sdk.decoding.engine import DecodeConfig
    from llada_sdk.options import GenerationOptions

    backend, _ = load_bundle(bundle, providers="cpu", threads=1)
    cfg = DecodeConfig.from_options(GenerationOptions(), mask_id=336, eos_id=301, eot_id=348)
    ids = np.random.default_rng(1).integers(0, 384, (3, 29))
    ids[:, 10:] = 336
    x0, conf = backend.predictor(cfg)(ids)
    want_x0, want_conf = policies.candidates(backend.predictor(None)(ids), cfg.rules)
    assert x0.tolist() == want_x0.tolist()
    assert np.abs(conf - want_conf).max() < 1e-6


def test_cached_step_accepts_one_token_segments_and_checks_bounds(bundle: Path) -> None:
    backend, _ = load_bundle(bundle, providers="cpu", threads=1)
    cached = backend.cached_predictor(fused=False)
    ids = np.random.default_rng(2).integers(0, 384, (1, 20))
    logits, past = cached.forward_cached(ids)
    seg, _ = cached.forward_cached(ids[:, 19:], past, 19)
    assert seg.shape == (1, 1, 384)
    assert np.abs(seg[0, 0] - logits[0, 19]).max() < 1e-4  # same canvas: the cache is exact
    with pytest.raises(ValueError, match="outside the cached length 20"):
        cached.forward_cached(ids[:, :4], past, 18)
    with pytest.raises(ValueError, match="`start` must be 0"):
        cached.forward_cached(ids, None, 3)


@pytest.mark.gpu
@pytest.mark.skipif(not onnx_cuda_available(), reason="needs a CUDA GPU and onnxruntime-gpu (llada-sdk[gpu])")
def test_device_loop_on_cuda_keeps_the_canvas_there(bundle: Path, golden: Any) -> None:
    from llada_sdk import LLaDA

    llm = LLaDA.from_pretrained(bundle, eot_token_id=348, providers="cuda", strict=True)
    assert llm.backend.device_loop is True and llm.backend.info()["device"] == "cuda:0"
    case = golden_case(golden, "semi_autoregressive")
    assert (
        llm.generate(case["prompt"], case["attention_mask"], **{k: case["args"][k] for k in GENERATE_KEYS}).tolist()
        == case["output"]
    )
    step = llm.backend._predictors["step"]
    assert isinstance(step, StepPredictor) and step.uploads == 1  # the canvas went to the device once


def test_commit_graph_equals_the_engine_on_long_rows_with_ties(bundle: Path) -> None:
    """The commit graph against ``engine.commit`` with budgets per row on 300-position rows whose
    confidences tie in runs (coarse values, and the -inf of every ineligible position)."""
    from llada_sdk.decoding.engine import DecodeConfig, commit
    from llada_sdk.options import GenerationOptions

    backend, _ = load_bundle(bundle, providers="cpu", threads=1)
    session = backend.session("commit")
    cfg = DecodeConfig.from_options(GenerationOptions(), mask_id=336, eos_id=301, eot_id=348)
    rng = np.random.default_rng(3)
    B, L = 3, 300
    for trial in range(4):
        x = rng.integers(0, 300, (B, L))
        x[rng.random((B, L)) < 0.7] = 336
        x0 = rng.integers(0, 300, (B, L))
        conf = (rng.integers(0, 4, (B, L)) / 4).astype(np.float32)  # four values: long runs of ties
        end = [L, 200, 37, 150][trial]
        k = np.array([0, 5, L] if trial % 2 else [1, 64, 250], dtype=np.int64)
        got_ids, got_chosen = session.run(
            {"input_ids": x, "x0": x0, "confidence": conf, "k": k, "end": np.array(end, dtype=np.int64)}
        )
        want = x.copy()
        chosen = commit(want, 0, (x0, conf), end, k, cfg, None)
        assert np.array_equal(got_chosen, chosen) and np.array_equal(got_ids, want), trial


def test_version_1_bundles_without_the_commit_graph_still_load(bundle: Path, tmp_path: Path) -> None:
    import json
    import shutil

    old = tmp_path / "v1"
    shutil.copytree(bundle, old)
    raw = json.loads((old / "llada_onnx.json").read_text())
    raw["format_version"] = 1
    del raw["graphs"]["commit"]
    raw["parity"].pop("commit", None)
    (old / "llada_onnx.json").write_text(json.dumps(raw))
    (old / "commit.onnx").unlink()
    backend, _ = load_bundle(old, providers="cpu", threads=1, device_loop=True)
    assert not backend.has("commit") and backend.info()["device_loop"] is False
    from llada_sdk.decoding.engine import DecodeConfig
    from llada_sdk.options import GenerationOptions

    cfg = DecodeConfig.from_options(GenerationOptions(), mask_id=336, eos_id=301, eot_id=348)
    assert isinstance(backend.predictor(cfg), GreedyPredictor) and not isinstance(backend.predictor(cfg), StepPredictor)
