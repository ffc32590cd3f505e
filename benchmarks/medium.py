"""The medium config shared by the CPU benchmarks (forward.py, cache.py): 168M parameters."""

from llada_sdk.config import LLaDAConfig

MEDIUM = LLaDAConfig(
    d_model=1024,
    n_heads=16,
    n_layers=8,
    vocab_size=32000,
    mlp_hidden_size=2816,
    mask_token_id=31999,
    eos_token_id=31998,
)
