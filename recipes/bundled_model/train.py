"""``python -m recipes.bundled_model.train``: a training run on the bundled model's synthetic corpus.

The generic run (``llada_sdk.training``) with this recipe's knobs (``BundledConfig``) and rows
(``BundledData``: ``corpus`` + ``rows``). ``train.sh`` runs the phases of the shipped weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llada_sdk.training import TrainConfig, config_from, config_parser, train
from recipes.bundled_model.corpus import build_corpus, tokenizer_training_text
from recipes.bundled_model.rows import RowSampler


@dataclass
class BundledConfig(TrainConfig):
    """A run of the recipe: the generic knobs plus the corpus's."""

    n_people: int = 40
    # the tool recipe: tool-use conversations, extraction documents, small talk, the two tool-call
    # tokens, and batches of one kind (pre-training rows of `pretrain_len`, SFT rows padded to their
    # longest + SFT_TAIL). False = the first bundled model's recipe, bit for bit.
    tools: bool = False
    tool_fraction: float = 0.4
    extract_fraction: float = 0.1
    pretrain_len: int = 0
    # every tool-use and extraction row about a newly drawn person (only copying lowers their loss)
    fresh_people: bool = False
    # share of the tool-kind SFT rows that are extraction rows (sentence -> its JSON)
    extract_sft: float = 0.0
    # share of the fresh-people tool rows offering a drawn menu of tools (``tool_menus``)
    varied_tools: float = 0.0
    # share of the fresh people drawn with a long name (``rows.LONG_NAME_TOKENS`` tokens or more)
    long_names: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_people < 1:
            raise ValueError(f"`n_people` must be >= 1, got {self.n_people}")
        if self.pretrain_len < 0:
            raise ValueError(f"`pretrain_len` must be >= 0 (0 = `seq_len`), got {self.pretrain_len}")

    def fractions(self) -> tuple[str, ...]:
        return (*super().fractions(), "tool_fraction", "extract_fraction", "extract_sft", "varied_tools", "long_names")


class BundledData:
    """The synthetic corpus of ``cfg`` as ``TrainingData``."""

    def __init__(self, cfg: BundledConfig) -> None:
        self.cfg, self.tool_tokens = cfg, cfg.tools
        self.corpus = build_corpus(cfg.seed, cfg.n_people, tools=cfg.tools)

    def tokenizer_texts(self) -> list[str]:
        return tokenizer_training_text(self.corpus)

    def rows(self, tok: Any, seq_len: int, sft_fraction: float, seed: int) -> RowSampler:
        cfg = self.cfg
        return RowSampler(
            self.corpus,
            tok,
            seq_len,
            sft_fraction,
            seed,
            cfg.tool_fraction if cfg.tools else 0.0,
            cfg.extract_fraction if cfg.tools else 0.0,
            cfg.pretrain_len or seq_len,
            cfg.fresh_people,
            kinds=cfg.tools,
            extract_sft=cfg.extract_sft if cfg.tools else 0.0,
            varied_tools=cfg.varied_tools if cfg.tools else 0.0,
            long_names=cfg.long_names if cfg.tools else 0.0,
        )


def parse_args(argv: list[str] | None = None) -> tuple[str, bool, BundledConfig]:
    """The command line as ``(out, resume, config)``; a bad flag or value exits 2 with one line."""
    parser = config_parser(BundledConfig, "python -m recipes.bundled_model.train", __doc__.split("\n")[0])
    args = vars(parser.parse_args(argv))
    out, resume = args.pop("out"), not args.pop("no_resume")
    return out, resume, config_from(parser, args, BundledConfig)


def main(argv: list[str] | None = None) -> None:
    out, resume, cfg = parse_args(argv)
    summary = train(cfg, out, BundledData(cfg), resume=resume)
    print(json.dumps({k: v for k, v in summary.items() if k != "losses"}))  # noqa: T201


if __name__ == "__main__":
    main()
