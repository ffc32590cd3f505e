"""The golden fixture (tests/fixtures/llada-tiny) on every backend: logits within the fixture's float32
tolerance of the reference (max |Δ| ≤ 1e-4, mean ≤ 1e-5), generations token for token -- reference
sampler, CFG, padding, EOS options, ``chat.py``'s two turns, Fast-dLLM threshold decoding and its prefix
and dual caches with the same forward counts -- and the log-likelihoods within 1e-5.

Backends: ``torch``; ``onnx-cpu`` (the fixture exported once per run, onnxruntime's CPU provider);
``onnx-cpu-device-loop`` (the same bundle committing budgeted greedy steps in its ``commit`` graph);
``onnx-cuda`` (CUDA provider, device loop on by default). The ONNX ones skip without the ``onnx`` extra,
``onnx-cuda`` without a GPU and onnxruntime's CUDA provider.

Cases seeded with ``torch.manual_seed`` (random remasking, Gumbel temperature, the Monte Carlo
log-likelihoods) follow torch's global RNG stream; the numpy engine of a bundle draws from numpy, so
they run on torch only. What one backend alone does is tested in tests/core/test_torch_parity.py and
tests/export/test_onnx_parity.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from llada_sdk.api import next_turn_ids
from llada_sdk.decoding.engine import DecodeConfig, denoise, reference_blocks
from llada_sdk.decoding.likelihood import monte_carlo_log_likelihood
from llada_sdk.options import GenerationOptions
from tests.conftest import GENERATE_KEYS, TINY, golden_case, onnx_cuda_available

MASK, EOS, EOT = 336, 301, 348
FORWARD_CASES = ["unpadded_batch", "left_padded_batch", "left_padded_batch_no_mask", "long_single"]
REFERENCE_CASES = [
    "pure_diffusion",
    "semi_autoregressive",
    "fewer_steps",
    "uneven_schedule",
    "cfg",
    "batch_left_padded",
    "batch_left_padded_cfg",
    "logits_eos_inf",
    "confidence_eos_eot_inf",
    "random_remasking",  # seeded
    "gumbel_temperature",  # seeded
]
FASTDLLM_CASES = ["fastdllm_generate", "fastdllm_generate_threshold", "fastdllm_generate_threshold_low"]
CACHE_CASES = [
    "fastdllm_prefix_cache",
    "fastdllm_prefix_cache_threshold",
    "fastdllm_dual_cache",
    "fastdllm_dual_cache_threshold",
]
BACKENDS = [
    "torch",
    "onnx-cpu",
    "onnx-cpu-device-loop",
    pytest.param("onnx-cuda", marks=pytest.mark.gpu),
]


@pytest.fixture(scope="module", params=BACKENDS)
def llm(request: pytest.FixtureRequest) -> Any:
    """The fixture model on one backend (the ONNX ones load the bundle exported once per run)."""
    if request.param == "torch":
        return request.getfixturevalue("tiny")
    bundle = request.getfixturevalue("tiny_bundle")  # skips without the onnx extra
    from llada_sdk import LLaDA

    if request.param == "onnx-cuda":
        if not onnx_cuda_available():
            pytest.skip("needs a CUDA GPU and onnxruntime's CUDAExecutionProvider (llada-sdk[gpu])")
        return LLaDA.from_pretrained(bundle, eot_token_id=EOT, providers="cuda", strict=True)
    loop = request.param == "onnx-cpu-device-loop"
    return LLaDA.from_pretrained(bundle, eot_token_id=EOT, providers="cpu", threads=1, device_loop=loop)


@pytest.fixture(scope="module")
def golden_arrays() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(TINY / "golden_tensors.safetensors"))


def numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def needs_torch_rng(llm: Any, case: dict[str, Any]) -> None:
    if case["torch_manual_seed"] is not None and llm.backend.name != "torch":
        pytest.skip("seeded with torch.manual_seed: the numpy engine of a bundle draws other numbers")


def canvas(llm: Any, prompt: list[list[int]], gen_length: int) -> Any:
    """The prompt rows followed by ``gen_length`` masks, as the backend's array."""
    return llm.backend.asarray([row + [MASK] * gen_length for row in prompt])


