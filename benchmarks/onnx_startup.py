"""Process start to text: a 32-token completion of the bundled model, torch runtime vs the edge bundle.

    python benchmarks/onnx_startup.py BUNDLE [--runs 5] [--threads 1]

Each run is a fresh ``python -c`` process that loads the model and prints
``complete("Zapur lives in", max_tokens=32)``; the bundle's process blocks ``import torch`` (as in a
torch-free install). Prints the median wall seconds and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = (
    "import torch; torch.set_num_threads({threads}); from llada_sdk import LLaDA; "
    "print(LLaDA.from_pretrained(None, backend='torch', device='cpu').complete('Zapur lives in', max_tokens=32).text)"
)
EDGE = (
    "from llada_export.edgecheck import block_torch; block_torch(); "
    "from llada_export.runtime import PLUGIN; from llada_sdk.backends.base import register; register(PLUGIN); "
    "from llada_sdk import LLaDA; "
    "print(LLaDA.from_pretrained({bundle!r}, threads={threads}).complete('Zapur lives in', max_tokens=32).text)"
)


def wall(code: str, runs: int) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("", "export", "cli"))}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    t_torch, text_torch = wall(TORCH.format(threads=args.threads), args.runs)
    t_edge, text_edge = wall(EDGE.format(bundle=str(Path(args.bundle).resolve()), threads=args.threads), args.runs)
    print(f"median of {args.runs} runs, threads={args.threads}")
    print("| runtime | process start to text, s | text |")
    print("|---|---|---|")
    print(f"| torch eager | {t_torch:.2f} | {text_torch!r} |")
    print(f"| edge bundle (onnxruntime, no torch) | {t_edge:.2f} | {text_edge!r} |")
    print(f"ratio: {t_torch / t_edge:.1f}x")


if __name__ == "__main__":
    main()
