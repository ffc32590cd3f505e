"""``python -m llada_sdk.training`` / ``llada train``: the command line of a training run."""

from __future__ import annotations

import argparse
import json
from typing import NoReturn

from llada_sdk.training.loop import TrainConfig, train


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), like the ``llada`` command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"Error: {message} (see '{self.prog} --help')\n")


def parse_args(
    argv: list[str] | None = None, prog: str = "python -m llada_sdk.training"
) -> tuple[str, bool, TrainConfig]:
    """The command line as ``(out, resume, config)``; a bad flag or value exits 2 with one line."""
    parser = _OneLineErrors(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory (checkpoint + tokenizer)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    for name, f in TrainConfig.__dataclass_fields__.items():
        if f.type in (bool, "bool"):
            parser.add_argument(f"--{name.replace('_', '-')}", action="store_true")
        elif name != "extra":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = vars(parser.parse_args(argv))
    out, resume = args.pop("out"), not args.pop("no_resume")
    try:
        cfg = TrainConfig(**args)
    except ValueError as exc:
        parser.error(str(exc))
    return out, resume, cfg


def main(argv: list[str] | None = None, prog: str = "python -m llada_sdk.training") -> None:
    out, resume, cfg = parse_args(argv, prog)
    summary = train(cfg, out, resume=resume)
    print(json.dumps({k: v for k, v in summary.items() if k != "losses"}))  # noqa: T201


if __name__ == "__main__":
    main()