@pytest.mark.parametrize("name", FORWARD_CASES)
def test_forward_logits_match_reference(llm: Any, golden: Any, golden_arrays: Any, name: str) -> None:
    case = golden_case(golden, name)
    keys = case["tensors"]
    ids = llm.backend.asarray(golden_arrays[keys["input_ids"]])
    am = llm.backend.asarray(golden_arrays[keys["attention_mask"]]) if keys["attention_mask"] else None
    with llm.backend.ops.no_grad():
        logits = numpy(llm.backend.predictor(None)(ids, am))
    assert logits.shape == tuple(case["logits_shape"]) and logits.dtype == np.float32
    diff = np.abs(logits - golden_arrays[keys["logits"]])
    assert diff.max() <= golden["tolerances"]["logits_max_abs_diff_fp32"], diff.max()
    assert diff.mean() <= golden["tolerances"]["logits_mean_abs_diff_fp32"], diff.mean()


@pytest.mark.parametrize("name", REFERENCE_CASES)
def test_generate_matches_reference(llm: Any, golden: Any, name: str) -> None:
    case = golden_case(golden, name)
    needs_torch_rng(llm, case)
    if case["torch_manual_seed"] is not None:
        torch.manual_seed(case["torch_manual_seed"])  # the reference draws from the global RNG
    out = llm.generate(case["prompt"], case["attention_mask"], **{k: case["args"][k] for k in GENERATE_KEYS})
    assert type(out) is type(llm.backend.asarray([[0]])) and numpy(out).dtype == np.int64  # the backend's ids
    assert out.tolist() == case["output"]


def test_cfg_without_attention_mask_works_and_equals_all_ones_mask(llm: Any, golden: Any) -> None:
    # The reference raises NameError for cfg_scale > 0 without a mask; here it means "no padding".
    case = golden_case(golden, "cfg")
    args = {k: case["args"][k] for k in GENERATE_KEYS}
    assert llm.generate(case["prompt"], None, **args).tolist() == case["output"]


def test_chat_two_turns_matches_chat_py(llm: Any, golden: Any) -> None:
    case = golden_case(golden, "chat_two_turns")
    args = {k: case["args"][k] for k in GENERATE_KEYS[:6]}
    out1 = llm.generate(case["prompt"], **args)
    assert out1.tolist() == case["turn1_output"]
    prompt = case["prompt"][0]
    turn2 = next_turn_ids(
        prompt,
        out1[0, len(prompt) :].tolist(),
        case["turn2_template_ids"][0],
        eos_id=EOS,
        eot_id=EOT,
        reference_compat=True,
    )
    assert [turn2] == case["turn2_prompt"]
    assert llm.generate([turn2], **args).tolist() == case["output"]


def test_chat_history_default_cuts_answer_at_first_end_token() -> None:
    # chat.py removes every EOS from the whole (batch) tensor; the default cuts the answer at its
    # first EOS/EOT and closes it with EOT, per row.
    history = [300, 346, 10, 347, 12, 5, 348, 346, 11, 347, 12]
    answer = [7, 8, 348, 301, 9, 301]
    new_turn = [300, 346, 10, 347, 12, 6, 348, 346, 11, 347, 12]
    assert next_turn_ids(history, answer, new_turn, eos_id=EOS, eot_id=EOT) == [*history, 7, 8, 348, *new_turn[1:]]
    compat = next_turn_ids(history, answer, new_turn, eos_id=EOS, eot_id=EOT, reference_compat=True)
    assert compat == [*history, 7, 8, 348, 9, *new_turn[1:]]


