"""The ``llada`` command group (entry point ``llada = "llada_cli.main:cli"``).

Only click, pydantic and the light parts of llada_sdk are imported here; torch, rich and the model are
imported inside the command bodies, so ``llada --help`` and ``llada COMMAND --help`` start fast.
"""

from __future__ import annotations

import click

from llada_cli.commands.bench import bench
from llada_cli.commands.chat import chat
from llada_cli.commands.complete import complete
from llada_cli.commands.export import export
from llada_cli.commands.generate import generate
from llada_cli.commands.infill import infill
from llada_cli.commands.info import info
from llada_cli.commands.models import models
from llada_cli.commands.score import score
from llada_cli.commands.serve import serve
from llada_cli.commands.train import train
from llada_cli.errors import LladaGroup, set_debug


@click.group(
    name="llada", cls=LladaGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="llada-sdk", prog_name="llada")
@click.option(
    "--debug",
    is_flag=True,
    envvar="LLADA_DEBUG",
    expose_value=False,
    is_eager=True,
    callback=set_debug,
    help="Show the full traceback of an error (env LLADA_DEBUG).",
)
def cli() -> None:
    """Run LLaDA masked-diffusion language models: fill masked spans, complete text forward,
    backward or in the middle, chat, score, and run the reference generate() call.

    Every command uses the bundled model (llada-tiny-kb) unless -m/--model or LLADA_MODEL names a
    directory or a cached Hub repo. `llada COMMAND --help` lists a command's options.

    \b
    Exit codes: 0 ok, 1 runtime error, 2 usage error, 130 interrupted.
    """


for _command in (infill, complete, chat, generate, score, serve, info, models, train, export, bench):
    cli.add_command(_command)
