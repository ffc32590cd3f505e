"""Decoding speed side by side: no cache / prefix / dual x fixed steps / threshold / factor.

One run prints, for each setting: forward passes, seconds, tokens/s and the speed-up over the
uncached one-token-per-step decode, next to the machine's matmul ceiling measured in the same run, and
the engine's own overhead per step (a zero-cost predictor) as a share of the model's cached step.
Medium config (benchmarks/medium.py, random weights) and the bundled model; ``--eval`` adds the
bundled model's eval accuracy for each parallel rule.

    python benchmarks/decode.py [--threads 2] [--gen 64 256] [--medium-gen 64] [--eval]
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

import torch
from medium import MEDIUM

from llada_sdk import LLaDA
from llada_sdk.engine import DecodeConfig, denoise, reference_blocks
from llada_sdk.model import LLaDAModel
from llada_sdk.options import GenerationOptions

RULES: dict[str, dict[str, Any]] = {"fixed": {}, "threshold 0.9": {"threshold": 0.9}, "factor 1.0": {"factor": 1.0}}


def matmul_ceiling(d: int, f: int, tokens: int, dtype: torch.dtype) -> float:
    """GFLOP/s of a [tokens, d] x [d, f] matmul, best of 5 (the rate a step's projections can reach)."""
    a, b = torch.randn(tokens, d, dtype=dtype), torch.randn(d, f, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - t) / 10)
    return 2 * tokens * d * f / best / 1e9


def decode(
    model: Any, mask_id: int, prompt: torch.Tensor, gen: int, block: int, cache: str, rule: dict[str, Any]
) -> tuple[float, int]:
    opts = GenerationOptions(max_tokens=gen, block_length=block, cache=cache, **rule)
    cfg = DecodeConfig.from_options(opts, mask_id=mask_id)
    x = torch.cat([prompt, torch.full((1, gen), mask_id)], dim=1)
    blocks, steps = reference_blocks(prompt.shape[1], gen, block, gen)
    t = time.perf_counter()
    events = list(denoise(model, x, blocks, steps, cfg))
    return time.perf_counter() - t, events[-1].forward_passes


def table(name: str, model: Any, mask_id: int, prompt: torch.Tensor, gens: list[int], block: int) -> None:
    print(f"\n{name}: prompt {prompt.shape[1]}, blocks of {block}")
    print("| new tokens | cache | rule | forward passes | seconds | tokens/s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for gen in gens:
        base = None
        for cache in ("none", "prefix", "dual"):
            for rule_name, rule in RULES.items():
                seconds, nfe = decode(model, mask_id, prompt, gen, block, cache, rule)
                base = base or seconds
                print(
                    f"| {gen} | {cache} | {rule_name} | {nfe} | {seconds:.2f} | {gen / seconds:.1f} | {base / seconds:.2f}x |"
                )


class ZeroCost:
    """A predictor that costs nothing: the same preallocated logits every call (cached or not)."""

    def __init__(self, vocab: int, length: int) -> None:
        self.logits = torch.randn(1, length, vocab)

    def __call__(self, ids: torch.Tensor, attention_mask: Any = None) -> torch.Tensor:
        return self.logits[:, : ids.shape[1]].clone()

    def forward_cached(self, ids: torch.Tensor, past: Any = None, start: int = 0) -> tuple[torch.Tensor, Any]:
        return self.logits[:, : ids.shape[1]].clone(), past


def overhead(model: Any, mask_id: int, prompt: torch.Tensor, gen: int, block: int) -> None:
    """The engine's per-step cost with a zero-cost predictor vs the model's dual-cache step."""
    zero = ZeroCost(MEDIUM.vocab_size, prompt.shape[1] + gen)
    z_seconds, z_nfe = decode(zero, mask_id, prompt, gen, block, "dual", {})
    m_seconds, m_nfe = decode(model, mask_id, prompt, gen, block, "dual", {})
    per_zero, per_model = z_seconds / z_nfe * 1e3, m_seconds / m_nfe * 1e3
    print(
        f"\nengine overhead per step: {per_zero:.2f} ms (zero-cost predictor, incl. its clone) vs "
        f"{per_model:.1f} ms per dual-cache step of the medium model = {100 * per_zero / per_model:.1f} %"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gen", type=int, nargs="+", default=[64, 256], help="new tokens, bundled model")
    parser.add_argument("--medium-gen", type=int, nargs="+", default=[64], help="new tokens, medium config")
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--eval", action="store_true", help="the bundled model's eval accuracy per rule")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads} float32 torch {torch.__version__}")
    ceiling = matmul_ceiling(MEDIUM.d_model, MEDIUM.mlp_hidden_size or 2816, args.block, torch.float32)
    print(
        f"matmul ceiling ({args.block} x {MEDIUM.d_model} @ {MEDIUM.d_model} x {MEDIUM.mlp_hidden_size}): {ceiling:.1f} GFLOP/s"
    )
    torch.manual_seed(0)
    medium = LLaDAModel(MEDIUM).eval()
    prompt = torch.randint(0, 31000, (1, args.prompt))
    with torch.inference_mode():
        overhead(medium, MEDIUM.mask_token_id, prompt, 64, args.block)
    table("medium config (168M, random weights)", medium, MEDIUM.mask_token_id, prompt, args.medium_gen, args.block)
    llm = LLaDA.from_pretrained(device="cpu", dtype="float32")
    tok = llm.require_tokenizer()
    small = torch.tensor([llm.bos_ids + tok.encode("Zapur lives in Duskmere and works as a weaver. " * 2)])
    table("bundled model (0.94M)", llm.model, llm.config.mask_token_id, small, args.gen, args.block)
    if args.eval:
        from llada_sdk.eval import evaluate

        print("\n| rule | forward passes | " + " | ".join(["task accuracy"]) + " |")
        for rule_name, rule in RULES.items():
            llm.options = GenerationOptions(**rule)
            report = evaluate(llm)
            accs = ", ".join(
                f"{t} {r['accuracy']:.1f}" for t, r in report.items() if isinstance(r, dict) and "accuracy" in r
            )
            print(f"| {rule_name} | {accs} |")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
