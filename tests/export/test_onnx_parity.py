"""The golden fixture exported to ONNX and run by onnxruntime (CPU): logits within the fixture's
float32 tolerance of the reference, and the golden generations token for token -- reference sampler,
CFG, padding, EOS options, Fast-dLLM threshold decoding and its prefix and dual caches.

The two seeded golden cases (random remasking, Gumbel temperature) follow torch's global RNG stream;
the numpy engine of the bundle draws from numpy, so they are compared on the torch backend only.
"""

from __future__ import annotations

import json
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

register(PLUGIN)  # until the entry point of pyproject.toml is installed

TINY = Path(__file__).parents[1] / "fixtures" / "llada-tiny"
GENERATE_KEYS = [
    "steps",
    "gen_length",
    "block_length",
    "temperature",
    "cfg_scale",
    "remasking",
    "logits_eos_inf",
    "confidence_eos_eot_inf",
]
UNSEEDED = [
    "pure_diffusion",
    "semi_autoregressive",
    "fewer_steps",
    "uneven_schedule",
    "cfg",
    "batch_left_padded",
    "batch_left_padded_cfg",
    "logits_eos_inf",
    "confidence_eos_eot_inf",
]
FASTDLLM = ["fastdllm_generate", "fastdllm_generate_threshold", "fastdllm_generate_threshold_low"]
CACHE_CASES = [
    "fastdllm_prefix_cache",
    "fastdllm_prefix_cache_threshold",
    "fastdllm_dual_cache",
    "fastdllm_dual_cache_threshold",
]


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads((TINY / "golden.json").read_text())  # type: ignore[no-any-return]


def _case(golden: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for section in ("forward", "generation") for c in golden[section] if c["name"] == name)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``llada export tests/fixtures/llada-tiny OUT`` (through the Python API): every graph group."""
    from llada_export import export

    out = tmp_path_factory.mktemp("onnx") / "llada-tiny"
    export(TINY, out, eot_token_id=348, graphs=("logits", "greedy", "cache", "cache_greedy"), threads=1)
    return out


@pytest.fixture(scope="module")
def onnx_llm(bundle: Path) -> Any:
    from llada_sdk import LLaDA

    return LLaDA.from_pretrained(bundle, eot_token_id=348, providers="cpu", threads=1)


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


@pytest.mark.parametrize("name", ["unpadded_batch", "left_padded_batch", "left_padded_batch_no_mask", "long_single"])
def test_forward_logits_match_reference(bundle: Path, golden: Any, name: str) -> None:
    from safetensors.numpy import load_file

    tensors = load_file(str(TINY / "golden_tensors.safetensors"))
    keys = _case(golden, name)["tensors"]
    backend, tokenizer = load_bundle(bundle, providers="cpu", threads=1)
    assert tokenizer is None
    predictor = backend.predictor(None)
    assert isinstance(predictor, LogitsPredictor)
    am = tensors[keys["attention_mask"]] if keys["attention_mask"] else None
    logits = predictor(tensors[keys["input_ids"]], am)
    assert logits.dtype == np.float32
    diff = np.abs(logits - tensors[keys["logits"]])
    assert diff.max() <= golden["tolerances"]["logits_max_abs_diff_fp32"], diff.max()
    assert diff.mean() <= golden["tolerances"]["logits_mean_abs_diff_fp32"], diff.mean()


@pytest.fixture(scope="module")
def step_llm(bundle: Path) -> Any:
    """The same bundle with the device loop forced on the CPU provider (the ``commit`` graph)."""
    from llada_sdk import LLaDA

    return LLaDA.from_pretrained(bundle, eot_token_id=348, providers="cpu", threads=1, device_loop=True)


@pytest.mark.parametrize("loop", ["host", "device"])
@pytest.mark.parametrize("name", UNSEEDED)
def test_generate_matches_reference(onnx_llm: Any, step_llm: Any, golden: Any, name: str, loop: str) -> None:
    llm = step_llm if loop == "device" else onnx_llm
    case = _case(golden, name)
    out = llm.generate(case["prompt"], case["attention_mask"], **{k: case["args"][k] for k in GENERATE_KEYS})
    assert isinstance(out, np.ndarray) and out.dtype == np.int64
    assert out.tolist() == case["output"]


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
    case = _case(golden, "semi_autoregressive")
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


def test_chat_two_turns_matches_chat_py(onnx_llm: Any, golden: Any) -> None:
    from llada_sdk.api import next_turn_ids

    case = _case(golden, "chat_two_turns")
    args = {k: case["args"][k] for k in GENERATE_KEYS[:6]}
    out1 = onnx_llm.generate(case["prompt"], **args)
    assert out1.tolist() == case["turn1_output"]
    prompt = case["prompt"][0]
    turn2 = next_turn_ids(
        prompt,
        out1[0, len(prompt) :].tolist(),
        case["turn2_template_ids"][0],
        eos_id=301,
        eot_id=348,
        reference_compat=True,
    )
    assert onnx_llm.generate([turn2], **args).tolist() == case["output"]


@pytest.mark.parametrize("name", FASTDLLM + CACHE_CASES)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "logits"])
def test_fastdllm_threshold_and_caches_match_reference(onnx_llm: Any, golden: Any, name: str, fused: bool) -> None:
    from llada_sdk.decoding.engine import DecodeConfig, denoise, reference_blocks
    from llada_sdk.options import GenerationOptions

    case = _case(golden, name)
    a = case["args"]
    cache = "prefix" if "prefix" in name else "dual" if "dual" in name else "none"
    prompt = np.asarray(case["prompt"], dtype=np.int64)
    x = np.concatenate([prompt, np.full((1, a["gen_length"]), 336, dtype=np.int64)], axis=1)
    blocks, steps = reference_blocks(prompt.shape[1], a["gen_length"], a["block_length"], a["steps"])
    opts = GenerationOptions(threshold=a["threshold"], reference_compat=True, cache=cache)
    cfg = DecodeConfig.from_options(opts, mask_id=336, eos_id=301, eot_id=348)
    predictor = onnx_llm.backend.predictor(cfg, logits=not fused)
    assert getattr(predictor, "fused", False) == fused
    events = list(denoise(predictor, x, blocks, steps, cfg))
    assert x.tolist() == case["output"]
    assert events[-1].forward_passes == case["nfe"]


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


def _cuda_available() -> bool:
    import shutil
    import subprocess

    import onnxruntime as ort

    if shutil.which("nvidia-smi") is None:
        return False
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return out.returncode == 0 and "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU and onnxruntime-gpu (llada-sdk[gpu])")
def test_device_loop_on_cuda_keeps_the_canvas_there(bundle: Path, golden: Any) -> None:
    from llada_sdk import LLaDA

    llm = LLaDA.from_pretrained(bundle, eot_token_id=348, providers="cuda", strict=True)
    assert llm.backend.device_loop is True and llm.backend.info()["device"] == "cuda:0"
    for name in UNSEEDED:
        case = _case(golden, name)
        assert (
            llm.generate(case["prompt"], case["attention_mask"], **{k: case["args"][k] for k in GENERATE_KEYS}).tolist()
            == case["output"]
        ), name
    step = llm.backend._predictors["step"]
    assert isinstance(step, StepPredictor) and step.uploads <= len(UNSEEDED)  # once per call at most


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
