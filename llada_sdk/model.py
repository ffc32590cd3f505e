"""The LLaDA mask predictor in plain PyTorch (the official ``block_type: "llama"`` code path).

A bidirectional Llama-style encoder: pre-norm RMSNorm computed in float32, half-rotation RoPE in
float32, SwiGLU MLP (``ff_proj`` gate, ``up_proj``, ``ff_out``), untied LM head, no biases, and no causal
mask. Module names equal the official state-dict names without their ``model.`` prefix, so loading is
a plain ``load_state_dict``. This file knows nothing of files, tokenizers or sampling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llada_sdk.config import LLaDAConfig


class RMSNorm(nn.Module):
    """RMSNorm as the reference computes it: normalise in float32, cast back, then scale."""

    def __init__(self, dim: int, eps: float, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        out: torch.Tensor = self.weight * x32.to(x.dtype)
        return out


def rope_tables(length: int, head_dim: int, theta: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables ``[1, 1, length, head_dim]`` in float32 for positions ``0 .. length-1``."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float) / head_dim))
    seq = torch.arange(length, device=device, dtype=torch.float)
    freqs = torch.outer(seq, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)[None, None]
    return emb.cos(), emb.sin()


def apply_rope(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Half rotation (NeoX / HF-Llama pairing), computed in float32. ``t``: [B, H, L, D]."""
    t32 = t.float()
    half = t32.shape[-1] // 2
    rotated = torch.cat((-t32[..., half:], t32[..., :half]), dim=-1)
    return (t32 * cos + rotated * sin).to(t.dtype)


KV = tuple[torch.Tensor, torch.Tensor]  # one layer's keys and values, [B, n_kv_heads, L, head_dim]


class LLaDABlock(nn.Module):
    """One pre-norm transformer block with bidirectional attention and a SwiGLU MLP."""

    def __init__(self, cfg: LLaDAConfig, device: torch.device | str | None = None) -> None:
        super().__init__()
        assert cfg.n_kv_heads is not None and cfg.mlp_hidden_size is not None
        d, kv = cfg.d_model, cfg.n_kv_heads * cfg.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.causal = False  # True only for the autoregressive baseline of benchmarks/reversal.py
        self.attn_norm = RMSNorm(d, cfg.rms_norm_eps, device)
        self.q_proj = nn.Linear(d, d, bias=False, device=device)
        self.k_proj = nn.Linear(d, kv, bias=False, device=device)
        self.v_proj = nn.Linear(d, kv, bias=False, device=device)
        self.attn_out = nn.Linear(d, d, bias=False, device=device)
        self.ff_norm = RMSNorm(d, cfg.rms_norm_eps, device)
        self.ff_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=False, device=device)
        self.up_proj = nn.Linear(d, cfg.mlp_hidden_size, bias=False, device=device)
        self.ff_out = nn.Linear(cfg.mlp_hidden_size, d, bias=False, device=device)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attn_bias: torch.Tensor | None,
        kv: KV | None = None,
        start: int = 0,
    ) -> tuple[torch.Tensor, KV]:
        """``x``: the hidden states of positions ``start .. start+L-1``. With ``kv`` (this layer's
        full-length keys/values after RoPE), this segment's own keys/values are written into ``kv`` in
        place and attention sees the whole of it. Returns the new hidden states and the keys/values used."""
        B, L, _ = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(B, L, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if kv is not None:
            # write this segment's keys/values into the cache in place (the segment is the same for
            # every step of a block, so nothing else changes): no per-step concatenation
            kv[0][:, :, start : start + L] = k
            kv[1][:, :, start : start + L] = v
            k, v = kv
        used = (k, v)
        a = self._attend(q, k, v, attn_bias)
        x = x + self.attn_out(a.transpose(1, 2).reshape(B, L, -1))
        return self._mlp(x), used

    def forward_rows(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attn_bias: torch.Tensor,
        index: torch.Tensor,
        shape: tuple[int, int],
    ) -> torch.Tensor:
        """``forward`` over the real tokens of a padded batch only: ``x`` [N, d] holds the flat
        positions ``index`` of a ``shape`` = (B, L) batch. The projections and the MLP run on the N
        tokens; attention runs in the padded layout (padded queries are zeros, their output dropped)."""
        B, L = shape
        h = self.attn_norm(x)

        def spread(t: torch.Tensor, heads: int) -> torch.Tensor:
            full = t.new_zeros(B * L, t.shape[-1]).index_copy_(0, index, t)
            return full.view(B, L, heads, self.head_dim).transpose(1, 2)

        q = spread(self.q_proj(h), self.n_heads)
        k = spread(self.k_proj(h), self.n_kv_heads)
        v = spread(self.v_proj(h), self.n_kv_heads)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a = self._attend(q, k, v, attn_bias).transpose(1, 2).reshape(B * L, -1).index_select(0, index)
        return self._mlp(x + self.attn_out(a))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.n_kv_heads != self.n_heads:
            rep = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=self.causal)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ff_norm(x)
        out: torch.Tensor = x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))
        return out


