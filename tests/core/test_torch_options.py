"""The torch backend's speed options: ``compile=True`` (torch.compile; the compiled decode is a slow
test) and ``prepack=True`` (linear weights reordered for oneDNN once at load)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llada_cli.main import cli
from llada_sdk import LLaDA
from llada_sdk.backends.base import CachedMaskPredictor
from llada_sdk.backends.torch_backend import CompiledPredictor, PackedLinear, prepack_available
from llada_sdk.decoding.engine import DecodeConfig
from llada_sdk.options import GenerationOptions


def test_compile_decodes_through_the_compiled_predictor_and_scores_eagerly() -> None:
    llm = LLaDA.from_pretrained(None, compile=True)
    decode = DecodeConfig.for_model(GenerationOptions(), llm.config)
    predictor = llm.backend.predictor(decode)
    assert isinstance(predictor, CompiledPredictor) and isinstance(predictor, CachedMaskPredictor)
    assert predictor._forward is None and predictor._cached is None  # compiled on first use, not at load
    assert llm.backend.predictor(None) is llm.backend.model  # scoring: eager
    assert llm.backend.info()["compile"] is True
    assert LLaDA.from_pretrained(None).backend.info()["compile"] is False


def test_speed_options_must_be_bools() -> None:
    for name in ("compile", "prepack"):
        with pytest.raises(TypeError, match=rf"`{name}` must be True or False, got 'yes'"):
            LLaDA.from_pretrained(None, **{name: "yes"})
    with pytest.raises(TypeError, match=r"\['compiled'\] \(it takes `compile`, `prepack`, `threads`\)"):
        LLaDA.from_pretrained(None, compiled=True)


@pytest.mark.skipif(not prepack_available(), reason="this torch build has no oneDNN")
def test_prepack_packs_every_linear_and_keeps_logits_and_texts(bundled: Any) -> None:
    import torch

    llm = LLaDA.from_pretrained(None, prepack=True, device="cpu", dtype="float32")
    model = llm.backend.model
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert sum(isinstance(m, PackedLinear) for m in model.modules()) == 7 * llm.config.n_layers + 1
    assert llm.backend.info()["prepack"] is True and bundled.backend.info()["prepack"] is False
    ids = torch.randint(0, 300, (2, 40))
    with torch.inference_mode():
        diff = (model(ids) - bundled.backend.model(ids)).abs()
        _, cache = model.forward_cached(ids[:1])
        step, _ = model.forward_cached(ids[:1, 8:16], cache, 8)
        _, ref_cache = bundled.backend.model.forward_cached(ids[:1])
        ref_step, _ = bundled.backend.model.forward_cached(ids[:1, 8:16], ref_cache, 8)
    assert diff.max().item() < 1e-4 and diff.mean().item() < 1e-5
    assert (step - ref_step).abs().max().item() < 1e-4
    for kw in ({}, {"cache": "dual", "factor": 1.0}, {"cache": "prefix"}):
        for prompt in ("Zapur lives in", "The parent of Kikouguth is"):
            assert llm.complete(prompt, **kw).text == bundled.complete(prompt, **kw).text, (prompt, kw)
    assert llm.score("Zapur lives in", " Duskmere.", mc_num=4, batch_size=4, seed=0) == pytest.approx(
        bundled.score("Zapur lives in", " Duskmere.", mc_num=4, batch_size=4, seed=0), abs=1e-3
    )


def test_prepack_needs_float32_on_the_cpu() -> None:
    with pytest.raises(ValueError, match=r"`prepack` needs a float32 model on the CPU, got bfloat16 on cpu"):
        LLaDA.from_pretrained(None, prepack=True, dtype="bfloat16")
    result = CliRunner().invoke(cli, ["complete", "x", "--prepack", "--dtype", "float16"])
    assert result.exit_code == 2 and "'--prepack'" in result.output and "float16" in result.output


def test_speed_options_are_refused_on_an_onnx_bundle(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from tests.export.test_onnx_runtime import make_bundle

    bundle = make_bundle(tmp_path / "b")
    for name in ("compile", "prepack"):
        with pytest.raises(TypeError, match=f"`{name}` is a torch-backend option"):
            LLaDA.from_pretrained(bundle, **{name: True})
        result = CliRunner().invoke(cli, ["complete", "x", "-m", str(bundle), f"--{name}"])
        assert result.exit_code == 2 and f"--{name} applies to the torch backend" in result.output
        result = CliRunner().invoke(cli, ["complete", "x", "--backend", "onnx", f"--{name}"])
        assert (
            result.exit_code == 2
            and f"--{name} applies to the torch backend (this model loads with onnx)" in result.output
        )


@pytest.mark.slow
@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="torch.compile's CPU backend (inductor) needs a C++ compiler, and this machine has none",
)
def test_compiled_decoding_gives_the_eager_texts(bundled: Any) -> None:
    import torch

    torch.set_num_threads(1)
    llm = LLaDA.from_pretrained(None, compile=True)
    for kw in ({}, {"cache": "dual", "factor": 1.0}):  # the compiled forward, then the compiled cached forward
        assert llm.complete("Zapur lives in", **kw).text == bundled.complete("Zapur lives in", **kw).text, kw