@pytest.mark.parametrize("logits", [False, True], ids=["chosen", "logits"])
@pytest.mark.parametrize("name", FASTDLLM_CASES + CACHE_CASES)
def test_fastdllm_cases_match_reference_tokens_and_forward_count(
    llm: Any, golden: Any, name: str, logits: bool
) -> None:
    """Fast-dLLM's ``generate`` (threshold) and its prefix/dual caches, through the predictor the backend
    chooses (the fused greedy graphs on ONNX) and through a logits predictor."""
    case = golden_case(golden, name)
    a = case["args"]
    cache = "prefix" if "prefix" in name else "dual" if "dual" in name else "none"
    x = canvas(llm, case["prompt"], a["gen_length"])
    blocks, steps = reference_blocks(len(case["prompt"][0]), a["gen_length"], a["block_length"], a["steps"])
    opts = GenerationOptions(threshold=a["threshold"], reference_compat=True, cache=cache)
    cfg = DecodeConfig.from_options(opts, mask_id=MASK, eos_id=EOS, eot_id=EOT)
    with llm.backend.ops.no_grad():
        events = list(denoise(llm.backend.predictor(cfg, logits=logits), x, blocks, steps, cfg))
    assert x.tolist() == case["output"]
    assert events[-1].forward_passes == case["nfe"]


@pytest.mark.parametrize("name", CACHE_CASES)
def test_fastdllm_kv_caches_keep_the_tokens_through_generate_and_without_the_redundant_pass(
    llm: Any, golden: Any, name: str
) -> None:
    case = golden_case(golden, name)
    a = case["args"]
    cache = "prefix" if "prefix" in name else "dual"
    out = llm.generate(
        case["prompt"],
        steps=a["steps"],
        gen_length=a["gen_length"],
        block_length=a["block_length"],
        threshold=a["threshold"],
        cache=cache,
    )
    assert out.tolist() == case["output"]
    # the forward count of Fast-dLLM revision 24cc59e has one redundant cached pass when the full pass
    # already finished a block; outside reference mode that pass is skipped and the tokens stay
    x = canvas(llm, case["prompt"], a["gen_length"])
    blocks, steps = reference_blocks(len(case["prompt"][0]), a["gen_length"], a["block_length"], a["steps"])
    cfg = DecodeConfig.from_options(
        GenerationOptions(threshold=a["threshold"], cache=cache), mask_id=MASK, eos_id=EOS, eot_id=EOT
    )
    with llm.backend.ops.no_grad():
        events = list(denoise(llm.backend.predictor(cfg), x, blocks, steps, cfg))
    assert x.tolist() == case["output"]
    assert events[-1].forward_passes <= case["nfe"]


@pytest.mark.parametrize("name", ["log_likelihood", "log_likelihood_cfg"])
def test_log_likelihood_matches_reference(llm: Any, golden: Any, name: str) -> None:
    case = golden_case(golden, name)
    needs_torch_rng(llm, case)
    torch.manual_seed(case["torch_manual_seed"])
    value = monte_carlo_log_likelihood(
        llm.backend.predictor(None),
        llm.backend.asarray(case["prompt"]),
        llm.backend.asarray(case["answer"]),
        mask_id=MASK,
        mc_num=case["args"]["mc_num"],
        batch_size=case["args"]["batch_size"],
        cfg_scale=case["args"]["cfg_scale"],
    )
    assert abs(value - case["value"]) <= golden["tolerances"]["log_likelihood_rel"] * abs(case["value"])


def test_score_api_is_the_reference_estimator(llm: Any, golden: Any) -> None:
    case = golden_case(golden, "log_likelihood")
    needs_torch_rng(llm, case)
    torch.manual_seed(case["torch_manual_seed"])
    value = llm.score(case["prompt"], case["answer"], mc_num=8, batch_size=4, seed=None)
    assert value == pytest.approx(case["value"], rel=1e-5)
