"""``llada bench``: a thin entry to the benchmark scripts of a source checkout (``benchmarks/``, not in
the wheel): ``onnx_vs_torch.py`` (torch eager and onnxruntime side by side; needs torch, onnx), or with
``--decode`` ``decode.py`` (the decoding benchmark; needs torch)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import click

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"
"""Where the scripts are in a source checkout (cli/llada_cli/commands/ -> the repository root)."""


@click.command(
    short_help="Forward time and tokens/s: torch eager vs onnxruntime (each precision).",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--decode",
    is_flag=True,
    help="Benchmark decoding instead: caches x parallel rules, the matmul ceiling, the engine's overhead "
    "(`llada bench --decode -- --help` lists its options: --gen, --medium-gen, --eval, --compile ...).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(decode: bool, args: tuple[str, ...]) -> None:
    """Benchmark torch eager and onnxruntime in one run: runs benchmarks/onnx_vs_torch.py of a source
    checkout with every ARG.

    Exports the bundled model and the medium config (168M parameters, random weights) to temporary
    bundles, then prints forward ms, tokens/s of a greedy decode and the float32 matmul ceiling per
    shape. `llada bench -- --help` lists its options (--threads, --shapes 1x128,1x512, --precisions
    fp32,int8, --models bundled,medium, --workdir DIR to keep the bundles).

    \b
    Example:
      llada bench --threads 2 --models bundled --shapes 1x128
      llada bench --decode --gen 64 256 --eval
    """
    from llada_sdk._deps import require_torch

    require_torch()  # both benchmarks measure torch: say which extra is missing, not an ImportError
    script = BENCHMARKS / ("decode.py" if decode else "onnx_vs_torch.py")
    if not script.is_file():
        raise click.ClickException(
            f"`llada bench` runs {script.name} from benchmarks/ of a source checkout, which this install "
            "does not have (the wheel ships no benchmarks): clone the repository and run it there"
        )
    saved = list(sys.path)
    sys.path.insert(0, str(script.parent))  # the scripts import their neighbours (medium.py, _repo.py)
    try:
        main = runpy.run_path(str(script), run_name=f"benchmarks.{script.stem}")["main"]
        main(list(args), prog=f"llada bench{' --decode' if decode else ''}")
    finally:
        sys.path[:] = saved
