"""Training objectives, resumable checkpoints, the corpus and its held-out split."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from llada_sdk import LLaDA
from llada_sdk.corpus import build_corpus, count_doc, is_held_out_count
from llada_sdk.training import TrainConfig, forward_process, llada_loss, train

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
# the recipe of runs/bundled-v2 (issue 10): python -m llada_sdk.training --out DIR --tools --steps 3200
#   --seq-len 160 --vocab-size 1024 --sft-fraction 0.45
TOOL_RECIPE = {"tools": True, "steps": 3200, "seq_len": 160, "vocab_size": 1024, "sft_fraction": 0.45}


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


def test_a_few_steps_lower_the_loss_and_resume_is_exact(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**SMALL, "steps": 40, "save_every": 40, "lr": 1e-2})
    summary = train(cfg, tmp_path / "run", progress=False)
    assert summary["losses"][-1] < summary["losses"][0] - 0.5, summary["losses"]

    straight = tmp_path / "straight"
    train(TrainConfig(**SMALL), straight, progress=False)
    resumed = tmp_path / "resumed"
    train(TrainConfig(**{**SMALL, "steps": 3}), resumed, progress=False)
    assert json.loads((resumed / "trainer_state.json").read_text())["step"] == 3
    train(TrainConfig(**SMALL), resumed, progress=False)  # picks up at step 3
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_is_in_the_official_format_and_loads(tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    train(TrainConfig(**{**SMALL, "steps": 2}), out, progress=False)
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


def test_corpus_is_deterministic_and_the_held_out_split_is_disjoint() -> None:
    a, b = build_corpus(0), build_corpus(0)
    assert a.docs == b.docs and a.chat == b.chat
    assert build_corpus(1).docs != a.docs
    held_out = [s for s in range(200) if is_held_out_count(s)]
    assert held_out
    for s in held_out:  # no training document is a held-out counting window
        assert not any(
            doc == count_doc(s, k) or doc.startswith(count_doc(s, 3) + " ") for doc in a.docs for k in range(3, 7)
        )
    held_q = {q for q, _ in a.held_out_chat}
    assert held_q and not held_q & {q for q, _ in a.chat}
    # every chat answer about a held-out person is absent from the chat data
    assert not {ans for _, ans in a.held_out_chat} & {ans for _, ans in a.chat}
    # forward templates only: the parent never comes first
    for p in a.people:
        assert not any(doc.startswith(p.parent) for doc in a.docs)


def test_bad_training_settings_name_the_field() -> None:
    import pytest

    with pytest.raises(ValueError, match=r"`steps` must be >= 1, got 0"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match=r"`sft_fraction` must be in \[0, 1\], got 1.5"):
        TrainConfig(sft_fraction=1.5)


def test_too_short_rows_are_refused_before_training(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(ValueError, match=r"`seq_len` \(32\) is too short: a two-turn chat row needs \d+ tokens"):
        train(TrainConfig(**{**SMALL, "seq_len": 32}), tmp_path / "short", progress=False)


def test_tool_rows_fit_and_every_batch_is_of_one_kind() -> None:
    from llada_sdk.corpus import tokenizer_training_text
    from llada_sdk.text.tools import TOOL_CALL_OPEN
    from llada_sdk.training import RowSampler, train_tokenizer

    cfg = TrainConfig(**TOOL_RECIPE)
    corpus = build_corpus(cfg.seed, tools=True)
    tok = train_tokenizer(tokenizer_training_text(corpus), cfg.vocab_size, tool_tokens=True)
    call_id = tok.token_to_id(TOOL_CALL_OPEN)
    assert call_id is not None and tok.encode(TOOL_CALL_OPEN, add_special_tokens=False).ids == [call_id]
    sampler = RowSampler(
        corpus, tok, cfg.seq_len, cfg.sft_fraction, 0, cfg.tool_fraction, cfg.extract_fraction, cfg.seq_len, kinds=True
    )
    kinds = {"pre": 0, "chat": 0, "tool": 0}
    for _ in range(300):
        b = sampler.batch(8)
        if not b.is_sft.any():
            assert b.ids.shape[1] == cfg.seq_len and not b.prompt_len.any()
            kinds["pre"] += 1
            continue
        assert b.is_sft.all() and b.ids.shape[1] <= cfg.seq_len
        tool_rows = (b.ids == call_id).any(1)
        assert tool_rows.all() or not tool_rows.any()  # a batch is all tool use or all plain chat
        kinds["tool" if tool_rows.any() else "chat"] += 1
        # at least SFT_TAIL (or up to seq_len) end-of-text positions after the longest answer
        assert (b.ids[:, -1] == tok.token_to_id("<|endoftext|>")).all()
    sft = kinds["chat"] + kinds["tool"]
    assert abs(sft / 300 - cfg.sft_fraction) < 0.1 and abs(kinds["tool"] / sft - cfg.tool_fraction) < 0.15, kinds


def test_fresh_people_rows_are_about_new_names_every_time() -> None:
    from llada_sdk.corpus import tokenizer_training_text
    from llada_sdk.training import RowSampler, train_tokenizer

    cfg = TrainConfig(**TOOL_RECIPE)
    corpus = build_corpus(cfg.seed, tools=True)
    tok = train_tokenizer(tokenizer_training_text(corpus), cfg.vocab_size, tool_tokens=True)
    args = (corpus, tok, cfg.seq_len, 1.0, 0, 1.0, cfg.extract_fraction, cfg.seq_len)
    fresh, fixed = RowSampler(*args, fresh_people=True, kinds=True), RowSampler(*args, kinds=True)
    trained = {p.name for p in corpus.synthetic}
    rows = [tok.decode(fresh._sft_row(True)[0]) for _ in range(40)]
    names = {n for r in rows if '"name": "' in r for n in [r.split('"name": "')[-1].split('"')[0]]}
    assert len(names) >= 20 and not names & trained  # new people, never the fixed synthetic set
    assert tok.decode(fixed._sft_row(True)[0]).count("<tool_call>") >= 1


def recipe_commands() -> list[tuple[str, list[str]]]:
    """The commands of docs/train_bundled.sh as ``(program, argv)``, its variables expanded."""
    import shlex

    text = (Path(__file__).parents[2] / "docs" / "train_bundled.sh").read_text().replace("\\\n", " ")
    variables = {"runs": "runs"}
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("tool_rows="):
            variables["tool_rows"] = shlex.split(line.split("=", 1)[1])[0]
        elif line.startswith("python "):
            for name, value in variables.items():
                line = line.replace(f'"${name}"', value).replace(f"${name}", value)
            words = shlex.split(line)
            program = words[2] if words[1] == "-m" else words[1]
            out.append((program, words[3:] if words[1] == "-m" else words[2:]))
    return out


def test_the_recipe_script_is_the_shipped_models() -> None:
    """docs/train_bundled.sh: every training command parses, each phase starts from the last one, and the
    tokenizer those runs train is the bundled model's (the same ids, so the weights mean the same)."""
    from llada_sdk.corpus import tokenizer_training_text
    from llada_sdk.training import parse_args, train_tokenizer

    commands = recipe_commands()
    assert [c[0] for c in commands] == ["benchmarks/copy_probe.py", *["llada_sdk.training"] * 3, "llada_sdk.eval"]
    previous = dict(zip(commands[0][1][::2], commands[0][1][1::2]))["--save"]
    configs = []
    for _, argv in commands[1:4]:
        out, _resume, cfg = parse_args(argv)
        assert cfg.init_from == previous and cfg.tools and cfg.split_spaces and cfg.fresh_people
        assert (cfg.vocab_size, cfg.seq_len, cfg.pretrain_len) == (512, 192, 96)
        previous = out
        configs.append(cfg)
    assert commands[-1][1] == ["--model", previous] == ["--model", "runs/bundled"]
    bundled = Path(__file__).parents[2] / "llada_sdk" / "bundled" / "llada-tiny-kb"
    corpus = build_corpus(configs[0].seed, tools=True)
    tok = train_tokenizer(tokenizer_training_text(corpus), 512, tool_tokens=True, split_spaces=True)
    assert json.loads(tok.to_str()) == json.loads((bundled / "tokenizer.json").read_text())
    assert json.loads((bundled / "config.json").read_text())["vocab_size"] == tok.get_vocab_size() == 514


