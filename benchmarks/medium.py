"""The medium config shared by the CPU benchmarks (forward.py, cache.py, decode.py): 168M parameters."""

from llada_sdk.config import medium_config

MEDIUM = medium_config()
