"""Decoding speed side by side: ``python benchmarks/decode.py`` (or ``llada bench --decode`` in a checkout).

One run prints, measured in that run:

- the float32 matmul rate of the machine: a full-canvas shape (the ceiling) and a block-sized one;
- the medium model's full forward and its 32-token dual-cache step, in GFLOP/s and as a share of
  that ceiling (how close a small cached call gets to the machine's matmul rate);
- the engine's own cost per step (a predictor that costs nothing) against the model's cached step;
- forward passes, seconds, tokens/s and speed-up for no cache / prefix / dual x fixed steps and the
  parallel rules (threshold, factor, entropy bound), at several lengths, on the medium config (random
  weights: only fixed steps by default, its confidences are meaningless) and on the bundled model;
- with ``--eval``: the bundled model's accuracy on every core eval task and its forward passes, per rule;
- with ``--prepack``: the same with the linear weights reordered for oneDNN once (``prepack=True``);
- with ``--compile``: the same decodes through ``torch.compile`` (and what compiling cost).

Imports torch (it measures it). Ratios are only meaningful within one run.
"""

from __future__ import annotations

import argparse
import copy
import resource
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import _repo  # noqa: F401  (the repository root on sys.path: recipes)
import torch

from llada_sdk.config import LLaDAConfig, medium_config
from llada_sdk.decoding.engine import DecodeConfig, denoise, reference_blocks
from llada_sdk.model import LLaDAModel
from llada_sdk.options import GenerationOptions
from recipes.bundled_model.eval import TEXT_TASKS as CORE_TASKS

RULES: dict[str, dict[str, Any]] = {
    "fixed": {},
    "threshold 0.9": {"threshold": 0.9},
    "factor 1.0": {"factor": 1.0},
    "entropy 0.5": {"entropy_bound": 0.5},
}
CACHES = ("none", "prefix", "dual")


