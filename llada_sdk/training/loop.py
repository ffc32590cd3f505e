"""A training run: its config, the optimizer, resumable checkpoints in the official layout (plus the
optimizer and RNG state: a run resumes exactly; nothing is pickled), and the loop."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from llada_sdk.config import LLaDAConfig
from llada_sdk.model import LLaDAModel
from llada_sdk.training.data import RowSource, TrainingData
from llada_sdk.training.losses import causal_loss, forward_process, llada_loss
from llada_sdk.training.tokens import save_tokenizer, train_tokenizer


@dataclass
class TrainConfig:
    """Every knob of a training run; stored in trainer_state.json."""

    steps: int = 8000
    batch_size: int = 32
    seq_len: int = 96
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup: int = 100
    decay_fraction: float = 0.25
    sft_fraction: float = 0.3
    seed: int = 0
    threads: int = 1
    save_every: int = 500
    vocab_size: int = 512
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_hidden_size: int = 352
    causal: bool = False
    # every whitespace character a pre-token of its own (``train_tokenizer(split_spaces=True)``)
    split_spaces: bool = False
    # start from the weights and tokenizer of this checkpoint (same sizes); "" = the seeded initialisation
    # and a tokenizer trained on the run's texts
    init_from: str = ""
    # train only the parameters whose names contain one of these comma-separated fragments (e.g.
    # "q_proj,k_proj,v_proj,attn_out": attention only); "" = every parameter
    train_only: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive = (
            "steps",
            "batch_size",
            "threads",
            "save_every",
            "d_model",
            "n_layers",
            "n_heads",
            "mlp_hidden_size",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.vocab_size < 262:
            raise ValueError(f"`vocab_size` must be >= 262 (256 bytes + 6 special tokens), got {self.vocab_size}")
        if not self.lr > 0:
            raise ValueError(f"`lr` must be > 0, got {self.lr}")
        for name in self.fractions():
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"`{name}` must be in [0, 1], got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"`d_model` ({self.d_model}) must be divisible by `n_heads` ({self.n_heads})")
        fragments = self.trained_fragments()
        if self.train_only and not fragments:
            raise ValueError(f"`train_only` must name parameter fragments separated by commas, got {self.train_only!r}")

    def fractions(self) -> tuple[str, ...]:
        """The fields that must lie in [0, 1]."""
        return ("decay_fraction", "sft_fraction")

    def trained_fragments(self) -> list[str]:
        """``train_only`` as a list of name fragments ([] = every parameter trains)."""
        return [f.strip() for f in self.train_only.split(",") if f.strip()]

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        decay_start = int(self.steps * (1 - self.decay_fraction))
        if step < decay_start:
            return self.lr
        return self.lr * max(0.0, (self.steps - step) / max(1, self.steps - decay_start))


def init_weights(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for name, param in sorted(model.named_parameters()):
        if name.endswith("norm.weight") or name.endswith("ln_f.weight"):
            param.data.fill_(1.0)
        else:
            param.data.copy_(torch.randn(param.shape, generator=g) * 0.02)


def model_config(cfg: TrainConfig, tok: Any) -> LLaDAConfig:
    return LLaDAConfig(
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        n_layers=cfg.n_layers,
        n_kv_heads=cfg.n_heads,
        mlp_hidden_size=cfg.mlp_hidden_size,
        vocab_size=tok.get_vocab_size(),
        embedding_size=tok.get_vocab_size(),
        max_sequence_length=cfg.seq_len * 4,
        mask_token_id=tok.token_to_id("<|mdm_mask|>"),
        eos_token_id=tok.token_to_id("<|endoftext|>"),
        # the rows' length: canvases past it were never trained on (``llada info``, chat's history window)
        extra={"trained_sequence_length": cfg.seq_len},
    )


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW at ``cfg.lr``, betas (0.9, 0.95); weight decay on matrices only (not norms); only the
    parameters that require a gradient (see ``freeze_except``)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return torch.optim.AdamW(
        [
            {"params": [p for _, p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for _, p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )


def freeze_except(model: torch.nn.Module, fragments: list[str]) -> None:
    """Freeze every parameter whose name contains none of ``fragments`` (none frozen if it is empty)."""
    if not fragments:
        return
    trained = {n for n, _ in model.named_parameters() if any(f in n for f in fragments)}
    if not trained:
        names = sorted({n.split(".")[-2] for n, _ in model.named_parameters()})
        raise ValueError(f"`train_only` {fragments} matches no parameter; the names hold e.g. {names}")
    for name, param in model.named_parameters():
        param.requires_grad_(name in trained)


def checkpoint_state(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of ``folder/model.safetensors`` under the model's own names (``model.`` prefix removed)."""
    return {k.removeprefix("model."): v for k, v in load_file(str(folder / "model.safetensors")).items()}


