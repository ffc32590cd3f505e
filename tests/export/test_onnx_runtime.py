"""The onnxruntime backend on small synthetic bundles (graphs built with onnx.helper, no export):
loading, predictor choice, providers, and one-line errors naming the file for every bad bundle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from llada_export.providers import (  # noqa: E402
    CPU,
    CUDA,
    ProviderUnavailableError,
    ShapeProfile,
    TensorRT,
    parse_providers,
    to_ort,
)
from llada_export.runtime import PLUGIN, LogitsPredictor, OnnxBackend, is_bundle, load_bundle  # noqa: E402
from llada_export.sidecar import SIDECAR, GraphSpec, Sidecar, SpecialIds, TensorSpec  # noqa: E402
from llada_sdk.backends.base import Backend, register  # noqa: E402
from llada_sdk.config import LLaDAConfig  # noqa: E402
from llada_sdk.errors import CheckpointError, MissingExtraError  # noqa: E402

register(PLUGIN)
V = 16
ROOT = Path(__file__).resolve().parents[2]


def _logits_graph(path: Path, vocab: int = V) -> None:
    """``logits[b, l, :] = E[input_ids[b, l]]`` (+ 0 * attention_mask): a deterministic stand-in."""
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).standard_normal((vocab, vocab)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["E", "input_ids"], ["g"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axis"], ["m3"]),
        helper.make_node("Mul", ["m3", "zero"], ["z"]),
        helper.make_node("Add", ["g", "z"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fake",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])],
        [
            numpy_helper.from_array(table, "E"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    onnx.save(model, str(path))


def make_bundle(folder: Path, vocab: int = V, embedding: int = V) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _logits_graph(folder / "logits.onnx", vocab)
    cfg = LLaDAConfig(
        d_model=8,
        n_heads=2,
        n_layers=1,
        vocab_size=V,
        embedding_size=embedding,
        mask_token_id=V - 1,
        eos_token_id=V - 2,
    )
    ids = [TensorSpec(name=n, dtype="int64", dims=["batch", "seq"]) for n in ("input_ids", "attention_mask")]
    spec = GraphSpec(
        file="logits.onnx",
        role="logits",
        inputs=ids,
        outputs=[TensorSpec(name="logits", dtype="float32", dims=["batch", "seq", vocab])],
        bytes=(folder / "logits.onnx").stat().st_size,
    )
    Sidecar(
        precision="fp32",
        opset=20,
        config=cfg.to_hf_dict(),
        special_ids=SpecialIds(mask=V - 1, eos=V - 2),
        context_length=64,
        graphs={"logits": spec},
        parity_skipped=True,  # synthetic: no parity run
    ).write(folder)
    return folder


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "fake")


def _one_line_error(exc: BaseException, name: str) -> None:
    msg = str(exc)
    assert "\n" not in msg and name in msg, msg


def test_fake_bundle_loads_as_a_backend_on_the_cpu(fake: Path) -> None:
    backend, tokenizer = load_bundle(fake, providers="cpu", threads=1)
    assert tokenizer is None and isinstance(backend, OnnxBackend) and isinstance(backend, Backend)
    info = backend.info()
    assert info["backend"] == "onnxruntime" and info["providers"] == ["cpu"] and info["precision"] == "fp32"
    assert info["bundle"] == str(fake) and info["device"] == "cpu"
    predictor = backend.predictor(None)
    assert isinstance(predictor, LogitsPredictor)
    ids = np.array([[1, 2, 3]])
    logits = predictor(ids, np.array([[0, 1, 1]], dtype=bool))
    assert logits.shape == (1, 3, V) and logits.dtype == np.float32
    assert np.array_equal(predictor(ids), logits)
    assert backend.asarray([[1, 2]]).dtype == np.int64
    with pytest.raises(ValueError, match=r"`attention_mask` must have the shape of `input_ids` \(1, 3\)"):
        predictor(ids, np.ones((1, 2)))
    with pytest.raises(ValueError, match="`input_ids` must have shape"):
        predictor(np.array([1, 2]))


def test_missing_graph_group_names_it_and_the_export_flag(fake: Path) -> None:
    from llada_sdk.decoding.engine import DecodeConfig
    from llada_sdk.options import GenerationOptions

    backend, _ = load_bundle(fake, providers="cpu")
    cfg = DecodeConfig.from_options(GenerationOptions(cache="dual"), mask_id=V - 1)
    with pytest.raises(ValueError, match="no 'cache_open' graph.*--graphs"):
        backend.predictor(cfg)
    # greedy settings without a greedy graph fall back to the logits graph
    assert isinstance(backend.predictor(DecodeConfig.from_options(GenerationOptions(), mask_id=V - 1)), LogitsPredictor)


def test_from_pretrained_detects_the_bundle_and_generates(fake: Path) -> None:
    from llada_sdk import LLaDA

    assert is_bundle(fake) and not is_bundle(fake.parent)
    llm = LLaDA.from_pretrained(fake, providers="cpu", threads=1)
    assert llm.backend.name == "onnxruntime"
    out = llm.generate([[1, 2, 3]], steps=4, gen_length=4, block_length=4)
    assert isinstance(out, np.ndarray) and out.shape == (1, 7) and out[0, :3].tolist() == [1, 2, 3]
    assert (out != V - 1).all()
    with pytest.raises(ValueError, match="`dtype` must be None, 'auto' or this bundle's precision 'float32'"):
        LLaDA.from_pretrained(fake, dtype="bfloat16")
    assert LLaDA.from_pretrained(fake, backend="onnx", dtype="float32").backend.name == "onnxruntime"


@pytest.mark.parametrize(
    ("damage", "culprit", "pattern"),
    [
        ("no_sidecar", "", "this is not an ONNX bundle (it has no llada_onnx.json): export one with `llada export`"),
        ("bad_json", SIDECAR, "not valid JSON"),
        ("wrong_format", SIDECAR, "not an llada-onnx sidecar"),
        ("bad_field", SIDECAR, "invalid field `precision`"),
        ("future_version", SIDECAR, "`format_version` 99"),
        ("bool_version", SIDECAR, "invalid field `format_version`: must be an integer, got true"),
        (
            "context_negative",
            SIDECAR,
            "invalid field `context_length`: Input should be greater than or equal to 1, got -5",
        ),
        ("context_zero", SIDECAR, "invalid field `context_length`: Input should be greater than or equal to 1, got 0"),
        ("context_huge", SIDECAR, "invalid field `context_length`: must be at most the config's `max_sequence_length`"),
        ("context_float", SIDECAR, "invalid field `context_length`: Input should be a valid integer, got 1000000000.0"),
        (
            "option_value",
            SIDECAR,
            "invalid field `options.max_tokens`: Input should be greater than or equal to 1, got -3",
        ),
        ("option_unknown", SIDECAR, "invalid field `options.beam_width`: Extra inputs are not permitted, got 4"),
        (
            "special_id",
            SIDECAR,
            f"invalid field `special_ids.bos`: must be in [0, {V}) (the config's embedding rows), got 600",
        ),
        ("bool_id", SIDECAR, "invalid field `special_ids.eot`: Input should be a valid integer, got true"),
        ("opset", SIDECAR, "invalid field `opset`: Input should be less than or equal to 23, got 99"),
        ("negative_bytes", SIDECAR, "invalid field `graphs.logits.bytes`: Input should be greater than or equal to 0"),
        ("bad_config", SIDECAR, "invalid field `config`: config key `n_heads` must be a positive integer, got -2"),
        ("deep_json", SIDECAR, "not valid JSON (nested too deeply)"),
        ("huge_file", SIDECAR, "larger than the 16 MiB a sidecar may have"),
        (
            "unfinished_export",
            SIDECAR,
            "invalid field `parity`: empty, so the export that wrote this bundle did not finish",
        ),
        ("missing_graph", "logits.onnx", "missing"),
        ("truncated_graph", "logits.onnx", "bytes with its external data"),
        ("corrupt_graph", "logits.onnx", "onnxruntime cannot load"),
        ("path_escape", SIDECAR, "only plain file names"),
        ("vocab_mismatch", "logits.onnx", "vocabulary mismatch"),
        ("io_mismatch", "logits.onnx", "do not match"),
        ("tokenizer_vocab", "tokenizer.json", "vocabulary mismatch"),
        ("tokenizer_corrupt", "tokenizer.json", "cannot be read"),
    ],
)
def test_bad_bundles_raise_one_line_errors_naming_the_file(
    tmp_path: Path, tokenizer_dir: Path, damage: str, culprit: str, pattern: str
) -> None:
    folder = make_bundle(tmp_path / "b", embedding=V + 2 if damage == "vocab_mismatch" else V)
    side = folder / SIDECAR
    raw = json.loads(side.read_text())
    graph = folder / "logits.onnx"
    if damage == "no_sidecar":
        side.unlink()
    elif damage == "bad_json":
        side.write_text("{not json")
    elif damage == "wrong_format":
        side.write_text(json.dumps({**raw, "format": "something"}))
    elif damage == "bad_field":
        side.write_text(json.dumps({**raw, "precision": "int3"}))
    elif damage == "future_version":
        side.write_text(json.dumps({**raw, "format_version": 99}))
    elif damage in ("bool_version", "context_negative", "context_zero", "context_huge", "context_float", "opset"):
        field, value = {
            "bool_version": ("format_version", True),
            "context_negative": ("context_length", -5),
            "context_zero": ("context_length", 0),
            "context_huge": ("context_length", 10**9),
            "context_float": ("context_length", 1e9),
            "opset": ("opset", 99),
        }[damage]
        side.write_text(json.dumps({**raw, field: value}))
    elif damage in ("option_value", "option_unknown"):
        raw["options"] = {"max_tokens": -3} if damage == "option_value" else {"beam_width": 4}
        side.write_text(json.dumps(raw))
    elif damage in ("special_id", "bool_id"):
        raw["special_ids"].update({"bos": 600} if damage == "special_id" else {"eot": True})
        side.write_text(json.dumps(raw))
    elif damage == "negative_bytes":
        raw["graphs"]["logits"]["bytes"] = -1
        side.write_text(json.dumps(raw))
    elif damage == "bad_config":
        raw["config"]["n_heads"] = -2
        side.write_text(json.dumps(raw))
    elif damage == "deep_json":
        side.write_text("[" * 1_000_000)
    elif damage == "huge_file":
        side.write_text(json.dumps(raw) + " " * 2**24)  # valid JSON, too large to be a sidecar
    elif damage == "unfinished_export":
        del raw["parity_skipped"]
        side.write_text(json.dumps(raw))
    elif damage == "missing_graph":
        graph.unlink()
    elif damage == "truncated_graph":
        graph.write_bytes(graph.read_bytes()[:100])
    elif damage == "corrupt_graph":
        graph.write_bytes(b"\x00garbage" * (graph.stat().st_size // 8) + b"\x00" * (graph.stat().st_size % 8))
    elif damage == "path_escape":
        raw["graphs"]["logits"]["file"] = "../logits.onnx"
        side.write_text(json.dumps(raw))
    elif damage == "io_mismatch":
        raw["graphs"]["logits"]["inputs"][0]["name"] = "ids"
        side.write_text(json.dumps(raw))
    elif damage == "tokenizer_vocab":
        shutil.copy(tokenizer_dir / "tokenizer.json", folder / "tokenizer.json")
    elif damage == "tokenizer_corrupt":
        (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(CheckpointError) as info:
        load_bundle(folder, providers="cpu")
    _one_line_error(info.value, str(folder / culprit) if culprit != SIDECAR or damage != "path_escape" else SIDECAR)
    assert pattern in str(info.value)
    if culprit == SIDECAR and damage != "path_escape":  # `<file>: <what>`, the file first
        assert str(info.value).startswith(f"{side}: "), str(info.value)


def test_backend_onnx_on_a_folder_that_is_not_a_bundle_says_so() -> None:
    from llada_sdk import LLaDA

    folder = ROOT / "tests" / "fixtures" / "llada-tiny"
    with pytest.raises(CheckpointError) as info:
        LLaDA.from_pretrained(folder, backend="onnx")
    assert str(info.value) == (
        f"{folder}: this is not an ONNX bundle (it has no {SIDECAR}): export one with `llada export`"
    )


def test_providers_are_typed_ordered_and_rendered_to_onnxruntime_keys(tmp_path: Path) -> None:
    assert [p.kind for p in parse_providers(None)] == ["tensorrt", "cuda", "cpu"]
    assert [p.kind for p in parse_providers(None, "cpu")] == ["cpu"]
    assert parse_providers(None, "cuda:1")[0] == CUDA(device_id=1)
    assert [p.kind for p in parse_providers(["CUDAExecutionProvider"])] == ["cuda", "cpu"]
    assert parse_providers({"kind": "tensorrt", "fp16": True})[0] == TensorRT(fp16=True)
    profile = ShapeProfile.for_canvas((1, 1, 4), (16, 128, 512))
    trt = TensorRT(fp16=True, engine_cache_path=tmp_path, max_workspace_size=1 << 30, profile=profile)
    name, opts = trt.to_ort()
    assert name == "TensorrtExecutionProvider"
    assert opts["trt_fp16_enable"] == "True" and opts["trt_engine_cache_enable"] == "True"
    assert opts["trt_engine_cache_path"] == str(tmp_path) and opts["trt_timing_cache_path"] == str(tmp_path)
    assert opts["trt_max_workspace_size"] == str(1 << 30)
    assert opts["trt_profile_min_shapes"] == "input_ids:1x16,attention_mask:1x16"
    assert opts["trt_profile_max_shapes"] == "input_ids:4x512,attention_mask:4x512"
    assert CUDA(device_id=2, cuda_graph=True).to_ort() == (
        "CUDAExecutionProvider",
        {"device_id": "2", "enable_cuda_graph": "1"},
    )
    rendered = to_ort([TensorRT(), CUDA(), CPU()], available=["CPUExecutionProvider"])
    assert rendered == [("CPUExecutionProvider", {})]
    with pytest.raises(ValueError, match="`providers` entries must be one of tensorrt, cuda, cpu, auto.*'tpu'"):
        parse_providers("tpu")
    with pytest.raises(ValueError, match="`device_id`"):
        parse_providers({"kind": "cuda", "device_id": -1})
    with pytest.raises(ValueError, match="`device` must be 'cpu', 'cuda' or 'cuda:N'"):
        parse_providers(None, "mps")
    with pytest.raises(ValueError, match="must name the same inputs"):
        ShapeProfile(min={"input_ids": [1, 1]}, opt={}, max={})


def test_strict_raises_when_the_requested_provider_is_not_used(fake: Path) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the fallback case needs a CPU-only build or machine")
    with pytest.raises(ProviderUnavailableError, match="requested execution provider 'cuda'.*uses 'cpu'"):
        load_bundle(fake, providers="cuda", strict=True)
    backend, _ = load_bundle(fake, providers="cuda")  # not strict: falls back, and says so
    assert backend.info()["providers"] == ["cpu"] and backend.info()["requested_providers"] == ["cuda", "cpu"]


def test_runtime_modules_import_neither_torch_nor_onnxruntime() -> None:
    code = (
        "import sys, llada_export, llada_export.runtime, llada_export.sidecar, llada_export.providers; "
        "bad = [m for m in ('torch', 'onnxruntime') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    env_path = f"{ROOT}:{ROOT / 'export'}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": env_path, "PATH": "/usr/bin"}
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_missing_onnxruntime_names_the_extra(fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'llada-sdk\[onnx\]'"):
        load_bundle(fake)


def _cuda_available() -> bool:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    except FileNotFoundError:
        return False
    return out.returncode == 0 and "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU and onnxruntime-gpu (llada-sdk[gpu])")
def test_cuda_provider_is_used_with_io_binding(fake: Path) -> None:
    backend, _ = load_bundle(fake, providers="cuda", strict=True)
    assert backend.info()["providers"][0] == "cuda" and backend.info()["device"] == "cuda:0"
    cpu, _ = load_bundle(fake, providers="cpu")
    ids = np.array([[1, 2, 3, 4]])
    assert np.allclose(backend.predictor(None)(ids), cpu.predictor(None)(ids), atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(
    not _cuda_available() or "TensorrtExecutionProvider" not in ort.get_available_providers(),
    reason="needs a GPU, onnxruntime-gpu and the TensorRT 10 libraries",
)
def test_tensorrt_provider_builds_a_cached_engine(fake: Path, tmp_path: Path) -> None:
    trt = TensorRT(engine_cache_path=tmp_path / "trt", profile=ShapeProfile.for_canvas((1, 1, 2), (2, 8, 16)))
    backend, _ = load_bundle(fake, providers=[trt], strict=True)
    assert backend.info()["providers"][0] == "tensorrt"
    backend.predictor(None)(np.array([[1, 2, 3]]))
    assert any((tmp_path / "trt").iterdir())


def _dims(spec: Any) -> list[Any]:
    return list(spec.dims)