def matmul_rate(m: int, k: int, n: int) -> float:
    """GFLOP/s of a float32 ``[m, k] @ [k, n]`` matmul, best of 5 rounds."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        best = min(best, (time.perf_counter() - t) / 5)
    return 2 * m * k * n / best / 1e9


def forward_flops(cfg: LLaDAConfig, n: int, keys: int) -> float:
    """Multiply-add FLOPs of a forward over ``n`` query positions attending to ``keys`` positions."""
    assert cfg.mlp_hidden_size is not None and cfg.n_kv_heads is not None and cfg.embedding_size is not None
    d, kv = cfg.d_model, cfg.n_kv_heads * cfg.head_dim
    per_layer = 2 * n * (2 * d * d + 2 * d * kv) + 2 * n * 3 * d * cfg.mlp_hidden_size + 4 * n * keys * d
    return float(cfg.n_layers * per_layer + 2 * n * d * cfg.embedding_size)


def best_seconds(fn: Callable[[], object], repeat: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def step_efficiency(model: LLaDAModel, length: int, block: int, ceiling: float, runtime: str = "eager") -> list[str]:
    """Rows: the full forward and a ``block``-token dual-cache step over a canvas of ``length``."""
    cfg = model.config
    x = torch.randint(0, cfg.vocab_size - 2, (1, length))
    with torch.inference_mode():
        full = best_seconds(lambda: model(x))
        _, cache = model.forward_cached(x)
        start = length - 2 * block
        step = best_seconds(lambda: model.forward_cached(x[:, start : start + block], cache, start))
    rows = []
    for name, n, seconds in (("full forward", length, full), (f"{block}-token dual-cache step", block, step)):
        rate = forward_flops(cfg, n, length) / seconds / 1e9
        rows.append(
            f"| {runtime} | {name} | 1x{n} over {length} keys | {seconds * 1e3:.1f} | {rate:.1f} | "
            f"{100 * rate / ceiling:.0f} % |"
        )
    return rows


def fusion_probe(cfg: LLaDAConfig, block: int) -> str:
    """Whether fusing projections would help a ``block``-token step: q/k/v as three matmuls vs one
    ``[3d, d]`` matmul, and the SwiGLU gate/up as two vs one ``[2f, d]`` (plain and oneDNN-prepacked)."""
    from llada_sdk.backends.torch_backend import PackedLinear, prepack_available

    assert cfg.mlp_hidden_size is not None
    d, f = cfg.d_model, cfg.mlp_hidden_size
    x = torch.randn(block, d)
    kinds: list[tuple[str, Callable[[torch.nn.Linear], torch.nn.Module]]] = [("plain", lambda lin: lin)]
    if prepack_available():
        kinds.append(("prepacked", PackedLinear))
    parts = []
    for name, shapes in (("q/k/v", [d, d, d]), ("gate/up", [f, f])):
        separate = [torch.nn.Linear(d, n, bias=False) for n in shapes]
        fused = torch.nn.Linear(d, sum(shapes), bias=False)
        for kind, wrap in kinds:
            apart_mods, fused_mod = [wrap(m) for m in separate], wrap(fused)
            with torch.inference_mode():
                apart = best_seconds(partial(_each, apart_mods, x))
                together = best_seconds(partial(fused_mod, x))
            parts.append(
                f"{name} {kind}: {apart * 1e3:.2f} ms apart, {together * 1e3:.2f} ms fused ({apart / together:.2f}x)"
            )
    return f"fused projections at {block} tokens: " + "; ".join(parts)


def _each(modules: list[torch.nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    return [m(x) for m in modules]


def decode(
    predictor: Any,
    mask_id: int,
    prompt: torch.Tensor,
    gen: int,
    block: int,
    steps: int,
    cache: str,
    rule: dict[str, Any],
) -> tuple[float, int, torch.Tensor]:
    """One decode of ``gen`` tokens after ``prompt`` through the engine: seconds, forward passes, canvas."""
    opts = GenerationOptions(max_tokens=gen, block_length=block, steps=steps, cache=cache, **rule)
    cfg = DecodeConfig.from_options(opts, mask_id=mask_id)
    x = torch.cat([prompt, torch.full((1, gen), mask_id)], dim=1)
    blocks, steps_per_block = reference_blocks(prompt.shape[1], gen, block, steps)
    t = time.perf_counter()
    events = list(denoise(predictor, x, blocks, steps_per_block, cfg))
    return time.perf_counter() - t, events[-1].forward_passes, x


def table(
    predictors: dict[str, Any],
    mask_id: int,
    prompt: torch.Tensor,
    gens: Sequence[int],
    block: int,
    rules: Sequence[str],
    steps_for: Callable[[int], int],
    caches: Sequence[str] = CACHES,
) -> list[str]:
    """Rows for every length x runtime x cache x rule; speed-up against the first row of each length."""
    rows = [
        "| new tokens | runtime | cache | rule | forward passes | seconds | tokens/s | speed-up | same tokens |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for gen in gens:
        base: tuple[float, torch.Tensor] | None = None
        for runtime, predictor in predictors.items():
            for cache in caches:
                for rule in rules:
                    seconds, nfe, x = decode(predictor, mask_id, prompt, gen, block, steps_for(gen), cache, RULES[rule])
                    if base is None:
                        base = (seconds, x)
                    same = "yes" if torch.equal(x, base[1]) else "no"
                    rows.append(
                        f"| {gen} | {runtime} | {cache} | {rule} | {nfe} | {seconds:.2f} | {gen / seconds:.1f} | "
                        f"{base[0] / seconds:.2f}x | {same} |"
                    )
                    print(rows[-1], flush=True)
    return rows


class ZeroCost:
    """A predictor that costs nothing: the same preallocated logits every call (cached or not)."""

    def __init__(self, vocab: int, length: int) -> None:
        self.logits = torch.randn(1, length, vocab)

    def __call__(self, ids: torch.Tensor, attention_mask: Any = None) -> torch.Tensor:
        return self.logits[:, : ids.shape[1]].clone()

    def forward_cached(self, ids: torch.Tensor, past: Any = None, start: int = 0) -> tuple[torch.Tensor, Any]:
        return self.logits[:, : ids.shape[1]].clone(), past


def overhead(model: LLaDAModel, prompt: torch.Tensor, gen: int, block: int) -> str:
    """The engine's per-step cost with a zero-cost predictor vs the model's dual-cache step."""
    cfg = model.config
    assert cfg.embedding_size is not None
    zero = ZeroCost(cfg.embedding_size, prompt.shape[1] + gen)
    with torch.inference_mode():
        z_seconds, z_nfe, _ = decode(zero, cfg.mask_token_id, prompt, gen, block, gen, "dual", {})
        m_seconds, m_nfe, _ = decode(model, cfg.mask_token_id, prompt, gen, block, gen, "dual", {})
    per_zero, per_model = z_seconds / z_nfe * 1e3, m_seconds / m_nfe * 1e3
    return (
        f"engine overhead per step: {per_zero:.2f} ms (zero-cost predictor, incl. its clone) vs "
        f"{per_model:.1f} ms per dual-cache step of the medium model = {100 * per_zero / per_model:.1f} %"
    )


class _Counting:
    """A predictor wrapper counting calls (the decode's forward passes, not scoring's)."""

    def __init__(self, inner: Any, calls: list[int]) -> None:
        self.inner, self.calls = inner, calls
        if hasattr(inner, "forward_cached"):
            self.forward_cached = self._cached

    def __call__(self, *args: Any) -> Any:
        self.calls[0] += 1
        return self.inner(*args)

    def _cached(self, *args: Any) -> Any:
        self.calls[0] += 1
        return self.inner.forward_cached(*args)


def rule_accuracy(llm: Any, rules: Sequence[str]) -> list[str]:
    """Rows: per rule, the decoding forward passes of the whole core eval (scoring passes, e.g. the
    ``[MASK:auto]`` length search, are not counted), their ratio to one token per step, and every task's
    accuracy. With the default options (one token per step) the fixed rule's passes are the tokens decoded."""
    from recipes.bundled_model.eval import evaluate

    calls = [0]
    backend = llm.backend
    original_predictor, original = backend.predictor, llm.options

    def counting(decode: Any = None, *, logits: bool = False) -> Any:
        inner = original_predictor(decode, logits=logits)
        return inner if decode is None else _Counting(inner, calls)

    rows = [
        "| rule | decoding forward passes | per token (fixed = 1) | " + " | ".join(CORE_TASKS) + " |",
        "|---|---|---|" + "---|" * len(CORE_TASKS),
    ]
    base = None
    backend.predictor = counting
    try:
        for rule in rules:
            llm.options = original.model_copy(update=RULES[rule])
            calls[0] = 0
            report = evaluate(llm, tasks=list(CORE_TASKS))
            base = base or calls[0]
            accs = " | ".join(f"{100 * report[t]['accuracy']:.1f}" for t in CORE_TASKS)
            rows.append(f"| {rule} | {calls[0]} | {calls[0] / base:.2f} ({base / calls[0]:.2f}x fewer) | {accs} |")
            print(rows[-1], flush=True)
    finally:
        del backend.predictor
        llm.options = original
    return rows