def save_checkpoint(
    model: LLaDAModel, out: Path, tokenizer_dir: Path | None = None, dtype: torch.dtype = torch.float32
) -> None:
    """Write ``config.json`` + ``model.safetensors`` (official names) and copy the tokenizer files."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(model.config.to_hf_dict(), indent=2) + "\n")
    state = {f"model.{k}": v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer_dir is not None and tokenizer_dir.resolve() != out.resolve():
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(tokenizer_dir / name, out / name)


def _save_state(
    out: Path,
    step: int,
    cfg: TrainConfig,
    opt: torch.optim.Optimizer,
    model: torch.nn.Module,
    sampler: RowSource,
    gen: torch.Generator,
    losses: list[float],
) -> None:
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {"rng/torch": gen.get_state()}
    for group in opt.param_groups:
        for param in group["params"]:
            st = opt.state.get(param, {})
            for key in ("exp_avg", "exp_avg_sq", "step"):
                if key in st:
                    tensors[f"opt/{names[id(param)]}/{key}"] = torch.as_tensor(st[key]).clone()
    save_file(tensors, str(out / "trainer_state.safetensors"))
    meta = {"step": step, "config": asdict(cfg), "python_rng": _jsonable(sampler.rng.getstate()), "losses": losses}
    (out / "trainer_state.json").write_text(json.dumps(meta) + "\n")


def _jsonable(state: Any) -> Any:
    return [_jsonable(s) for s in state] if isinstance(state, tuple) else state


def _tupled(state: Any) -> Any:
    return tuple(_tupled(s) for s in state) if isinstance(state, list) else state


def train(
    cfg: TrainConfig, out: str | Path, data: TrainingData, resume: bool = True, progress: bool = True
) -> dict[str, Any]:
    """Train (or resume) a model on ``data`` into ``out``; returns a summary with the loss curve.

    The tokenizer is ``cfg.init_from``'s when the run starts from a model, else one trained on
    ``data.tokenizer_texts()``; a resumed run keeps the one in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tok_file = out / "tokenizer.json"
    if not tok_file.exists():
        if cfg.init_from:
            _copy_tokenizer(Path(cfg.init_from), out)
        else:
            texts = data.tokenizer_texts()
            save_tokenizer(train_tokenizer(texts, cfg.vocab_size, data.tool_tokens, cfg.split_spaces), out)
    from tokenizers import Tokenizer as HFTokenizer

    tok = HFTokenizer.from_file(str(tok_file))
    mcfg = model_config(cfg, tok)
    model = LLaDAModel(mcfg)
    if cfg.causal:
        set_causal(model)
    init_weights(model, cfg.seed)
    if cfg.init_from:
        _init_from(model, Path(cfg.init_from), tok_file)
    freeze_except(model, cfg.trained_fragments())
    opt = make_optimizer(model, cfg)
    sampler = data.rows(tok, cfg.seq_len, cfg.sft_fraction, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    start, losses = 0, list[float]()
    if resume and (out / "trainer_state.json").exists():
        start, losses = _resume(out, model, opt, sampler, gen)
    iterator: Iterator[int] = iter(range(start, cfg.steps))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", mininterval=2.0)
    t0, ema = time.time(), losses[-1] if losses else None
    model.train()
    for step in iterator:
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(step)
        batch = sampler.batch(cfg.batch_size)
        if cfg.causal:
            loss = causal_loss(model(batch.ids), batch.ids, batch.prompt_len)
        else:
            noisy, masked, p = forward_process(batch.ids, batch.prompt_len, mcfg.mask_token_id, gen)
            loss = llada_loss(model(noisy), batch.ids, masked, p, batch.prompt_len)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # frozen parameters have no gradient
        opt.step()
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"loss became {value} at step {step}")
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        if step % 10 == 0:
            losses.append(round(ema, 4))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.3f}", refresh=False)
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            save_checkpoint(model, out)
            _save_state(out, step + 1, cfg, opt, model, sampler, gen, losses)
    if bar is not None:
        bar.close()
    return {"steps": cfg.steps, "seconds": round(time.time() - t0, 1), "final_loss_ema": ema, "losses": losses}


def set_causal(model: LLaDAModel) -> None:
    """Turn a model into its autoregressive twin (causal attention), for the reversal baseline."""
    for block in model.transformer.blocks:
        block.causal = True  # type: ignore[union-attr,assignment]


def _copy_tokenizer(source: Path, out: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if not (source / name).is_file():
            raise ValueError(f"`init_from`: {source} has no {name} (a model trained here, or an official checkpoint)")
        shutil.copyfile(source / name, out / name)


def _init_from(model: LLaDAModel, source: Path, tok_file: Path) -> None:
    """Load ``source``'s weights into ``model``; its tokenizer must be the run's (same ids)."""
    theirs = source / "tokenizer.json"
    if not theirs.exists() or json.loads(theirs.read_text()) != json.loads(tok_file.read_text()):
        raise ValueError(f"`init_from`: {source} does not hold this run's tokenizer ({tok_file.name} differs)")
    state = checkpoint_state(source)
    mine = model.state_dict()
    if state.keys() != mine.keys() or any(state[k].shape != mine[k].shape for k in mine):
        raise ValueError(f"`init_from`: {source} is not a model of this run's sizes")
    model.load_state_dict(state)


def _resume(
    out: Path, model: LLaDAModel, opt: torch.optim.Optimizer, sampler: RowSource, gen: torch.Generator
) -> tuple[int, list[float]]:
    meta = json.loads((out / "trainer_state.json").read_text())
    model.load_state_dict(checkpoint_state(out))
    tensors = load_file(str(out / "trainer_state.safetensors"))
    gen.set_state(tensors["rng/torch"])
    params = dict(model.named_parameters())
    for key, value in tensors.items():
        if key.startswith("opt/"):
            name, field_name = key[4:].rsplit("/", 1)
            opt.state[params[name]][field_name] = value
    sampler.rng.setstate(_tupled(meta["python_rng"]))
    return int(meta["step"]), list(meta["losses"])
