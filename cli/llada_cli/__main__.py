"""``python -m llada_cli``: the ``llada`` command."""

from __future__ import annotations

from llada_cli.main import cli

if __name__ == "__main__":
    cli(prog_name="llada")
