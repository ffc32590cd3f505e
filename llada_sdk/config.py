"""LLaDA model configuration: the subset of the official ``config.json`` the runtime implements.

``LLaDAConfig.from_hf_dict`` reads an official config and refuses every value whose computation the
runtime does not implement, naming the key and the value: a checkpoint is never silently computed
wrong. Keys that only matter for training or for the remote-code wrapper are ignored.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llada_sdk.errors import ConfigError

# key -> (value the runtime implements, default of the reference ModelConfig when the key is absent)
_REQUIRED_VALUES: dict[str, tuple[Any, Any]] = {
    "block_type": ("llama", "sequential"),
    "activation_type": ("silu", "swiglu"),
    "layer_norm_type": ("rms", "default"),
    "rope": (True, False),
    "rope_full_precision": (True, True),
    "alibi": (False, False),
    "include_bias": (False, True),
    "include_qkv_bias": (False, False),
    "bias_for_layer_norm": (False, None),
    "weight_tying": (False, True),
    "attention_layer_norm": (False, False),
    "input_emb_norm": (False, False),
    "scale_logits": (False, False),
    "layer_norm_with_affine": (True, True),
    "block_group_size": (1, 1),
    "multi_query_attention": (None, None),
}
_REQUIRED_KEYS = ("d_model", "n_heads", "n_layers", "vocab_size")


@dataclass
class LLaDAConfig:
    """Sizes and special ids of a LLaDA mask predictor (the ``block_type: "llama"`` code path).

    Attributes:
        d_model: hidden size.
        n_heads: attention heads; ``head_dim = d_model // n_heads``.
        n_kv_heads: key/value heads (grouped-query attention when smaller than ``n_heads``).
        n_layers: transformer blocks.
        mlp_hidden_size: inner size of the SwiGLU MLP.
        vocab_size: tokenizer vocabulary size.
        embedding_size: rows of the embedding and of the LM head (>= vocab_size).
        max_sequence_length: the context window, the longest canvas decoded (RoPE is computed on the fly).
        rope_theta: RoPE base.
        rms_norm_eps: epsilon of RMSNorm.
        mask_token_id: the diffusion ``[MASK]`` id (``<|mdm_mask|>``).
        eos_token_id: ``<|endoftext|>``; also the padding id of the official checkpoints.
        pad_token_id: padding id.
        eot_token_id: ``<|eot_id|>`` (end of a chat turn); not in config.json, filled from the tokenizer.
        bos_token_id: ``<|startoftext|>``; not in config.json, filled from the tokenizer.
        extra: every other key of the original config.json, written back unchanged on save.
    """

    d_model: int
    n_heads: int
    n_layers: int
    vocab_size: int
    n_kv_heads: int | None = None
    mlp_hidden_size: int | None = None
    embedding_size: int | None = None
    max_sequence_length: int = 4096
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5
    mask_token_id: int = 126336
    eos_token_id: int = 126081
    pad_token_id: int | None = None
    eot_token_id: int | None = None
    bos_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.mlp_hidden_size is None:
            self.mlp_hidden_size = 4 * self.d_model
        if self.embedding_size is None:
            self.embedding_size = self.vocab_size
        if self.pad_token_id is None:
            self.pad_token_id = self.eos_token_id
        for name in ("d_model", "n_heads", "n_layers", "vocab_size", "n_kv_heads", "mlp_hidden_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"config key `{name}` must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"config key `d_model` ({self.d_model}) must be divisible by `n_heads` ({self.n_heads})")
        if self.head_dim % 2:
            raise ConfigError(f"head dimension d_model/n_heads must be even for RoPE, got {self.head_dim}")
        assert self.n_kv_heads is not None
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"config key `n_heads` ({self.n_heads}) must be a multiple of `n_kv_heads` ({self.n_kv_heads})"
            )
        assert self.embedding_size is not None
        if self.embedding_size < self.vocab_size:
            raise ConfigError(
                f"config key `embedding_size` ({self.embedding_size}) must be >= `vocab_size` ({self.vocab_size})"
            )
        for name in ("mask_token_id", "eos_token_id"):
            value = getattr(self, name)
            if not 0 <= value < self.embedding_size:
                raise ConfigError(f"config key `{name}` must be in [0, {self.embedding_size}), got {value!r}")

    @property
    def trained_window(self) -> int | None:
        """The row length the model was trained on, when shorter than ``max_sequence_length``: the
        ``trained_sequence_length`` key of config.json (an llada-sdk model-card field; None if absent).
        Canvases longer than this decode (with a warning) but lose quality; chat sessions keep their
        history within it."""
        value = self.extra.get("trained_sequence_length")
        return int(value) if isinstance(value, int) and 0 < value < self.max_sequence_length else None

    @property
    def context_window(self) -> int:
        """The longest canvas the model decodes: ``max_sequence_length``; longer ones are refused."""
        return self.max_sequence_length

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def num_parameters(self) -> int:
        """Exact parameter count (embedding + blocks + final norm + untied LM head)."""
        assert self.n_kv_heads is not None and self.mlp_hidden_size is not None
        assert self.embedding_size is not None
        d, f, kv = self.d_model, self.mlp_hidden_size, self.n_kv_heads * self.head_dim
        block = 2 * d + d * d * 2 + 2 * d * kv + 3 * d * f
        return 2 * self.embedding_size * d + self.n_layers * block + d

    @classmethod
    def from_hf_dict(cls, raw: dict[str, Any]) -> LLaDAConfig:
        """Build from an official ``config.json`` dict, refusing what the runtime cannot compute."""
        for key in _REQUIRED_KEYS:
            if key not in raw:
                raise ConfigError(f"config.json has no `{key}`; it is required for a LLaDA checkpoint")
        for key, (wanted, default) in _REQUIRED_VALUES.items():
            value = raw.get(key, default)
            if key == "bias_for_layer_norm" and value is None:
                value = raw.get("include_bias", True)
            if key == "multi_query_attention" and value is False:
                value = None
            if value != wanted or type(value) is not type(wanted):
                shown = f"{value!r}" if key in raw else f"missing (reference default {default!r})"
                raise ConfigError(
                    f"unsupported config: `{key}` = {shown}; llada-sdk implements only "
                    f"`{key}` = {wanted!r} (the LLaDA-8B code path)"
                )
        for key in ("attention_dropout", "residual_dropout", "embedding_dropout"):
            if float(raw.get(key, 0.0) or 0.0) != 0.0:
                raise ConfigError(f"unsupported config: `{key}` = {raw[key]!r}; only 0.0 is implemented")
        raw = dict(raw)
        if raw.get("mlp_hidden_size") is None:  # the reference falls back to mlp_ratio * d_model
            raw["mlp_hidden_size"] = int(raw.get("mlp_ratio", 4)) * int(raw["d_model"])
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: raw[k] for k in known if k in raw and raw[k] is not None}
        extra = {k: v for k, v in raw.items() if k not in known}
        return cls(**kwargs, extra=extra)

    @classmethod
    def from_json(cls, path: str | Path) -> LLaDAConfig:
        """Read ``config.json``; a parse error names the file."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_hf_dict(raw)

    def to_hf_dict(self) -> dict[str, Any]:
        """The official ``config.json`` layout (all keys the reference ``ModelConfig`` reads)."""
        out: dict[str, Any] = {
            "activation_type": "silu",
            "alibi": False,
            "alibi_bias_max": 8.0,
            "architectures": ["LLaDAModelLM"],
            "attention_dropout": 0.0,
            "attention_layer_norm": False,
            "attention_layer_norm_with_affine": True,
            "bias_for_layer_norm": False,
            "block_group_size": 1,
            "block_type": "llama",
            "embedding_dropout": 0.0,
            "flash_attention": False,
            "include_bias": False,
            "include_qkv_bias": False,
            "init_device": "meta",
            "init_fn": "mitchell",
            "init_std": 0.02,
            "input_emb_norm": False,
            "layer_norm_type": "rms",
            "layer_norm_with_affine": True,
            "mlp_ratio": 4,
            "model_type": "llada",
            "multi_query_attention": None,
            "residual_dropout": 0.0,
            "rope": True,
            "rope_full_precision": True,
            "scale_logits": False,
            "use_cache": False,
            "weight_tying": False,
        }
        out.update(self.extra)
        for key, value in asdict(self).items():
            if key in ("extra", "eot_token_id", "bos_token_id"):
                continue
            out[key] = value
        return dict(sorted(out.items()))


def medium_config() -> LLaDAConfig:
    """The 168M-parameter "medium" config of the CPU benchmarks (``benchmarks/``, ``llada bench``):
    d_model 1024, 8 layers, 16 heads, SwiGLU 2816, vocabulary 32000 (random weights there)."""
    return LLaDAConfig(
        d_model=1024,
        n_heads=16,
        n_layers=8,
        vocab_size=32000,
        mlp_hidden_size=2816,
        mask_token_id=31999,
        eos_token_id=31998,
    )
