"""The device loop (the ``commit`` graph) against the host loop, side by side on the CPU provider.

    python benchmarks/onnx_step_loop.py [--threads 2] [--repeat 5] [--bundle DIR]

Exports the bundled model (``logits`` and ``greedy`` groups; the ``greedy`` group carries the ``commit``
graph) unless ``--bundle`` is given, loads it twice -- ``device_loop=False`` (the engine commits each
step on the host: the canvas goes to onnxruntime every step) and ``device_loop=True`` (the commit runs
in onnxruntime and each step's output canvas is fed back) -- and prints per call: wall time, forward
passes, canvas uploads, and whether the ids are identical. On a GPU the device loop is the default; on
the CPU provider both loops move the same bytes, so this measures the cost of the extra graph call.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llada_export import export
from llada_export.runtime import PLUGIN
from llada_sdk import LLaDA
from llada_sdk.backends.base import register


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--bundle", type=Path, default=None)
    args = parser.parse_args()
    register(PLUGIN)
    folder = args.bundle
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="llada-step-")) / "bundle"
        export(None, folder, graphs=("logits", "greedy"), threads=args.threads)
    loops = {
        name: LLaDA.from_pretrained(folder, providers="cpu", threads=args.threads, device_loop=flag)
        for name, flag in (("host loop", False), ("device loop (commit graph)", True))
    }
    calls: dict[str, Callable[[LLaDA], Any]] = {
        "complete, 32 tokens, blocks of 8": lambda m: m.complete("Zapur lives in", max_tokens=32, early_stop=False),
        "chat, one question": lambda m: m.chat([{"role": "user", "content": "What month comes after March?"}]),
        "infill, two spans of 4": lambda m: m.infill("Zapur lives in [MASK:4] and works as a [MASK:4]."),
    }
    print(f"threads={args.threads}, median of {args.repeat}, onnxruntime CPU provider, bundle {folder}")
    print("| call | loop | ms per call | forward passes | canvas uploads per call | same ids |")
    print("|---|---|---|---|---|---|")
    for label, call in calls.items():
        first: Any = None
        for name, llm in loops.items():
            out = call(llm)
            step = getattr(llm.backend, "_predictors", {}).get("step")
            before = step.uploads if step is not None else 0
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                out = call(llm)
                times.append(time.perf_counter() - t)
            ids, passes = out.ids, out.forward_passes
            first = ids if first is None else first
            step = getattr(llm.backend, "_predictors", {}).get("step")
            uploads = (step.uploads - before) / args.repeat if step is not None else float(passes)
            print(
                f"| {label} | {name} | {1000 * statistics.median(times):.2f} | {passes} | {uploads:.1f} | "
                f"{'yes' if ids == first else 'NO'} |"
            )


if __name__ == "__main__":
    main()