def test_the_default_recipe_is_the_first_models() -> None:
    """Without flags, training is the first bundled model's recipe (no tool rows, GPT-2 pre-tokenizer)."""
    cfg = TrainConfig()
    assert (cfg.steps, cfg.seq_len, cfg.vocab_size, cfg.sft_fraction, cfg.tools, cfg.split_spaces) == (
        8000,
        96,
        512,
        0.3,
        False,
        False,
    )
    corpus = build_corpus(cfg.seed)
    assert not corpus.conversations and not corpus.extraction  # the tool rows are opt-in (tools=True)


def test_split_spaces_makes_a_word_the_same_tokens_after_a_space_or_a_quote() -> None:
    from llada_sdk.corpus import tokenizer_training_text
    from llada_sdk.training import train_tokenizer

    texts = tokenizer_training_text(build_corpus(0, tools=True))

    def ids(tok: object, text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False).ids)  # type: ignore[attr-defined]

    split = train_tokenizer(texts, 512, tool_tokens=True, split_spaces=True)
    space, quote = ids(split, " "), ids(split, '"')
    for word in ("Kelso", "Zibrou", "pilot", "Quillby"):  # a city, an unseen name, a job
        assert ids(split, f" {word}") == space + ids(split, word)
        assert ids(split, f'"{word}"') == quote + ids(split, word) + quote
        assert split.decode(ids(split, f"Where does {word} live?")) == f"Where does {word} live?"
    # the GPT-2 split glues the space to the word: " Kelso" and "Kelso" share no token
    plain = train_tokenizer(texts, 512, tool_tokens=True)
    assert not set(ids(plain, " Kelso")) & set(ids(plain, "Kelso"))