class Transformer(nn.Module):
    def __init__(self, cfg: LLaDAConfig, device: torch.device | str | None = None) -> None:
        super().__init__()
        assert cfg.embedding_size is not None
        # On "meta" (the loading skeleton) pass an explicit weight: nn.Embedding's random init there
        # would import torch._dynamo (~1 s) for nothing.
        meta = torch.empty(cfg.embedding_size, cfg.d_model, device="meta") if str(device) == "meta" else None
        self.wte = nn.Embedding(cfg.embedding_size, cfg.d_model, device=device, _weight=meta)
        self.blocks = nn.ModuleList(LLaDABlock(cfg, device) for _ in range(cfg.n_layers))
        self.ln_f = RMSNorm(cfg.d_model, cfg.rms_norm_eps, device)
        self.ff_out = nn.Linear(cfg.d_model, cfg.embedding_size, bias=False, device=device)


class LLaDAModel(nn.Module):
    """``forward(input_ids [B, L], attention_mask [B, L] | None) -> logits [B, L, V]``.

    ``attention_mask`` follows the official Hugging Face semantics: keys at 0 are excluded from
    attention (queries at padded positions are still computed), positions are ``0 .. L-1`` of the
    padded sequence (left padding consumes positions, as in the reference), and a mask of all ones
    is the same as no mask. Logits at position *i* predict token *i* (no shift).
    """

    def __init__(self, cfg: LLaDAConfig, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.config = cfg
        self.transformer = Transformer(cfg, device)  # device="meta": a skeleton for loading

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must have shape [batch, length], got {tuple(input_ids.shape)}")
        L = input_ids.shape[1]
        x = self.transformer.wte(input_ids)
        cos, sin = rope_tables(L, self.config.head_dim, self.config.rope_theta, x.device)
        bias = None
        if attention_mask is not None:
            self._check_mask(input_ids, attention_mask)
            # torch.export cannot branch on data: an exported graph always carries the padding bias
            if torch.compiler.is_exporting() or not bool(attention_mask.bool().all()):
                bias = self._padding_bias(attention_mask, x.dtype)
        for block in self.transformer.blocks:
            x, _ = block(x, cos, sin, bias)
        logits: torch.Tensor = self.transformer.ff_out(self.transformer.ln_f(x))
        return logits

    def forward_unpadded(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``forward`` for a padded batch whose padded positions nobody reads (the step batcher's
        rows): the positions the mask excludes are attended around but not computed, and their logits
        are 0. The real positions' logits equal ``forward``'s within float32 rounding; the work saved
        is the padding's share of every projection, the MLPs and the LM head."""
        if attention_mask is None or input_ids.dim() != 2:
            return self.forward(input_ids, attention_mask)
        self._check_mask(input_ids, attention_mask)
        B, L = input_ids.shape
        index = attention_mask.reshape(-1).nonzero().squeeze(1)
        x = self.transformer.wte(input_ids.reshape(-1).index_select(0, index))
        cos, sin = rope_tables(L, self.config.head_dim, self.config.rope_theta, x.device)
        bias = self._padding_bias(attention_mask, x.dtype)
        block: LLaDABlock
        for block in self.transformer.blocks:  # type: ignore[assignment]
            x = block.forward_rows(x, cos, sin, bias, index, (B, L))
        logits: torch.Tensor = self.transformer.ff_out(self.transformer.ln_f(x))
        out = logits.new_zeros(B * L, logits.shape[-1]).index_copy_(0, index, logits)
        return out.view(B, L, -1)

    @staticmethod
    def _check_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"`attention_mask` must have the shape of `input_ids` {tuple(input_ids.shape)}, "
                f"got {tuple(attention_mask.shape)}"
            )

    @staticmethod
    def _padding_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The additive key bias ``[B, 1, 1, L]``: 0 where the mask keeps a key, the dtype's minimum
        where it excludes one."""
        B, L = attention_mask.shape
        keep = attention_mask.bool()[:, None, None, :]
        bias = torch.zeros(B, 1, 1, L, dtype=dtype, device=attention_mask.device)
        return bias.masked_fill(~keep, torch.finfo(dtype).min)

    def forward_cached(
        self, input_ids: torch.Tensor, cache: list[KV] | None = None, start: int = 0
    ) -> tuple[torch.Tensor, list[KV]]:
        """Fast-dLLM-style approximate KV caching (no attention mask).

        ``input_ids`` holds positions ``start .. start+n-1`` of a canvas of length ``Ltot``; ``cache``
        the per-layer keys/values (after RoPE) of the whole canvas from an earlier call. Attention sees
        the cached keys/values everywhere except on this segment, which uses its own fresh ones.
        Without ``cache`` the segment must be the whole canvas (``start == 0``). Returns the segment's
        logits and the per-layer full-length keys/values of this call.
        """
        n = input_ids.shape[1]
        total = n if cache is None else cache[0][0].shape[2]
        if cache is None and start != 0:
            raise ValueError("`start` must be 0 without a cache")
        if start + n > total:
            raise ValueError(f"segment [{start}, {start + n}) is outside the cached length {total}")
        x = self.transformer.wte(input_ids)
        cos, sin = rope_tables(total, self.config.head_dim, self.config.rope_theta, x.device)
        cos, sin = cos[:, :, start : start + n], sin[:, :, start : start + n]
        new_cache = []
        for i, block in enumerate(self.transformer.blocks):
            x, used = block(x, cos, sin, None, None if cache is None else cache[i], start)
            new_cache.append(used)
        logits: torch.Tensor = self.transformer.ff_out(self.transformer.ln_f(x))
        return logits, new_cache

    @property
    def device(self) -> torch.device:
        return self.transformer.wte.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.wte.weight.dtype
