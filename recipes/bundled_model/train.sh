#!/usr/bin/env bash
# The bundled model (llada_sdk/bundled/llada-tiny-kb), as it was trained: seven phases, each started
# from the last one's weights (--init-from). docs/bundled-model.md has the reasons and the figures of
# each phase. Seeded; the thread counts are the ones used (another count may change the last bits).
# About 80 minutes for phases 0-3 and 105 for phases 4-7 on a 2-vCPU machine.
# Usage, from the repository root: bash recipes/bundled_model/train.sh [RUNS_DIR [FIRST_PHASE]]
# FIRST_PHASE N > 0 skips the phases before N; phase N's input must then be in RUNS_DIR (for phase 4,
# the second model in RUNS_DIR/kb-copying: docs/bundled-model.md shows how to take it from git).
set -euo pipefail
runs=${1:-runs}
first=${2:-0}
phase() { [ "$1" -ge "$first" ]; }
tool_rows="--tools --fresh-people --split-spaces --seq-len 192 --pretrain-len 96 --vocab-size 512"

# 0. copying: a fresh model on extraction rows only (a word found in a sentence, copied into JSON),
#    past the ~3 000-step plateau (8 min)
phase 0 && python benchmarks/copy_probe.py --rows mix --steps 6000 --threads 2 --save "$runs/copy"
# 1. the knowledge base, chat, tool-call and extraction formats at lr 3e-3 (25 min; copying is forgotten)
phase 1 && python -m recipes.bundled_model.train --out "$runs/kb" $tool_rows --extract-sft 0.3 --sft-fraction 0.45 \
    --steps 8000 --threads 2 --init-from "$runs/copy"
# 2. copy-dense batches at lr 1e-3: copying comes back on top of the knowledge base (25 min)
phase 2 && python -m recipes.bundled_model.train --out "$runs/copying" $tool_rows --extract-sft 0.5 --sft-fraction 0.7 \
    --tool-fraction 0.8 --lr 1e-3 --steps 4000 --threads 1 --init-from "$runs/kb"
# 3. the knowledge base back at lr 5e-4, jobs copied too (20 min); phases 2 and 3 ran on one thread each
#    (the model shipped 2026-12-02)
phase 3 && python -m recipes.bundled_model.train --out "$runs/kb-copying" $tool_rows --extract-sft 0.6 --sft-fraction 0.45 \
    --tool-fraction 0.7 --lr 5e-4 --steps 3000 --threads 1 --init-from "$runs/copying"
# 4. your tools: 3 of 4 tool rows offer a drawn menu (a person tool under a drawn name, argument and
#    description, beside 0-2 other tools); rows up to 320 tokens (34 min)
phase 4 && python -m recipes.bundled_model.train --out "$runs/menus" $tool_rows --seq-len 320 --extract-sft 0.5 \
    --sft-fraction 0.45 --tool-fraction 0.7 --varied-tools 0.75 --lr 5e-4 --steps 3000 --threads 2 \
    --init-from "$runs/kb-copying"
# 5. more tool batches at lr 3e-4 (19 min)
phase 5 && python -m recipes.bundled_model.train --out "$runs/menus2" $tool_rows --seq-len 320 --extract-sft 0.35 \
    --sft-fraction 0.5 --tool-fraction 0.8 --varied-tools 0.6 --lr 3e-4 --steps 2000 --threads 2 \
    --init-from "$runs/menus"
# 6. more still at lr 2e-4, half the tool rows with the `lookup` tool (20 min; the third model)
phase 6 && python -m recipes.bundled_model.train --out "$runs/menus3" $tool_rows --seq-len 320 --extract-sft 0.3 \
    --sft-fraction 0.55 --tool-fraction 0.85 --varied-tools 0.5 --lr 2e-4 --steps 2000 --threads 2 \
    --init-from "$runs/menus2"
# 7. long names: half the fresh people have names of 5+ tokens, the ones copied wrong into calls (31 min)
phase 7 && python -m recipes.bundled_model.train --out "$runs/bundled" $tool_rows --seq-len 320 --extract-sft 0.3 \
    --sft-fraction 0.55 --tool-fraction 0.85 --varied-tools 0.6 --long-names 0.5 --lr 2e-4 --steps 2500 \
    --threads 2 --init-from "$runs/menus3"
# the shipped config.json keeps the chat rows' window (trained_sequence_length 192, max_sequence_length 384)
python -m recipes.bundled_model.eval --model "$runs/bundled"
