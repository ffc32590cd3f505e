"""The bundled model's recipe: its corpus, its rows and the script of its phases."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recipes.bundled_model.corpus import build_corpus, count_doc, is_held_out_count
from recipes.bundled_model.train import BundledConfig

# the tool recipe of an earlier bundled model: --tools --steps 3200 --seq-len 160 --vocab-size 1024 --sft-fraction 0.45
TOOL_RECIPE = {"tools": True, "steps": 3200, "seq_len": 160, "vocab_size": 1024, "sft_fraction": 0.45}


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


def test_tool_rows_fit_and_every_batch_is_of_one_kind() -> None:
    from llada_sdk.text.tools import TOOL_CALL_OPEN
    from llada_sdk.training import train_tokenizer
    from recipes.bundled_model.corpus import tokenizer_training_text
    from recipes.bundled_model.rows import RowSampler

    cfg = BundledConfig(**TOOL_RECIPE)
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
    from llada_sdk.training import train_tokenizer
    from recipes.bundled_model.corpus import tokenizer_training_text
    from recipes.bundled_model.rows import RowSampler

    cfg = BundledConfig(**TOOL_RECIPE)
    corpus = build_corpus(cfg.seed, tools=True)
    tok = train_tokenizer(tokenizer_training_text(corpus), cfg.vocab_size, tool_tokens=True)
    args = (corpus, tok, cfg.seq_len, 1.0, 0, 1.0, cfg.extract_fraction, cfg.seq_len)
    fresh, fixed = RowSampler(*args, fresh_people=True, kinds=True), RowSampler(*args, kinds=True)
    trained = {p.name for p in corpus.synthetic}
    rows = [tok.decode(fresh._sft_row(True)[0]) for _ in range(40)]
    names = {n for r in rows if '"name": "' in r for n in [r.split('"name": "')[-1].split('"')[0]]}
    assert len(names) >= 20 and not names & trained  # new people, never the fixed synthetic set
    assert tok.decode(fixed._sft_row(True)[0]).count("<tool_call>") >= 1


def test_long_names_draws_people_whose_names_are_long() -> None:
    """``long_names``: that share of the fresh people has a name of ``LONG_NAME_TOKENS`` tokens or more
    (the names a small model copies wrong first); without it such names are the minority."""
    from llada_sdk.training import train_tokenizer
    from recipes.bundled_model.corpus import tokenizer_training_text
    from recipes.bundled_model.rows import LONG_NAME_TOKENS, RowSampler

    cfg = BundledConfig(**TOOL_RECIPE)
    corpus = build_corpus(cfg.seed, tools=True)
    tok = train_tokenizer(tokenizer_training_text(corpus), cfg.vocab_size, tool_tokens=True)
    args = (corpus, tok, cfg.seq_len, 1.0, 0, 1.0, cfg.extract_fraction, cfg.seq_len)

    def lengths(long_names: float) -> list[int]:
        rows = RowSampler(*args, fresh_people=True, kinds=True, long_names=long_names)
        return [len(rows.enc_text(rows._fresh_person().name)) for _ in range(60)]

    assert min(lengths(1.0)) >= LONG_NAME_TOKENS
    assert sum(n >= LONG_NAME_TOKENS for n in lengths(0.0)) < 30


def recipe_commands() -> list[tuple[str, list[str]]]:
    """The commands of recipes/bundled_model/train.sh as ``(program, argv)``, its variables expanded."""
    import shlex

    text = (Path(__file__).parents[2] / "recipes" / "bundled_model" / "train.sh").read_text().replace("\\\n", " ")
    variables = {"runs": "runs"}
    out = []
    for line in text.splitlines():
        line = line.strip()
        line = re.sub(r"^phase \d+ && ", "", line)  # `train.sh RUNS N` skips the phases before N
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
    """recipes/bundled_model/train.sh: every training command parses, each phase starts from the last one, and the
    tokenizer those runs train is the bundled model's (the same ids, so the weights mean the same)."""
    from llada_sdk.training import train_tokenizer
    from recipes.bundled_model.corpus import tokenizer_training_text
    from recipes.bundled_model.train import parse_args

    commands = recipe_commands()
    script = (Path(__file__).parents[2] / "recipes" / "bundled_model" / "train.sh").read_text()
    assert re.findall(r"^phase (\d+) && python ", script, re.M) == [str(i) for i in range(8)]  # numbered in order
    programs = ["benchmarks/copy_probe.py", *["recipes.bundled_model.train"] * 7, "recipes.bundled_model.eval"]
    assert [c[0] for c in commands] == programs
    previous = dict(zip(commands[0][1][::2], commands[0][1][1::2]))["--save"]
    configs = []
    for i, (_, argv) in enumerate(commands[1:8]):
        out, _resume, cfg = parse_args(argv)
        assert cfg.init_from == previous and cfg.tools and cfg.split_spaces and cfg.fresh_people
        # phases 4-7 draw tool menus, on rows of up to 320 tokens; phase 7 draws long names
        assert (cfg.vocab_size, cfg.seq_len, cfg.pretrain_len) == (512, 192 if i < 3 else 320, 96)
        assert (cfg.varied_tools > 0) == (i >= 3) and (cfg.long_names > 0) == (i == 6)
        previous = out
        configs.append(cfg)
    assert commands[-1][1] == ["--model", previous] == ["--model", "runs/bundled"]
    bundled = Path(__file__).parents[2] / "llada_sdk" / "bundled" / "llada-tiny-kb"
    corpus = build_corpus(configs[0].seed, tools=True)
    tok = train_tokenizer(tokenizer_training_text(corpus), 512, tool_tokens=True, split_spaces=True)
    assert json.loads(tok.to_str()) == json.loads((bundled / "tokenizer.json").read_text())
    assert json.loads((bundled / "config.json").read_text())["vocab_size"] == tok.get_vocab_size() == 514


