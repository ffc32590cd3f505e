"""``python -m llada_sdk.training`` / ``llada train``: the command line of a training run."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from typing import NoReturn, TypeVar

from llada_sdk.training.data import JsonlData, TrainingDataError
from llada_sdk.training.loop import TrainConfig, train

C = TypeVar("C", bound=TrainConfig)


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), like the ``llada`` command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"Error: {message} (see '{self.prog} --help')\n")


def config_parser(config: type[TrainConfig], prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with ``--out``, ``--no-resume`` and a flag per field of ``config`` (a ``TrainConfig``)."""
    parser = _OneLineErrors(prog=prog, description=description)
    parser.add_argument("--out", required=True, help="output directory (checkpoint + tokenizer)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    for f in fields(config):
        if f.type in (bool, "bool"):
            parser.add_argument(f"--{f.name.replace('_', '-')}", action="store_true")
        elif f.name != "extra":
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    return parser


def config_from(parser: argparse.ArgumentParser, args: dict[str, object], config: type[C]) -> C:
    """``config(**args)``; a bad value exits 2 with one line naming the field."""
    try:
        return config(**args)  # type: ignore[arg-type]
    except ValueError as exc:
        parser.error(str(exc))


def parse_args(
    argv: list[str] | None = None, prog: str = "python -m llada_sdk.training"
) -> tuple[str, bool, str, TrainConfig]:
    """The command line as ``(out, resume, data file, config)``; a bad flag or value exits 2 with one line."""
    parser = config_parser(TrainConfig, prog, __doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        required=True,
        help='JSON lines: {"text": ...} documents and {"messages": [..., {"role": "assistant", ...}]} chats',
    )
    args = vars(parser.parse_args(argv))
    out, resume, data = args.pop("out"), not args.pop("no_resume"), args.pop("data")
    return out, resume, data, config_from(parser, args, TrainConfig)


def main(argv: list[str] | None = None, prog: str = "python -m llada_sdk.training") -> None:
    out, resume, path, cfg = parse_args(argv, prog)
    try:
        data = JsonlData(path)
        summary = train(cfg, out, data, resume=resume)
    except TrainingDataError as exc:
        raise SystemExit(f"Error: {exc}") from None
    print(json.dumps({k: v for k, v in summary.items() if k != "losses"}))  # noqa: T201


if __name__ == "__main__":
    main()
