"""``llada``: the command line of llada-sdk -- infill, complete, chat, generate, score, info, models, train.

A thin layer over the Python API (``llada_sdk.LLaDA``); ``llada --help`` does not import torch.
"""

from __future__ import annotations

__all__: list[str] = []
