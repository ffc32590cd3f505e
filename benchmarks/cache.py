"""Cached vs uncached decoding, side by side: Fast-dLLM's prefix and dual KV caches on CPU.

Medium config (d_model 1024, 8 layers, 16 heads, MLP 2816, vocabulary 32000, random weights), bfloat16,
a 448-token prompt, 64 generated tokens in blocks of 16, one token per step. Prints wall seconds,
forward passes, tokens/s and the speed-up over no cache, and peak RSS.

    python benchmarks/cache.py [--threads 1] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from medium import MEDIUM

from llada_sdk.decoding.engine import DecodeConfig, DoneEvent, denoise, reference_blocks
from llada_sdk.model import LLaDAModel
from llada_sdk.options import GenerationOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--prompt", type=int, default=448)
    parser.add_argument("--gen", type=int, default=64)
    parser.add_argument("--block", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = MEDIUM
    torch.manual_seed(0)
    model = LLaDAModel(cfg).to(getattr(torch, args.dtype)).eval()
    prompt = torch.randint(0, 31000, (1, args.prompt))
    blocks, steps = reference_blocks(args.prompt, args.gen, args.block, args.gen)
    print(f"threads={args.threads} dtype={args.dtype} prompt={args.prompt} gen={args.gen} block={args.block}")
    print("| cache | seconds | forward passes | tokens/s | speed-up |")
    print("|---|---|---|---|---|")
    base = None
    for cache in (None, "prefix", "dual"):
        x = torch.cat([prompt, torch.full((1, args.gen), cfg.mask_token_id)], dim=1)
        t = time.perf_counter()
        events = list(
            denoise(
                model,
                x,
                blocks,
                steps,
                DecodeConfig.from_options(GenerationOptions(cache=cache or "none"), mask_id=cfg.mask_token_id),
            )
        )
        seconds = time.perf_counter() - t
        done = events[-1]
        assert isinstance(done, DoneEvent) and not (x == cfg.mask_token_id).any()
        base = base or seconds
        print(
            f"| {cache or 'none'} | {seconds:.1f} | {done.forward_passes} | {args.gen / seconds:.1f} "
            f"| {base / seconds:.2f}x |"
        )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
