"""Check that an edge bundle of the bundled model answers the README's examples without torch.

    python -m llada_export.edgecheck BUNDLE [--block-torch] [--json]

Loads ``BUNDLE`` with ``LLaDA.from_pretrained`` (the onnx backend), runs infill, complete (forward,
backward, middle), chat (one turn and a two-turn session), streaming chat and multiple choice, compares
each text with the README's, and fails if torch was imported. ``--block-torch`` first installs an import
hook under which ``import torch`` raises ImportError (for environments that have torch installed);
CI also runs it in a fresh virtual environment without torch. Exit status 0 when every example matches.
"""

from __future__ import annotations

import argparse
import importlib.abc
import json
import sys
import time
from typing import Any

# (call, expected text): the README's examples on the bundled model
EXPECTED = {
    "infill": "Zapur lives in Duskmere and works as a weaver.",
    "complete_backward": "Zapur",
    "complete_forward": " Duskmere.",
    "complete_middle": "Duskmere",
    "chat": "Zapur lives in Duskmere.",
    "session_second_turn": "Zapur's parent is Lotrobar.",
    "stream_chat": "The month after March is April.",
    "choose": " Duskmere.",
}


class _NoTorch(importlib.abc.MetaPathFinder):
    """``import torch`` (and its submodules) raises ImportError, as where torch is not installed."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "torch" or fullname.startswith("torch."):
            raise ImportError(f"No module named {fullname!r} (blocked by llada_export.edgecheck)")
        return None


def block_torch() -> None:
    """Make ``import torch`` fail in this process (before anything imported it)."""
    if "torch" in sys.modules:
        raise RuntimeError("torch is already imported; block it before importing llada_sdk")
    sys.meta_path.insert(0, _NoTorch())


def run(bundle: str) -> dict[str, Any]:
    """Run the examples on ``bundle``; returns ``{name: text}`` plus timings and the backend info."""
    t0 = time.perf_counter()
    from llada_export.runtime import PLUGIN
    from llada_sdk import LLaDA
    from llada_sdk.backends.base import register
    from llada_sdk.results import TextEvent

    register(PLUGIN)  # also where the package's entry points are not installed (a source checkout)

    llm = LLaDA.from_pretrained(bundle)
    t_load = time.perf_counter() - t0
    got: dict[str, Any] = {}
    got["infill"] = llm.infill("Zapur lives in [MASK:auto] and works as a [MASK:2].").text
    got["complete_backward"] = llm.complete(suffix="'s parent is Lotrobar.").text
    got["complete_forward"] = llm.complete("Zapur lives in").text
    got["complete_middle"] = llm.complete("Zapur lives in", " and works as a weaver.").text
    got["chat"] = llm.chat([{"role": "user", "content": "Where does Zapur live?"}]).text
    session = llm.session()
    session.send("What day comes after Monday?")
    got["session_second_turn"] = session.send("Who is Zapur's parent?").text
    deltas = [
        ev.delta
        for ev in llm.stream_chat([{"role": "user", "content": "What month comes after March?"}])
        if isinstance(ev, TextEvent)
    ]
    got["stream_chat"] = "".join(deltas)
    got["choose"] = llm.choose("Zapur lives in", [" Kelso.", " Duskmere."]).text
    return {
        "texts": got,
        "load_s": round(t_load, 3),
        "total_s": round(time.perf_counter() - t0, 3),
        "backend": llm.backend.info(),
        "torch_imported": "torch" in sys.modules,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llada_export.edgecheck", description=__doc__.split("\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--block-torch", action="store_true", help="make `import torch` fail first")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.block_torch:
        block_torch()
    report = run(args.bundle)
    bad = {k: v for k, v in report["texts"].items() if v != EXPECTED[k]}
    report["mismatches"] = {k: {"got": v, "expected": EXPECTED[k]} for k, v in bad.items()}
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        for name, text in report["texts"].items():
            mark = "ok  " if name not in bad else "FAIL"
            sys.stdout.write(f"{mark} {name}: {text!r}\n")
        sys.stdout.write(f"backend {report['backend']['backend']} on {report['backend']['providers']}, ")
        sys.stdout.write(f"torch imported: {report['torch_imported']}, load {report['load_s']} s\n")
    return 1 if bad or report["torch_imported"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
