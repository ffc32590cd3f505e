"""PyTorch eager and onnxruntime side by side (``python benchmarks/onnx_vs_torch.py``, or ``llada bench``), in one run, with the matmul ceiling.

For each model (the bundled one and the medium config of ``benchmarks/medium.py``, random weights) and
canvas shape, it prints the median forward time of torch eager and of onnxruntime per precision (the
``logits`` graph), the tokens/s of a greedy decode through the engine (one token per step, blocks of
``--block``; onnxruntime runs its fused greedy graph), and the GFLOP/s of a plain float32 ``torch.matmul``
of the model's MLP shape measured in the same run. Ratios are only meaningful within one run.

Imports torch (it measures it).
"""

from __future__ import annotations

import argparse
import operator
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    """The median wall time of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _decode_seconds(predictor: Any, x: Any, prompt: int, block: int, decode: Any) -> float:
    from llada_sdk.decoding.engine import denoise

    n = x.shape[1] - prompt
    blocks = [(prompt + i, prompt + i + block) for i in range(0, n, block)]
    t = time.perf_counter()
    for _ in denoise(predictor, x, blocks, [block] * len(blocks), decode):
        pass
    return time.perf_counter() - t


def _medium_config() -> Any:
    from llada_sdk.config import medium_config

    return medium_config()


def run(
    models: Sequence[str] = ("bundled", "medium"),
    shapes: Sequence[tuple[int, int]] = ((1, 128), (1, 512)),
    precisions: Sequence[str] = ("fp32", "int8"),
    threads: int = 2,
    repeat: int = 5,
    gen_tokens: int = 32,
    block: int = 8,
    workdir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Measure; returns one row per (model, shape, runtime) with ``forward_ms``, ``tokens_per_s``,
    ``matmul_gflops`` and the ratio to torch eager of the same shape. ``log`` gets progress lines
    (exporting, measuring), not the rows: ``table(rows)`` prints those once."""
    import torch

    from llada_export.exporter import export
    from llada_export.runtime import load_bundle
    from llada_sdk.decoding.engine import DecodeConfig
    from llada_sdk.model import LLaDAModel
    from llada_sdk.options import GenerationOptions

    say = log or (lambda _m: None)
    torch.set_num_threads(threads)
    rows: list[dict[str, Any]] = []
    tmp = tempfile.TemporaryDirectory(prefix="llada-bench-") if workdir is None else None
    root = Path(tmp.name) if tmp is not None else Path(workdir)  # type: ignore[arg-type]
    try:
        for name in models:
            if name == "bundled":
                from llada_sdk import LLaDA

                net = LLaDA.from_pretrained(None, backend="torch", device="cpu", dtype="float32").model
            elif name == "medium":
                torch.manual_seed(0)
                net = LLaDAModel(_medium_config()).eval()
            else:
                raise ValueError(f"`models` entries must be 'bundled' or 'medium', got {name!r}")
            cfg = net.config
            decode = DecodeConfig.from_options(
                GenerationOptions(), mask_id=cfg.mask_token_id, eos_id=cfg.eos_token_id, eot_id=cfg.eot_token_id
            )
            backends = {}
            for precision in precisions:
                folder = root / f"{name}-{precision}"
                if not (folder / "llada_onnx.json").is_file():
                    say(f"exporting {name} {precision} ...")
                    export(net, folder, precision=precision, graphs=("logits", "greedy"), parity=False, overwrite=True)
                backends[precision] = load_bundle(folder, providers="cpu", threads=threads)[0]
            d, f = cfg.d_model, cfg.mlp_hidden_size
            for batch, length in shapes:
                if length > cfg.max_sequence_length:
                    continue
                say(f"measuring {name} {batch}x{length} ...")
                ids = torch.randint(0, cfg.vocab_size, (batch, length), generator=torch.Generator().manual_seed(0))
                a, b = torch.randn(batch * length, d), torch.randn(d, f)
                t_mm = median_seconds(partial(operator.matmul, a, b), repeat * 4)
                matmul = 2 * batch * length * d * f / t_mm / 1e9
                prompt = max(1, length - gen_tokens)

                def canvas(kind: str, ids: Any = ids, prompt: int = prompt, mask: int = cfg.mask_token_id) -> Any:
                    x = ids.clone()
                    x[:, prompt:] = mask
                    return x if kind == "torch" else x.numpy().copy()

                with torch.inference_mode():
                    t_torch = median_seconds(partial(net, ids), repeat)
                    dec_torch = _decode_seconds(net, canvas("torch"), prompt, block, decode)
                base = {"model": name, "batch": batch, "length": length, "threads": threads, "matmul_gflops": matmul}
                n_new = (length - prompt) * batch
                rows.append({**base, "runtime": "torch eager fp32", "forward_ms": t_torch * 1e3, "speedup": 1.0,
                             "tokens_per_s": n_new / dec_torch})  # fmt: skip
                for precision, backend in backends.items():
                    plain = backend.predictor(None)
                    x_np = ids.numpy()
                    t_ort = median_seconds(partial(plain, x_np), repeat)
                    dec = _decode_seconds(backend.predictor(decode), canvas("numpy"), prompt, block, decode)
                    rows.append({**base, "runtime": f"onnxruntime {precision}", "forward_ms": t_ort * 1e3,
                                 "speedup": t_torch / t_ort, "tokens_per_s": n_new / dec})  # fmt: skip
    finally:
        if tmp is not None:
            tmp.cleanup()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of ``run``'s rows."""
    lines = [
        "| model | batch x length | runtime | forward ms | vs torch | tokens/s | matmul GFLOP/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['batch']}x{r['length']} | {r['runtime']} | {r['forward_ms']:.1f} | "
            f"{r['speedup']:.2f}x | {r['tokens_per_s']:.1f} | {r['matmul_gflops']:.0f} |"
        )
    return "\n".join(lines)


def _shape(text: str) -> tuple[int, int]:
    b, _, n = text.lower().partition("x")
    if not (b.isdigit() and n.isdigit()):
        raise argparse.ArgumentTypeError(f"a shape is BATCHxLENGTH such as 1x128, got {text!r}")
    return int(b), int(n)


def main(argv: list[str] | None = None, prog: str = "python benchmarks/onnx_vs_torch.py") -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="bundled,medium", help="comma-separated: bundled, medium")
    parser.add_argument("--shapes", default="1x128,1x512", help="comma-separated BATCHxLENGTH")
    parser.add_argument("--precisions", default="fp32,int8", help="comma-separated: fp32, int8, fp16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--gen-tokens", type=int, default=32, help="tokens of the timed greedy decode")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the exported bundles here (reused)")
    args = parser.parse_args(argv)
    rows = run(
        models=args.models.split(","),
        shapes=[_shape(s) for s in args.shapes.split(",")],
        precisions=args.precisions.split(","),
        threads=args.threads,
        repeat=args.repeat,
        gen_tokens=args.gen_tokens,
        workdir=args.workdir,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(f"threads={args.threads}, repeat={args.repeat} (median), onnxruntime CPU provider")
    print(table(rows))
    _ = np  # numpy arrays flow through the onnxruntime predictors


if __name__ == "__main__":
    main()