def test_extraction_rows_are_sft_rows_about_people_the_evaluation_never_asks_about() -> None:
    from llada_sdk.corpus import N_SYNTHETIC, synthetic_people, tokenizer_training_text
    from llada_sdk.training import RowSampler, train_tokenizer

    corpus = build_corpus(0, tools=True)
    tok = train_tokenizer(tokenizer_training_text(corpus), 512, tool_tokens=True, split_spaces=True)
    sampler = RowSampler(corpus, tok, 192, 1.0, 0, 1.0, 0.1, 96, fresh_people=True, kinds=True, extract_sft=0.5)
    kb = {n for p in corpus.people for n in (p.name, p.parent)}
    evaluated = {p.name for p in synthetic_people(0, N_SYNTHETIC + 40, exclude=kb)[N_SYNTHETIC:]}
    extraction = 0
    for _ in range(60):
        row, prompt_len = sampler._sft_row(True)
        if tok.id_to_token(row[-1]) != "<|endoftext|>":
            continue  # a tool-use conversation (ends with <|eot_id|>)
        extraction += 1
        prompt, answer = tok.decode(row[:prompt_len]), tok.decode(row[prompt_len:])
        assert row[0] == tok.token_to_id("<|startoftext|>") and prompt.endswith(".\n")
        facts = json.loads(answer)
        assert set(facts) == {"name", "city", "job"} and all(v in prompt for v in facts.values())
        assert facts["name"] not in evaluated and facts["name"] not in kb
    assert 15 <= extraction <= 45  # extract_sft = 0.5 of the tool-kind rows