def runtimes(
    model: LLaDAModel, prompt: torch.Tensor, block: int, prepack: bool, compile: bool
) -> tuple[dict[str, Any], float | None]:
    """``{"eager": model}`` plus a prepacked copy and a compiled twin when asked, and the seconds the
    compiled twin's first decodes (plain and dual cache: both graphs) took, outside any timed row."""
    out: dict[str, Any] = {"eager": model}
    if prepack:
        from llada_sdk.backends.torch_backend import prepack_linears

        out["prepacked"] = copy.deepcopy(model)
        prepack_linears(out["prepacked"])
    if not compile:
        return out, None
    from llada_sdk.backends.torch_backend import CompiledPredictor

    out["compiled"] = CompiledPredictor(model)
    t = time.perf_counter()
    with torch.inference_mode():
        for cache in ("dual", "none"):
            decode(out["compiled"], model.config.mask_token_id, prompt, 2 * block, block, 2 * block, cache, {})
    return out, time.perf_counter() - t


def run(
    threads: int = 2,
    gens: Sequence[int] = (64, 256),
    medium_gens: Sequence[int] = (64,),
    medium_rules: Sequence[str] = ("fixed",),
    medium_caches: Sequence[str] = CACHES,
    prompt_len: int = 64,
    block: int = 32,
    medium_steps: int = 128,
    evaluate_rules: bool = False,
    compile: bool = False,
    prepack: bool = False,
    eval_only: bool = False,
) -> str:
    """The whole report as markdown (also printed row by row while it runs)."""
    from llada_sdk import LLaDA

    torch.set_num_threads(threads)
    if eval_only:
        llm = LLaDA.from_pretrained(None, device="cpu", dtype="float32", backend="torch")
        return "\n".join(["bundled model, core eval per rule (accuracy %):", *rule_accuracy(llm, list(RULES))])
    medium_cfg = medium_config()
    assert medium_cfg.mlp_hidden_size is not None
    out = [f"threads={threads}, float32, torch {torch.__version__}", ""]
    d, f = medium_cfg.d_model, medium_cfg.mlp_hidden_size
    ceiling = matmul_rate(512, d, f)
    small = matmul_rate(block, d, f)
    out += [
        f"matmul ceiling (512 x {d} @ {d} x {f}): {ceiling:.1f} GFLOP/s; the block's shape "
        f"({block} x {d} @ {d} x {f}): {small:.1f} GFLOP/s ({100 * small / ceiling:.0f} %)",
        "",
    ]
    torch.manual_seed(0)
    medium = LLaDAModel(medium_cfg).eval()
    length = prompt_len + max(medium_gens)
    prompt = torch.randint(0, medium_cfg.vocab_size - 2, (1, prompt_len))
    predictors, compile_seconds = runtimes(medium, prompt, block, prepack, compile)
    out += ["| runtime | medium model call | shape | ms | GFLOP/s | of the ceiling |", "|---|---|---|---|---|---|"]
    for runtime, predictor in predictors.items():
        if runtime != "compiled":
            out += step_efficiency(predictor, length, block, ceiling, runtime)
    out += ["", fusion_probe(medium_cfg, block), "", overhead(medium, prompt, 64, block), ""]
    print("\n".join(out), flush=True)
    if compile_seconds is not None:
        out.append(f"torch.compile (forward + cached forward, first calls): {compile_seconds:.1f} s")
    out += [
        "",
        f"medium config (random weights): prompt {prompt_len}, blocks of {block}, "
        f"{medium_steps} steps (fewer when shorter)",
    ]
    with torch.inference_mode():
        out += table(
            predictors,
            medium_cfg.mask_token_id,
            prompt,
            medium_gens,
            block,
            medium_rules,
            lambda g: min(g, medium_steps),
            medium_caches,
        )
    llm = LLaDA.from_pretrained(None, device="cpu", dtype="float32", backend="torch")
    model: Any = getattr(llm.backend, "model")  # noqa: B009 - the torch backend's model
    tok = llm.require_tokenizer()
    small_prompt = torch.tensor([llm.bos_ids + tok.encode("Zapur lives in Duskmere and works as a weaver. " * 2)])
    bundled, _ = runtimes(model, small_prompt, block, prepack, compile)
    out += ["", f"bundled model: prompt {small_prompt.shape[1]}, blocks of {block}, one token per step (fixed)"]
    with torch.inference_mode():
        out += table(bundled, llm.config.mask_token_id, small_prompt, gens, block, list(RULES), lambda g: g)
    if evaluate_rules:
        out += ["", "bundled model, core eval per rule (default options otherwise; accuracy %):"]
        out += rule_accuracy(llm, list(RULES))
    out += ["", f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"]
    return "\n".join(out)


def main(argv: list[str] | None = None, prog: str = "python benchmarks/decode.py") -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gen", type=int, nargs="+", default=[64, 256], help="new tokens, bundled model")
    parser.add_argument("--medium-gen", type=int, nargs="+", default=[64], help="new tokens, medium config")
    parser.add_argument(
        "--medium-rules", nargs="+", default=["fixed"], choices=list(RULES), help="rules on the medium config"
    )
    parser.add_argument("--medium-caches", nargs="+", default=list(CACHES), choices=list(CACHES))
    parser.add_argument("--medium-steps", type=int, default=128, help="steps of a medium decode (at most its tokens)")
    parser.add_argument("--prompt", type=int, default=64, help="prompt tokens, medium config")
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--eval", action="store_true", help="the bundled model's eval accuracy per rule")
    parser.add_argument("--compile", action="store_true", help="also decode through torch.compile")
    parser.add_argument("--prepack", action="store_true", help="also decode with oneDNN-prepacked linear weights")
    parser.add_argument("--eval-only", action="store_true", help="only the per-rule eval table")
    args = parser.parse_args(argv)
    report = run(
        threads=args.threads,
        gens=args.gen,
        medium_gens=args.medium_gen,
        medium_rules=args.medium_rules,
        medium_caches=args.medium_caches,
        prompt_len=args.prompt,
        block=args.block,
        medium_steps=args.medium_steps,
        evaluate_rules=args.eval,
        compile=args.compile,
        prepack=args.prepack,
        eval_only=args.eval_only,
    )
    print("\n" + report)


if __name__ == "__main__":
    main()
