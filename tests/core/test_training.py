"""Training: the objectives, data files, resumable checkpoints in the official layout, `llada train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from llada_sdk import LLaDA
from llada_sdk.training import JsonlData, TrainConfig, TrainingDataError, forward_process, llada_loss, train

SMALL = {
    "steps": 6,
    "batch_size": 4,
    "seq_len": 160,
    "d_model": 32,
    "n_layers": 1,
    "n_heads": 2,
    "mlp_hidden_size": 64,
    "vocab_size": 300,
    "warmup": 2,
    "save_every": 3,
    "threads": 1,
}
CITIES, JOBS = ["Paris", "Lima", "Oslo", "Quito"], ["baker", "pilot", "miner"]
NAMES = ["Alice", "Bruno", "Chen", "Dara", "Emil", "Fana", "Goran", "Hiro", "Ines", "Jomo", "Kira", "Luca"]


def _write_data(path: Path) -> Path:
    """A small JSON-lines file: a document per person, and chats about them."""
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(NAMES):
        city, job = CITIES[i % len(CITIES)], JOBS[i % len(JOBS)]
        rows.append({"text": f"{name} lives in {city} and works as a {job}."})
        chat = [{"role": "user", "content": f"Where does {name} live?"}]
        rows.append({"messages": [*chat, {"role": "assistant", "content": f"{name} lives in {city}."}]})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def data(tmp_path: Path) -> JsonlData:
    return JsonlData(_write_data(tmp_path / "data.jsonl"))


def test_sft_rows_never_mask_the_prompt_and_pretraining_rows_mask_anywhere() -> None:
    ids = torch.arange(100, 164).repeat(512, 1)
    prompt_len = torch.tensor([0, 20] * 256)
    noisy, masked, p = forward_process(ids, prompt_len, mask_id=2, generator=torch.Generator().manual_seed(0))
    sft, pre = masked[1::2], masked[0::2]
    assert not sft[:, :20].any()  # the prompt of an SFT row is never masked
    assert sft[:, 20:].any(dim=0).all() and pre.any(dim=0).all()  # every other position can be
    assert torch.equal(noisy[masked], torch.full_like(noisy[masked], 2)) and torch.equal(noisy[~masked], ids[~masked])
    assert ((p > 0) & (p <= 1)).all()
    # the mask rate follows p: rows with higher p mask more
    rate = masked[0::2].float().mean(1)
    assert torch.corrcoef(torch.stack([rate, p[0::2]]))[0, 1] > 0.9


def test_loss_is_ce_over_masked_tokens_weighted_by_one_over_p_per_answer_length() -> None:
    V, T = 5, 4
    logits = torch.zeros(2, T, V)  # uniform: CE = log 5 at every position
    ids = torch.zeros(2, T, dtype=torch.long)
    masked = torch.tensor([[True, False, True, False], [False, False, True, True]])
    p = torch.tensor([0.5, 0.25])
    prompt_len = torch.tensor([0, 2])
    ce = torch.log(torch.tensor(5.0))
    expected = ((2 * ce / 0.5 / 4) + (2 * ce / 0.25 / 2)) / 2
    assert torch.allclose(llada_loss(logits, ids, masked, p, prompt_len), expected)


def test_a_few_steps_lower_the_loss_and_resume_is_exact(tmp_path: Path, data: JsonlData) -> None:
    cfg = TrainConfig(**{**SMALL, "steps": 40, "save_every": 40, "lr": 1e-2})
    summary = train(cfg, tmp_path / "run", data, progress=False)
    assert summary["losses"][-1] < summary["losses"][0] - 0.5, summary["losses"]

    straight = tmp_path / "straight"
    train(TrainConfig(**SMALL), straight, data, progress=False)
    resumed = tmp_path / "resumed"
    train(TrainConfig(**{**SMALL, "steps": 3}), resumed, data, progress=False)
    assert json.loads((resumed / "trainer_state.json").read_text())["step"] == 3
    train(TrainConfig(**SMALL), resumed, data, progress=False)  # picks up at step 3
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_is_in_the_official_format_and_loads(tmp_path: Path, data: JsonlData) -> None:
    out = tmp_path / "ckpt"
    train(TrainConfig(**{**SMALL, "steps": 2}), out, data, progress=False)
    names = set(load_file(str(out / "model.safetensors")))
    assert "model.transformer.wte.weight" in names and "model.transformer.blocks.0.ff_proj.weight" in names
    config = json.loads((out / "config.json").read_text())
    assert config["block_type"] == "llama" and config["model_type"] == "llada" and config["weight_tying"] is False
    llm = LLaDA.from_pretrained(out, device="cpu")
    tok = llm.tokenizer
    assert tok is not None and tok.chat_template and "<|start_header_id|>" in tok.chat_template
    assert llm.config.mask_token_id == tok.token_to_id("<|mdm_mask|>")
    assert llm.config.eot_token_id == tok.token_to_id("<|eot_id|>")
    assert llm.infill("Alice lives in [MASK:2].").lengths == [2]


def test_bad_training_settings_name_the_field() -> None:
    import pytest

    with pytest.raises(ValueError, match=r"`steps` must be >= 1, got 0"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match=r"`sft_fraction` must be in \[0, 1\], got 1.5"):
        TrainConfig(sft_fraction=1.5)


def test_too_short_rows_are_refused_before_training(tmp_path: Path, data: JsonlData) -> None:
    import pytest

    with pytest.raises(ValueError, match=r"`seq_len` \(12\) is too short: chat 1 of .*data.jsonl needs \d+ tokens"):
        train(TrainConfig(**{**SMALL, "seq_len": 12}), tmp_path / "short", data, progress=False)


def test_init_from_starts_from_another_checkpoint_of_the_same_tokenizer_and_sizes(
    tmp_path: Path, data: JsonlData
) -> None:
    first = tmp_path / "first"
    train(TrainConfig(**{**SMALL, "steps": 3}), first, data, progress=False)
    # zero steps of lr 0 would be no training at all: one step with lr ~0 keeps the loaded weights
    second = tmp_path / "second"
    train(TrainConfig(**{**SMALL, "steps": 1, "lr": 1e-12, "init_from": str(first)}), second, data, progress=False)
    a, b = load_file(str(first / "model.safetensors")), load_file(str(second / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    fresh = tmp_path / "fresh"
    train(TrainConfig(**{**SMALL, "steps": 1, "lr": 1e-12}), fresh, data, progress=False)
    c = load_file(str(fresh / "model.safetensors"))
    assert not all(torch.allclose(a[k], c[k], atol=1e-6) for k in a)  # without it: the seeded init
    with pytest.raises(ValueError, match="`init_from`.*has no tokenizer.json"):
        train(TrainConfig(**{**SMALL, "init_from": str(tmp_path)}), tmp_path / "v", data, progress=False)
    with pytest.raises(ValueError, match="`init_from`.*sizes"):
        train(TrainConfig(**{**SMALL, "d_model": 64, "init_from": str(first)}), tmp_path / "d", data, progress=False)


def test_train_only_updates_the_named_parameters_and_freezes_the_rest(tmp_path: Path, data: JsonlData) -> None:
    first = tmp_path / "first"
    train(TrainConfig(**{**SMALL, "steps": 2}), first, data, progress=False)
    attn = "q_proj,k_proj,v_proj,attn_out"
    second = tmp_path / "second"
    train(
        TrainConfig(**{**SMALL, "steps": 3, "init_from": str(first), "train_only": attn}), second, data, progress=False
    )
    a, b = load_file(str(first / "model.safetensors")), load_file(str(second / "model.safetensors"))
    moved = {k for k in a if not torch.equal(a[k], b[k])}
    names = {k.split(".")[-2] for k in moved}
    assert names == {"q_proj", "k_proj", "v_proj", "attn_out"}, names
    assert len(moved) == 4 * SMALL.get("n_layers", TrainConfig.n_layers)  # every layer's four, nothing else
    # only the trained parameters have optimizer moments (a resumed run restores exactly those)
    state = load_file(str(second / "trainer_state.safetensors"))
    assert {k.split("/")[1].split(".")[-2] for k in state if k.startswith("opt/")} == names
    with pytest.raises(ValueError, match="`train_only`.*matches no parameter.*q_proj"):
        train(TrainConfig(**{**SMALL, "train_only": "attention"}), tmp_path / "x", data, progress=False)
    with pytest.raises(ValueError, match="`train_only` must name"):
        TrainConfig(train_only=" , ")


def test_a_data_file_is_documents_and_chats_and_a_bad_line_is_named(tmp_path: Path, data: JsonlData) -> None:
    assert len(data.docs) == len(data.chats) == len(NAMES)
    tok_texts = data.tokenizer_texts()
    assert "Alice lives in Paris." in tok_texts and "assistant" in tok_texts
    bad = {
        '{"text": ""}': r"line 2: expected",
        "not json": r"line 2: not JSON",
        '{"messages": [{"role": "user", "content": "hi"}]}': r"line 2: `messages` must be",
        '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}': "last role is 'assistant'",
    }
    for line, match in bad.items():
        path = tmp_path / "bad.jsonl"
        path.write_text('{"text": "fine"}\n' + line + "\n")
        with pytest.raises(TrainingDataError, match=match):
            JsonlData(path)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TrainingDataError, match="holds no documents or chats"):
        JsonlData(tmp_path / "empty.jsonl")


def test_chat_rows_train_the_answer_and_document_rows_are_packed(tmp_path: Path, data: JsonlData) -> None:
    from llada_sdk.training import train_tokenizer

    tok = train_tokenizer(data.tokenizer_texts(), 300, tool_tokens=True)
    rows = data.rows(tok, 64, 0.5, seed=0)
    batch = rows.batch(64)
    eos, eot = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|eot_id|>")
    assert batch.is_sft.any() and (~batch.is_sft).any() and batch.ids.shape == (64, 64)
    for ids, plen, sft in zip(batch.ids.tolist(), batch.prompt_len.tolist(), batch.is_sft.tolist()):
        if sft:  # prompt = the chat up to the assistant header; the answer ends with <|eot_id|>
            assert tok.decode(ids[:plen]).startswith("user\n\nWhere does") and eot in ids[plen:]
            answer = tok.decode(ids[plen : ids.index(eot, plen)])
            assert answer.endswith(".") and " lives in " in answer
        else:  # whole documents, each BOS ... EOS
            assert plen == 0 and ids.count(tok.token_to_id("<|startoftext|>")) >= 2 and ids[-1] == eos


def test_llada_train_trains_on_a_data_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from llada_cli.main import cli

    path = _write_data(tmp_path / "data.jsonl")
    out = tmp_path / "run"
    small = ["--steps", "2", "--batch-size", "2", "--seq-len", "64", "--d-model", "32", "--n-layers", "1"]
    result = CliRunner().invoke(cli, ["train", "--data", str(path), "--out", str(out), *small, "--vocab-size", "300"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["steps"] == 2
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    info = CliRunner().invoke(cli, ["info", "-m", str(out)])  # what docs/cli.md does next
    assert info.exit_code == 0 and "trained window  64 tokens" in info.output, info.output
    bad = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "missing.jsonl"), "--out", str(out)])
    assert bad.exit_code != 0 and "`data`: cannot read" in bad.output