def test_copy_probe_rows_hold_their_facts_in_the_prompt(load_script: Callable[[str], Any]) -> None:
    import random

    from llada_sdk.corpus import synthetic_people

    probe = load_script("benchmarks/copy_probe.py")
    rng = random.Random(0)
    for kind, keys in (("city", [{"city"}]), ("short", [{"city"}, {"name", "city"}, {"name", "job", "city"}])):
        for p in synthetic_people(0, 20):
            text, facts = probe.make_row(kind, p, rng)
            assert set(facts) in keys and all(v in text.split() for v in facts.values())
    text, facts = probe.make_row("full", synthetic_people(0, 1)[0], rng)
    assert set(facts) == {"name", "city", "job"} and all(v in text for v in facts.values())


@pytest.mark.slow
def test_copy_probe_learns_to_copy_a_word_at_a_fixed_distance(load_script: Callable[[str], Any]) -> None:
    rows = load_script("benchmarks/copy_probe.py").probe("city", 300, 3e-3)
    assert [r["step"] for r in rows] == [150, 300]
    assert rows[-1]["city_copy_same_kind"] >= 0.7  # 90 % measured (docs/benchmarks.md); chance is 8 %


def test_init_from_starts_from_another_checkpoint_of_the_same_tokenizer_and_sizes(tmp_path: Path) -> None:
    first = tmp_path / "first"
    train(TrainConfig(**{**SMALL, "steps": 3}), first, progress=False)
    # zero steps of lr 0 would be no training at all: one step with lr ~0 keeps the loaded weights
    second = tmp_path / "second"
    train(TrainConfig(**{**SMALL, "steps": 1, "lr": 1e-12, "init_from": str(first)}), second, progress=False)
    a, b = load_file(str(first / "model.safetensors")), load_file(str(second / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    fresh = tmp_path / "fresh"
    train(TrainConfig(**{**SMALL, "steps": 1, "lr": 1e-12}), fresh, progress=False)
    c = load_file(str(fresh / "model.safetensors"))
    assert not all(torch.allclose(a[k], c[k], atol=1e-6) for k in a)  # without it: the seeded init
    with pytest.raises(ValueError, match="`init_from`.*tokenizer"):
        train(TrainConfig(**{**SMALL, "vocab_size": 320, "init_from": str(first)}), tmp_path / "v", progress=False)
    with pytest.raises(ValueError, match="`init_from`.*sizes"):
        train(TrainConfig(**{**SMALL, "d_model": 64, "init_from": str(first)}), tmp_path / "d", progress=False)


def test_train_only_updates_the_named_parameters_and_freezes_the_rest(tmp_path: Path) -> None:
    first = tmp_path / "first"
    train(TrainConfig(**{**SMALL, "steps": 2}), first, progress=False)
    attn = "q_proj,k_proj,v_proj,attn_out"
    second = tmp_path / "second"
    train(TrainConfig(**{**SMALL, "steps": 3, "init_from": str(first), "train_only": attn}), second, progress=False)
    a, b = load_file(str(first / "model.safetensors")), load_file(str(second / "model.safetensors"))
    moved = {k for k in a if not torch.equal(a[k], b[k])}
    names = {k.split(".")[-2] for k in moved}
    assert names == {"q_proj", "k_proj", "v_proj", "attn_out"}, names
    assert len(moved) == 4 * SMALL.get("n_layers", TrainConfig.n_layers)  # every layer's four, nothing else
    # only the trained parameters have optimizer moments (a resumed run restores exactly those)
    state = load_file(str(second / "trainer_state.safetensors"))
    assert {k.split("/")[1].split(".")[-2] for k in state if k.startswith("opt/")} == names
    with pytest.raises(ValueError, match="`train_only`.*matches no parameter.*q_proj"):
        train(TrainConfig(**{**SMALL, "train_only": "attention"}), tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="`train_only` must name"):
        TrainConfig(train_only=" , ")
