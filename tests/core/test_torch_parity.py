"""What only the torch backend does on the golden fixture (tests/fixtures/llada-tiny): bfloat16 and
float16 logits near the float32 reference, the attention mask's reach, the KV-cache forward against the
full one, and the cache's refusals. The golden cases on every backend: tests/test_golden_parity.py."""

from __future__ import annotations

from typing import Any

import pytest
import torch


def test_attention_mask_changes_padded_rows_only(tiny: Any, golden_tensors: Any) -> None:
    ids = golden_tensors["forward/left_padded_batch/input_ids"]
    am = golden_tensors["forward/left_padded_batch/attention_mask"]
    with torch.inference_mode():
        masked, unmasked = tiny.model(ids, attention_mask=am), tiny.model(ids)
        ones = tiny.model(ids, attention_mask=torch.ones_like(am))
    padded_rows = (am == 0).any(dim=1)
    assert torch.equal(ones, unmasked)  # an all-ones mask is the same as no mask
    assert (masked[padded_rows] - unmasked[padded_rows]).abs().max() > 1e-2
    assert torch.allclose(masked[~padded_rows], unmasked[~padded_rows], atol=1e-5)


# Bounds from a measurement on this fixture (deliberately sharp attention, logit std 2.6), recorded in
# docs/benchmarks.md: bf16 mean |d| 0.055-0.082, max 0.64-1.70, argmax agreement >= 94.5 %;
# fp16 mean 0.007-0.011, max 0.09-0.29, agreement >= 99.2 %.
LOW_PRECISION_BOUNDS = {"bfloat16": (0.12, 2.5, 0.92), "float16": (0.02, 0.5, 0.98)}


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_logits_stay_close_to_fp32(golden: Any, golden_tensors: Any, dtype: str) -> None:
    from llada_sdk import LLaDA
    from tests.conftest import TINY

    mean_bound, max_bound, agree_bound = LOW_PRECISION_BOUNDS[dtype]
    llm = LLaDA.from_pretrained(TINY, device="cpu", dtype=dtype)
    assert llm.model.dtype == getattr(torch, dtype)
    for case in golden["forward"]:
        keys = case["tensors"]
        am = golden_tensors[keys["attention_mask"]] if keys["attention_mask"] else None
        with torch.inference_mode():
            logits = llm.model(golden_tensors[keys["input_ids"]], attention_mask=am)
        assert logits.dtype == getattr(torch, dtype)
        ref = golden_tensors[keys["logits"]]
        diff = (logits.float() - ref).abs()
        assert diff.mean().item() <= mean_bound and diff.max().item() <= max_bound, (diff.mean(), diff.max())
        agree = (logits.argmax(-1) == ref.argmax(-1)).float().mean().item()
        assert agree >= agree_bound, agree


def test_cached_segment_with_a_fresh_cache_equals_the_full_forward(tiny: Any) -> None:
    ids = torch.randint(0, 300, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full = tiny.model(ids)
        again, cache = tiny.model.forward_cached(ids)
        seg, _ = tiny.model.forward_cached(ids[:, 5:12], cache, 5)
    assert torch.equal(full, again) and torch.equal(seg, full[:, 5:12])


def test_cache_refuses_cfg_and_padding(tiny: Any) -> None:
    with pytest.raises(ValueError, match="`cache` does not support"):
        tiny.generate([[300, 5, 6]], steps=4, gen_length=4, block_length=4, cfg_scale=1.0, cache="prefix")
    with pytest.raises(ValueError, match="`cache` does not support"):
        tiny.generate([[301, 5, 6]], [[0, 1, 1]], steps=4, gen_length=4, block_length=4, cache="dual")
