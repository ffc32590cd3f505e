"""``llada bench``: torch eager and onnxruntime side by side (``llada_export.bench``; needs torch, onnx),
or with ``--decode`` the decoding benchmark (``llada_sdk.decode_bench``; needs torch)."""

from __future__ import annotations

import click


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
    """Benchmark torch eager and onnxruntime in one run: every ARG goes to python -m llada_export.bench.

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
    if decode:
        from llada_sdk.decode_bench import main as decode_main

        decode_main(list(args), prog="llada bench --decode")
        return
    from llada_export.bench import main

    main(list(args), prog="llada bench")
