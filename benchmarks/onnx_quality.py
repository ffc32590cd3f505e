"""Quality of the exported precisions on the bundled model: logit error vs PyTorch float32 (the
parity figures each export writes into its sidecar) and the bundled eval tasks per precision.

    python benchmarks/onnx_quality.py [--threads 1] [--precisions fp32,int8,fp16] [--workdir DIR] [--all-tasks]

Prints one markdown table of eval accuracies (torch eager float32 first) and one of logit errors.
The eval runs on onnxruntime's CPU provider; fp16 on the CPU is for the quality figure only (it is
meant for GPUs). ``--all-tasks`` adds the structured-output and LangChain tasks (`schema_validity`,
`agent_heldout_people`, `extract_person`; the last two need the ``langchain`` extra).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _repo  # noqa: F401  (the repository root on sys.path: recipes)
import torch

from llada_export import export
from llada_export.runtime import PLUGIN
from llada_sdk import LLaDA
from llada_sdk.backends.base import register
from recipes.bundled_model.eval import TEXT_TASKS, evaluate

# the text tasks of the README's eval table (the agent/tool tasks need LangChain and are left out)
TASKS = list(TEXT_TASKS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precisions", default="fp32,int8,fp16")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--all-tasks", action="store_true", help="every eval task, not only the text ones")
    args = parser.parse_args()
    tasks_run = None if args.all_tasks else TASKS
    torch.set_num_threads(args.threads)
    register(PLUGIN)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="llada-quality-"))
    reports = {
        "torch eager fp32": evaluate(LLaDA.from_pretrained(None, backend="torch", device="cpu"), tasks=tasks_run)
    }
    parity = {}
    for precision in args.precisions.split(","):
        folder = work / f"kb-{precision}"
        if not (folder / "llada_onnx.json").is_file():
            export(None, folder, precision=precision, graphs=("logits", "greedy"), threads=args.threads, overwrite=True)
        llm = LLaDA.from_pretrained(folder, providers="cpu", threads=args.threads)
        parity[precision] = llm.backend.sidecar.parity
        reports[f"onnxruntime {precision}"] = evaluate(llm, tasks=tasks_run)
    tasks = list(reports["torch eager fp32"])
    print(f"threads={args.threads}")
    print("| task | " + " | ".join(reports) + " |")
    print("|---|" + "---|" * len(reports))
    for task in tasks:
        cells = [f"{100 * r[task]['accuracy']:.1f} %" for r in reports.values()]
        print(f"| {task} | " + " | ".join(cells) + " |")
    print()
    print("| precision | logits max abs diff | logits mean abs diff | argmax agreement | greedy x0 agreement |")
    print("|---|---|---|---|---|")
    for precision, figs in parity.items():
        lg, gr = figs["logits"], figs["greedy"]
        print(
            f"| {precision} | {lg.logits_max_abs:.2e} | {lg.logits_mean_abs:.2e} | "
            f"{100 * (lg.argmax_agreement or 0):.2f} % | {100 * (gr.argmax_agreement or 0):.2f} % |"
        )


if __name__ == "__main__":
    main()