def test_without_flags_the_recipe_has_no_tool_rows() -> None:
    """The tool, extraction and small-talk rows are opt-in (``--tools``): without it the data is the
    first bundled model's, and the tokenizer has no tool-call tokens."""
    from recipes.bundled_model.train import BundledData, parse_args

    _out, _resume, cfg = parse_args(["--out", "runs/first"])
    data = BundledData(cfg)
    assert not data.tool_tokens
    assert not any("<tool_call>" in t for t in data.tokenizer_texts())
    assert not data.corpus.conversations and not data.corpus.extraction and not data.corpus.synthetic


def test_split_spaces_makes_a_word_the_same_tokens_after_a_space_or_a_quote() -> None:
    from llada_sdk.training import train_tokenizer
    from recipes.bundled_model.corpus import tokenizer_training_text

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
    from llada_sdk.training import train_tokenizer
    from recipes.bundled_model.corpus import N_SYNTHETIC, synthetic_people, tokenizer_training_text
    from recipes.bundled_model.rows import RowSampler

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

    from recipes.bundled_model.corpus import synthetic_people

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


def test_varied_tool_rows_offer_one_to_three_tools_and_call_the_person_tool_by_its_own_names() -> None:
    import random

    from llada_sdk.text.tools import parse_tool_calls
    from recipes.bundled_model.corpus import synthetic_people
    from recipes.bundled_model.tool_menus import OTHER_TOOLS, unseen_person_tools, varied_direct_row, varied_tool_row

    other = {t["function"]["name"] for t in OTHER_TOOLS}
    unseen = [
        (t["function"]["name"], next(iter(t["function"]["parameters"]["properties"]))) for t in unseen_person_tools()
    ]
    rng, people = random.Random(0), synthetic_people(3, 50)
    sizes, calls, names = set(), 0, set()
    for i in range(400):
        p = people[i % len(people)]
        messages, answer = varied_tool_row(rng, p)
        lines = messages[0]["content"].splitlines()[1:]  # the tools block: the instruction, then one line per tool
        offered = [line.split("(")[0] for line in lines]
        person = [n for n in offered if n not in other]
        sizes.add(len(offered))
        assert len(person) == 1, offered  # one tool fits the question
        names.add(person[0])
        text = "\n".join(m["content"] for m in messages) + answer
        assert not any(n in text or f"{a}:" in text or f'"{a}"' in text for n, a in unseen)
        _content, parsed, invalid = parse_tool_calls(answer)
        if parsed:  # the call row: the offered person tool, its own argument, the person's name
            calls += 1
            arg = lines[offered.index(person[0])].split("(")[1].split(":")[0]
            assert not invalid and parsed[0].name == person[0] and parsed[0].arguments == {arg: p.name}
        else:  # the answer row: after the call and the tool's result
            assert messages[-1]["role"] == "tool" and answer.startswith(p.name)
    assert sizes == {1, 2, 3} and 120 < calls < 280 and len(names) > 100
    messages, answer = varied_direct_row(rng)
    assert "<tool_call>" not in answer and answer.startswith("The ")


def test_the_recipe_script_starts_at_a_given_phase(tmp_path: Path) -> None:
    """`train.sh RUNS N` runs phase N onwards (its input already in RUNS) and the eval; a failing phase stops it."""
    import os
    import subprocess

    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "calls"
    (shim / "python").write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n[ -z "$FAIL_ON" ] || ! echo "$*" | grep -q -- "$FAIL_ON"\n'
    )
    (shim / "python").chmod(0o755)
    script = Path(__file__).parents[2] / "recipes" / "bundled_model" / "train.sh"
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(script), str(tmp_path / "runs"), "6"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert [c.split("--out ")[1].split()[0] if "--out" in c else c.split()[1] for c in calls] == [
        f"{tmp_path}/runs/menus3",
        f"{tmp_path}/runs/bundled",
        "recipes.bundled_model.eval",
    ]
    log.unlink()
    env["FAIL_ON"] = "runs/menus3"
    failed = subprocess.run(
        ["bash", str(script), str(tmp_path / "runs"), "6"], env=env, capture_output=True, timeout=60
    )
    assert failed.returncode != 0 and len(log.read_text().splitlines()) == 1  # phase 7 never ran
