"""Forward-pass speed on CPU as a fraction of plain ``torch.matmul`` speed, measured in the same run.

Medium config: d_model 1024, 8 layers, 16 heads, MLP 2816, vocabulary 32000, 512 tokens, batch 1 and 4,
float32 and bfloat16. FLOPs per forward = 2 * (non-embedding matmul parameters) * tokens
+ 4 * layers * L^2 * d (attention scores and values) * batch. The matmul reference multiplies
[512*batch, 1024] x [1024, 2816] in the same dtype.

    python benchmarks/forward.py [--threads 2] [--repeat 5]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from medium import MEDIUM

from llada_sdk.model import LLaDAModel


def timeit(fn: Callable[[], object], repeat: int) -> float:
    from onnx_vs_torch import median_seconds

    return median_seconds(fn, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--length", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = MEDIUM
    L, d = args.length, cfg.d_model
    assert cfg.mlp_hidden_size is not None
    matmul_params = cfg.n_layers * (4 * d * d + 3 * d * cfg.mlp_hidden_size) + d * cfg.vocab_size
    print(f"threads={args.threads}, L={L}, params={cfg.num_parameters() / 1e6:.1f}M")
    print("| dtype | batch | forward ms | model GFLOP/s | matmul GFLOP/s | model / matmul |")
    print("|---|---|---|---|---|---|")
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)
        model = LLaDAModel(cfg).to(dtype).eval()
        for batch in (1, 4):
            ids = torch.randint(0, cfg.vocab_size, (batch, L))
            flops = 2 * matmul_params * L * batch + 4 * cfg.n_layers * L * L * d * batch
            with torch.inference_mode():
                t_model = timeit(lambda m=model, x=ids: m(x), args.repeat)
            a = torch.randn(L * batch, d, dtype=dtype)
            b = torch.randn(d, cfg.mlp_hidden_size, dtype=dtype)
            t_mm = timeit(lambda a=a, b=b: a @ b, args.repeat * 4)
            mm_gflops = 2 * L * batch * d * cfg.mlp_hidden_size / t_mm / 1e9
            model_gflops = flops / t_model / 1e9
            print(
                f"| {str(dtype).removeprefix('torch.')} | {batch} | {1000 * t_model:.0f} | {model_gflops:.1f} "
                f"| {mm_gflops:.1f} | {model_gflops / mm_gflops:.2f} |"
            )


if __name__ == "__main__":
    main()
