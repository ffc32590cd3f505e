"""llada-sdk's prefix / dual caches against Fast-dLLM's own implementation: same weights, same settings.

    python benchmarks/fastdllm_compare.py --fast-dllm PATH [--threads 2] [--gen 128] [--steps 128]

PATH is a checkout of https://github.com/NVlabs/Fast-dLLM (its ``llada/`` folder is imported from there,
nothing of it is copied here). Its model code needs ``transformers`` and ``einops``, which llada-sdk does
not depend on: run this in a separate virtual environment, e.g.
``python -m venv --system-site-packages /tmp/fd && /tmp/fd/bin/pip install transformers==4.46.3 einops``.

The medium config (168M parameters, random weights, seed 0) is written once as an official checkpoint;
both implementations load it and decode the same random prompt greedily, one token per step, blocks of
32 (the issue's setting: prompt 64, 128 new tokens, 128 steps). Prints seconds, forward passes, whether
the tokens are identical, and the ratios, interleaving the runs (best of ``--repeat``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from llada_sdk.backends.torch_backend import prepack_linears
from llada_sdk.config import medium_config
from llada_sdk.decoding.engine import DecodeConfig, denoise, reference_blocks
from llada_sdk.model import LLaDAModel
from llada_sdk.options import GenerationOptions
from llada_sdk.training import save_checkpoint


def ours(model: LLaDAModel, prompt: torch.Tensor, gen: int, steps: int, block: int, cache: str) -> tuple[Any, int]:
    cfg = model.config
    opts = GenerationOptions(max_tokens=gen, steps=steps, block_length=block, cache=cache, reference_compat=True)
    decode = DecodeConfig.from_options(opts, mask_id=cfg.mask_token_id)
    x = torch.cat([prompt, torch.full((1, gen), cfg.mask_token_id)], dim=1)
    blocks, steps_per_block = reference_blocks(prompt.shape[1], gen, block, steps)
    with torch.inference_mode():
        events = list(denoise(model, x, blocks, steps_per_block, decode))
    return x, events[-1].forward_passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fast-dllm", required=True, type=Path, help="a Fast-dLLM checkout")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--gen", type=int, default=128)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(args.fast_dllm / "llada"))
    import generate as fd  # Fast-dLLM's llada/generate.py
    from model.modeling_llada import LLaDAModelLM

    cfg = medium_config()
    torch.manual_seed(0)
    model = LLaDAModel(cfg).eval()
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(model, Path(tmp))
        theirs = LLaDAModelLM.from_pretrained(tmp, torch_dtype=torch.float32).eval()
    packed = LLaDAModel(cfg).eval()
    packed.load_state_dict(model.state_dict())
    prepack_linears(packed)
    prompt = torch.randint(0, cfg.vocab_size - 2, (1, args.prompt))
    kw = {"steps": args.steps, "gen_length": args.gen, "block_length": args.block, "mask_id": cfg.mask_token_id}
    runs: dict[str, Any] = {
        "Fast-dLLM, no cache (generate)": lambda: fd.generate(theirs, prompt, **kw),
        "Fast-dLLM, prefix cache": lambda: fd.generate_with_prefix_cache(theirs, prompt, **kw),
        "Fast-dLLM, dual cache": lambda: fd.generate_with_dual_cache(theirs, prompt, **kw),
        "llada-sdk, no cache": lambda: ours(model, prompt, args.gen, args.steps, args.block, "none"),
        "llada-sdk, prefix cache": lambda: ours(model, prompt, args.gen, args.steps, args.block, "prefix"),
        "llada-sdk, dual cache": lambda: ours(model, prompt, args.gen, args.steps, args.block, "dual"),
        "llada-sdk, dual cache, prepack": lambda: ours(packed, prompt, args.gen, args.steps, args.block, "dual"),
    }
    best: dict[str, float] = {}
    outputs: dict[str, tuple[torch.Tensor, int]] = {}
    for _ in range(args.repeat):
        for name, run in runs.items():
            t = time.perf_counter()
            with torch.inference_mode():
                x, nfe = run()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
            outputs[name] = (x, int(nfe))
    print(
        f"threads={args.threads}, prompt {args.prompt}, {args.gen} new tokens, {args.steps} steps, blocks of {args.block}"
    )
    print(
        "| implementation | seconds | forward passes | vs Fast-dLLM no cache | vs Fast-dLLM same cache | same tokens as Fast-dLLM |"
    )
    print("|---|---|---|---|---|---|")
    base = best["Fast-dLLM, no cache (generate)"]
    for name, seconds in best.items():
        cache = name.split(", ")[1].replace(" (generate)", "")
        twin = f"Fast-dLLM, {cache}" if cache != "no cache" else "Fast-dLLM, no cache (generate)"
        x, nfe = outputs[name]
        same = "yes" if torch.equal(x, outputs[twin][0]) else "no"
        print(f"| {name} | {seconds:.2f} | {nfe} | {base / seconds:.2f}x | {best[twin] / seconds:.2f}x | {same} |")


if __name__ == "__main__":
    main()
