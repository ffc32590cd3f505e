"""``llada bench --decode`` (``benchmarks/decode.py``): the FLOP count, the CLI route, one small run."""

from __future__ import annotations

import runpy
import sys

import pytest
from click.testing import CliRunner

from llada_cli.commands.bench import BENCHMARKS
from llada_cli.main import cli
from llada_sdk.config import medium_config

sys.path.insert(0, str(BENCHMARKS))
decode_bench = runpy.run_path(str(BENCHMARKS / "decode.py"), run_name="benchmarks.decode")
CACHES, RULES, forward_flops = decode_bench["CACHES"], decode_bench["RULES"], decode_bench["forward_flops"]


def test_forward_flops_by_hand() -> None:
    cfg = medium_config()  # d 1024, 8 layers, MLP 2816, vocabulary 32000, no GQA
    per_token = 8 * (2 * 4 * 1024 * 1024 + 2 * 3 * 1024 * 2816) + 2 * 1024 * 32000
    attention = 8 * 4 * 1024 * 128  # one query against 128 keys: scores and values
    assert forward_flops(cfg, 1, 128) == per_token + attention
    assert forward_flops(cfg, 32, 128) == 32 * (per_token + attention)


def test_cli_routes_decode_to_the_decode_benchmark() -> None:
    result = CliRunner().invoke(cli, ["bench", "--decode", "--", "--help"])
    assert result.exit_code == 0, result.output
    assert "usage: llada bench --decode" in result.output and "--medium-gen" in result.output


@pytest.mark.slow
def test_a_small_decode_benchmark_reports_every_cache_and_rule(capsys: pytest.CaptureFixture[str]) -> None:
    report = decode_bench["run"](threads=1, gens=(8,), medium_gens=(8,), prompt_len=8, block=8, medium_steps=8)
    rows = [line for line in report.splitlines() if line.startswith("| 8 | eager |")]
    medium_rows, bundled_rows = rows[: len(CACHES)], rows[len(CACHES) :]
    assert [r.split(" | ")[2:4] for r in medium_rows] == [[c, "fixed"] for c in CACHES]
    assert [r.split(" | ")[2:4] for r in bundled_rows] == [[c, r] for c in CACHES for r in RULES]
    assert all(r.endswith("| 1.00x | yes |") for r in (medium_rows[0], bundled_rows[0]))
    assert "engine overhead per step" in report and "matmul ceiling" in report and "of the ceiling" in report
