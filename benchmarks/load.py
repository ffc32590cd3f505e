"""Checkpoint loading: seconds and peak resident memory over the weights' size in the target dtype.

Writes a synthetic ~1.2B-parameter checkpoint in the official format (bf16, 3 shards + index), then
loads it in a fresh process per target dtype -- and once the naive way (build the float32 model,
``safetensors.torch.load_file`` every shard, ``load_state_dict``, cast), side by side -- and reports load time, peak RSS (ru_maxrss) and
RSS before loading (Python + torch + llada_sdk). The bound checked by the issue is peak RSS <=
1.25 x the weight bytes in the target dtype.

    python benchmarks/load.py [--dir /tmp/llada-load-bench] [--layers 22]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
from llada_sdk import LLaDA
torch.set_num_threads(2)
def rss():  # current resident set, bytes
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
before = rss()
t = time.perf_counter()
if sys.argv[3] == "llada":
    model = LLaDA.from_pretrained(sys.argv[1], device="cpu", dtype=sys.argv[2]).model
else:  # the naive way: build the model, load every shard with safetensors, load_state_dict, cast
    import glob
    from safetensors.torch import load_file
    from llada_sdk.config import LLaDAConfig
    from llada_sdk.model import LLaDAModel
    model = LLaDAModel(LLaDAConfig.from_json(sys.argv[1] + "/config.json"))
    state = {}
    for f in sorted(glob.glob(sys.argv[1] + "/*.safetensors")):
        state.update({k.removeprefix("model."): v for k, v in load_file(f).items()})
    model.load_state_dict(state)
    del state
    model = model.to(getattr(torch, sys.argv[2]))
seconds = time.perf_counter() - t
weights = sum(p.numel() * p.element_size() for p in model.parameters())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"way": sys.argv[3], "dtype": sys.argv[2], "seconds": seconds, "weights": weights, "peak": peak, "before": before}))
"""


def write_checkpoint(folder: Path, layers: int) -> None:
    import torch
    from safetensors.torch import save_file

    from llada_sdk.config import LLaDAConfig
    from llada_sdk.model import LLaDAModel

    cfg = LLaDAConfig(
        d_model=2048,
        n_heads=16,
        n_layers=layers,
        vocab_size=32000,
        mlp_hidden_size=5632,
        mask_token_id=31999,
        eos_token_id=31998,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_hf_dict()))
    with torch.device("meta"):
        shapes = {f"model.{k}": tuple(v.shape) for k, v in LLaDAModel(cfg).state_dict().items()}
    names = sorted(shapes)
    shards = [names[i::3] for i in range(3)]
    weight_map = {}
    g = torch.Generator().manual_seed(0)
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-00003.safetensors"
        tensors = {n: (torch.randn(shapes[n], generator=g) * 0.02).to(torch.bfloat16) for n in shard}
        save_file(tensors, str(folder / fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in shard})
        del tensors
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    print(f"wrote {cfg.num_parameters() / 1e9:.2f}B parameters to {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/tmp/llada-load-bench")
    parser.add_argument("--layers", type=int, default=22)
    args = parser.parse_args()
    folder = Path(args.dir)
    if not (folder / "model.safetensors.index.json").exists():
        write_checkpoint(folder, args.layers)
    print(
        "| loader | target dtype | load s | weights GB | RSS before load GB | peak RSS GB | peak / weights "
        "| (peak - before) / weights |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for way, dtype in (("llada", "bfloat16"), ("llada", "float32"), ("naive", "bfloat16")):
        cmd = [sys.executable, "-c", CHILD, str(folder), dtype, way]
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        gb = 1e9
        print(
            f"| {way} | {dtype} | {r['seconds']:.2f} | {r['weights'] / gb:.2f} | {r['before'] / gb:.2f} "
            f"| {r['peak'] / gb:.2f} | {r['peak'] / r['weights']:.3f} | {(r['peak'] - r['before']) / r['weights']:.3f} |"
        )


if __name__ == "__main__":
    main()
