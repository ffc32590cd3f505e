"""``python -m llada_sdk.training``."""

from llada_sdk.training.cli import main

main()
