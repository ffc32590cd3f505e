"""Config refusal, the 8B names and size, local / sharded / Hub loading, and loading errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from llada_sdk import CheckpointError, ConfigError, LLaDA, LLaDAConfig, ModelNotFoundError, TokenizerError
from tests.conftest import META_8B, TINY


def _copy_tiny(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(TINY / name, dst / name)
    return dst


def test_8b_config_parameter_count_and_names_match_the_real_checkpoint() -> None:
    from llada_sdk.model import LLaDAModel

    raw = json.loads((META_8B / "config.json").read_text())
    cfg = LLaDAConfig.from_hf_dict(raw)
    assert cfg.num_parameters() == 8_015_581_184
    model = LLaDAModel(cfg, device="meta")
    assert sum(p.numel() for p in model.parameters()) == 8_015_581_184
    index = json.loads((META_8B / "model.safetensors.index.json").read_text())
    assert {f"model.{k}" for k in model.state_dict()} == set(index["weight_map"])
    assert index["metadata"]["total_size"] == 2 * cfg.num_parameters()  # bf16
    assert (cfg.mask_token_id, cfg.eos_token_id) == (126336, 126081)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("block_type", "sequential"),
        ("alibi", True),
        ("include_bias", True),
        ("weight_tying", True),
        ("activation_type", "swiglu"),
        ("layer_norm_type", "default"),
        ("rope", False),
        ("scale_logits", True),
        ("attention_layer_norm", True),
        ("input_emb_norm", True),
        ("block_group_size", 2),
        ("include_qkv_bias", True),
    ],
)
def test_unsupported_config_values_are_refused_by_name(key: str, value: Any) -> None:
    raw = json.loads((TINY / "config.json").read_text())
    raw[key] = value
    with pytest.raises(ConfigError, match=rf"`{key}` = {value!r}"):
        LLaDAConfig.from_hf_dict(raw)


def test_missing_block_type_is_refused_with_the_reference_default() -> None:
    raw = json.loads((TINY / "config.json").read_text())
    del raw["block_type"]
    with pytest.raises(ConfigError, match=r"`block_type` = missing \(reference default 'sequential'\)"):
        LLaDAConfig.from_hf_dict(raw)


def test_unsupported_architecture_is_refused_at_load(tmp_path: Path) -> None:
    d = _copy_tiny(tmp_path / "m")
    raw = json.loads((d / "config.json").read_text())
    raw["weight_tying"] = True
    (d / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="weight_tying"):
        LLaDA.from_pretrained(d, device="cpu")


def test_mlp_ratio_and_grouped_query_attention_follow_the_reference() -> None:
    from llada_sdk.model import LLaDAModel

    raw = json.loads((TINY / "config.json").read_text())
    raw.update(mlp_hidden_size=None, mlp_ratio=3, n_kv_heads=2)
    cfg = LLaDAConfig.from_hf_dict(raw)
    assert cfg.mlp_hidden_size == 3 * 64 and cfg.n_kv_heads == 2
    model = LLaDAModel(cfg)
    assert model.transformer.blocks[0].k_proj.weight.shape == (32, 64)
    assert sum(p.numel() for p in model.parameters()) == cfg.num_parameters()
    with torch.inference_mode():
        assert model(torch.tensor([[1, 2, 3]])).shape == (1, 3, 384)


def test_config_round_trips_through_hf_dict() -> None:
    raw = json.loads((TINY / "config.json").read_text())
    cfg = LLaDAConfig.from_hf_dict(raw)
    again = cfg.to_hf_dict()
    for key, value in raw.items():
        assert again[key] == value, key


def test_local_directory_loads_in_each_dtype(tmp_path: Path) -> None:
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        llm = LLaDA.from_pretrained(TINY, device="cpu", dtype=dtype)
        assert all(p.dtype == dtype for p in llm.model.parameters())
        assert llm.source is not None and llm.source.kind == "local"


def test_bf16_checkpoint_loads_as_bf16_without_a_float32_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "bf16"
    d.mkdir()
    shutil.copy(TINY / "config.json", d / "config.json")
    save_file(
        {k: v.to(torch.bfloat16) for k, v in load_file(str(TINY / "model.safetensors")).items()},
        str(d / "model.safetensors"),
    )
    seen: list[torch.dtype] = []
    real_empty = torch.empty

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        out = real_empty(*args, **kwargs)
        if out.device.type != "meta":  # the model skeleton is built on the meta device
            seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch, "empty", spy)
    llm = LLaDA.from_pretrained(d, device="cpu", dtype="bfloat16")  # as the checkpoint: no conversion
    monkeypatch.undo()
    assert llm.model.dtype == torch.bfloat16
    assert seen and set(seen) == {torch.bfloat16}  # every read buffer was bf16, none float32


def test_half_precision_checkpoints_load_as_float32_on_a_cpu_without_fast_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from llada_cli.main import cli
    from llada_sdk.backends import torch_backend as tb
    from llada_sdk.loading import BUNDLED_DIR

    folder = tmp_path / "bf16"
    shutil.copytree(BUNDLED_DIR, folder)
    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in weights.items()}, str(folder / "model.safetensors"))
    monkeypatch.setattr(tb, "cpu_has_fast_half", lambda: False)
    slow_cpu = LLaDA.from_pretrained(folder, device="cpu")
    assert slow_cpu.model.dtype == torch.float32 and "no native bfloat16" in slow_cpu.backend.info()["dtype_note"]
    monkeypatch.setattr(tb, "cpu_has_fast_half", lambda: True)
    fast_cpu = LLaDA.from_pretrained(folder, device="cpu")
    assert (
        fast_cpu.model.dtype == torch.bfloat16 and fast_cpu.backend.info()["dtype_note"] == "the checkpoint's own dtype"
    )
    asked = LLaDA.from_pretrained(folder, device="cpu", dtype="bfloat16")
    assert asked.model.dtype == torch.bfloat16
    out = CliRunner().invoke(cli, ["info", "-m", str(folder), "--json"])
    assert json.loads(out.output)["dtype"] in ("float32", "bfloat16") and json.loads(out.output)["dtype_note"]


def test_sharded_checkpoint_loads(tmp_path: Path, tiny: Any) -> None:
    d = tmp_path / "sharded"
    d.mkdir()
    shutil.copy(TINY / "config.json", d / "config.json")
    tensors = load_file(str(TINY / "model.safetensors"))
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(d / shard))
        weight_map.update({k: shard for k in keys})
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    llm = LLaDA.from_pretrained(d, device="cpu")
    for (n1, p1), (n2, p2) in zip(llm.model.state_dict().items(), tiny.model.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    (d / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors"):
        LLaDA.from_pretrained(d, device="cpu")


def _hub_cache(root: Path, repo: str, files: dict[str, Path], commit: str = "a" * 40) -> None:
    repo_dir = root / "hub" / f"models--{repo.replace('/', '--')}"
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    for name, src in files.items():
        shutil.copy(src, snap / name)


def test_hub_repo_id_resolves_from_an_offline_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tokenizer_dir: Path
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    files = {"config.json": TINY / "config.json", "model.safetensors": TINY / "model.safetensors"}
    _hub_cache(tmp_path, "GSAI-ML/LLaDA-tiny-test", files)
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    llm = LLaDA.from_pretrained("GSAI-ML/LLaDA-tiny-test", device="cpu", eot_token_id=348)
    assert llm.source is not None and llm.source.kind == "hub" and llm.source.repo_id == "GSAI-ML/LLaDA-tiny-test"
    assert llm.config.d_model == 64
    with pytest.raises(ModelNotFoundError, match="not in the Hub cache"):
        LLaDA.from_pretrained("GSAI-ML/not-cached", device="cpu")


def test_hub_download_asks_only_for_weights_config_and_tokenizer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub

    seen: dict[str, Any] = {}

    def fake(repo_id: str, revision: str | None = None, allow_patterns: list[str] | None = None, **kw: Any) -> str:
        seen.update(repo_id=repo_id, revision=revision, allow_patterns=allow_patterns)
        return str(_copy_tiny(tmp_path / "snap"))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    LLaDA.from_pretrained("owner/model", revision="v1.0", device="cpu")
    assert seen["repo_id"] == "owner/model" and seen["revision"] == "v1.0"
    assert not any(p.endswith(".py") or p == "*" for p in seen["allow_patterns"])


def test_missing_directory_and_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="/no/such/dir"):
        LLaDA.from_pretrained("/no/such/dir", device="cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        LLaDA.from_pretrained(empty, device="cpu")
    shutil.copy(TINY / "config.json", empty / "config.json")
    (empty / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match=r"no model.safetensors.*pytorch_model.bin.*never loaded"):
        LLaDA.from_pretrained(empty, device="cpu")


def test_missing_and_unexpected_tensors_are_named(tmp_path: Path) -> None:
    d = _copy_tiny(tmp_path / "m")
    tensors = load_file(str(d / "model.safetensors"))
    del tensors["model.transformer.blocks.1.up_proj.weight"]
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing 1 tensor.*model.transformer.blocks.1.up_proj.weight"):
        LLaDA.from_pretrained(d, device="cpu")
    tensors = load_file(str(TINY / "model.safetensors"))
    tensors["model.transformer.blocks.0.q_norm.weight"] = torch.ones(64)
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"unexpected tensor.*blocks.0.q_norm.weight"):
        LLaDA.from_pretrained(d, device="cpu")


def test_shape_mismatch_names_tensor_and_shapes(tmp_path: Path) -> None:
    d = _copy_tiny(tmp_path / "m")
    tensors = load_file(str(d / "model.safetensors"))
    tensors["model.transformer.blocks.0.ff_proj.weight"] = torch.zeros(100, 64)
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"blocks.0.ff_proj.weight.*expects \[192, 64\].*has \[100, 64\]"):
        LLaDA.from_pretrained(d, device="cpu")


@pytest.mark.parametrize("damage", ["truncate", "header", "tiny"])
def test_corrupt_safetensors_is_reported(tmp_path: Path, damage: str) -> None:
    d = _copy_tiny(tmp_path / "m")
    data = (d / "model.safetensors").read_bytes()
    bad = {"truncate": data[: len(data) // 2], "header": data[:8] + b"{not json" + data[17:], "tiny": b"abc"}[damage]
    (d / "model.safetensors").write_bytes(bad)
    with pytest.raises(CheckpointError, match="corrupt safetensors"):
        LLaDA.from_pretrained(d, device="cpu")


def test_bad_dtype_and_device_are_named() -> None:
    with pytest.raises(ValueError, match=r"`dtype` must be one of .* got 'int8'"):
        LLaDA.from_pretrained(TINY, device="cpu", dtype="int8")
    with pytest.raises(ValueError, match="`device`"):
        LLaDA.from_pretrained(TINY, device="tpu-9")


def test_special_id_overrides_and_tokenizer_ids(tmp_path: Path, tokenizer_dir: Path) -> None:
    llm = LLaDA.from_pretrained(TINY, device="cpu", eot_token_id=348, mask_token_id=335, eos_token_id=300)
    assert (llm.config.mask_token_id, llm.config.eos_token_id, llm.config.eot_token_id) == (335, 300, 348)
    assert llm.tokenizer is None
    with pytest.raises(TokenizerError, match="no tokenizer files"):
        llm.infill("a [MASK] b")
    with pytest.raises(TokenizerError, match="no tokenizer files"):
        llm.chat([{"role": "user", "content": "hi"}])
    d = _copy_tiny(tmp_path / "withtok")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, d / name)
    llm = LLaDA.from_pretrained(d, device="cpu")
    assert llm.tokenizer is not None
    assert llm.config.eot_token_id == llm.tokenizer.token_to_id("<|eot_id|>")
    assert llm.config.bos_token_id == llm.tokenizer.token_to_id("<|startoftext|>")
