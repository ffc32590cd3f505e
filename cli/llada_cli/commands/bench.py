"""``llada bench``: torch eager and onnxruntime side by side (``llada_export.bench``; needs torch, onnx)."""

from __future__ import annotations

import click


@click.command(
    short_help="Forward time and tokens/s: torch eager vs onnxruntime (each precision).",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """Benchmark torch eager and onnxruntime in one run: every ARG goes to python -m llada_export.bench.

    Exports the bundled model and the medium config (168M parameters, random weights) to temporary
    bundles, then prints forward ms, tokens/s of a greedy decode and the float32 matmul ceiling per
    shape. `llada bench -- --help` lists its options (--threads, --shapes 1x128,1x512, --precisions
    fp32,int8, --models bundled,medium, --workdir DIR to keep the bundles).

    \b
    Example:
      llada bench --threads 2 --models bundled --shapes 1x128
    """
    from llada_export.bench import main

    main(list(args), prog="llada bench")
