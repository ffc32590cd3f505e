"""The bundled model as an edge bundle: the README's text calls through onnxruntime, the same texts as
on PyTorch, streaming metadata, the CLI on the bundle, and a run in a subprocess where torch cannot be
imported at all (CI also runs it in a fresh virtual environment without torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from llada_export.edgecheck import EXPECTED
from llada_export.runtime import PLUGIN
from llada_sdk.backends.base import register

register(PLUGIN)
pytestmark = pytest.mark.slow  # exports the bundled model first (~20 s); CI runs it with -m slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kb_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llada_export import export

    out = tmp_path_factory.mktemp("onnx") / "llada-tiny-kb"
    export(None, out, graphs=("logits", "greedy"), threads=1)
    return out


@pytest.fixture(scope="module")
def kb(kb_bundle: Path) -> Any:
    from llada_sdk import LLaDA

    return LLaDA.from_pretrained(kb_bundle, threads=1)


def test_bundle_holds_tokenizer_and_sidecar(kb_bundle: Path) -> None:
    from llada_export.sidecar import Sidecar

    side = Sidecar.read(kb_bundle)
    assert (
        side.tokenizer and (kb_bundle / "tokenizer.json").is_file() and (kb_bundle / "tokenizer_config.json").is_file()
    )
    assert side.special_ids.eot is not None and side.special_ids.bos is not None
    assert side.context_length == 384 and side.options["max_tokens"] == 32
    assert side.parity["logits"].logits_max_abs is not None and side.parity["logits"].logits_max_abs <= 1e-4
    assert side.graphs["greedy"].external_data is None  # below 2 GB: one file per graph


def test_readme_examples_give_the_readme_texts(kb: Any) -> None:
    from llada_export.edgecheck import run

    report = run(str(kb.backend.folder))
    assert report["texts"] == EXPECTED
    assert report["backend"]["backend"] == "onnxruntime" and report["backend"]["providers"] == ["cpu"]


def test_results_and_streams_report_the_providers_in_use(kb: Any) -> None:
    from llada_sdk.results import ResultEvent

    res = kb.complete("Zapur lives in")
    assert res.text == EXPECTED["complete_forward"]
    assert res.backend["backend"] == "onnxruntime" and res.backend["providers"] == ["cpu"]
    final = [ev for ev in kb.stream_infill("Zapur works as a [MASK:2].") if isinstance(ev, ResultEvent)]
    assert final[0].results[0].text == "Zapur works as a weaver." and final[0].results[0].backend["precision"] == "fp32"


def test_onnx_and_torch_agree_on_sampled_and_guided_calls(kb: Any, bundled: Any) -> None:
    # not the fused graph: temperature, CFG and random remasking go through the logits graph + numpy
    for kw in (
        {"cfg_scale": 1.0},
        {"threshold": 0.9},
        {"entropy_bound": 0.5},
        {"logits_eos_inf": True, "confidence_eos_eot_inf": True},
    ):
        assert kb.complete("Kikouguth works as a", **kw).text == bundled.complete("Kikouguth works as a", **kw).text, kw
    assert kb.complete("count: 3 4 5", temperature=0.5, seed=1).text.startswith(" 6")


@pytest.mark.slow
def test_bundle_runs_where_torch_cannot_be_imported(kb_bundle: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("", "export", "cli"))}
    done = subprocess.run(
        [sys.executable, "-m", "llada_export.edgecheck", str(kb_bundle), "--block-torch", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["torch_imported"] is False and report["mismatches"] == {}


def test_cli_runs_on_the_bundle(kb_bundle: Path) -> None:
    from click.testing import CliRunner

    from llada_cli.main import cli

    out = CliRunner().invoke(cli, ["complete", "Zapur lives in", "-m", str(kb_bundle), "--no-view"])
    assert out.exit_code == 0, out.output + str(out.exception)
    assert out.output.strip() == EXPECTED["complete_forward"].strip()
    js = CliRunner().invoke(cli, ["chat", "-m", str(kb_bundle), "--json"], input="Where does Zapur live?\n")
    assert js.exit_code == 0 and json.loads(js.output)["text"] == EXPECTED["chat"], js.output


@pytest.mark.slow
def test_cli_export_writes_a_bundle_and_refuses_bad_flags(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from llada_cli.main import cli

    out = tmp_path / "tiny"
    fixture = str(ROOT / "tests" / "fixtures" / "llada-tiny")
    bad = CliRunner().invoke(cli, ["export", fixture, str(out), "--graphs", "logits,beam"])
    assert bad.exit_code == 2 and "'beam' is not one of logits, greedy, cache, cache_greedy" in bad.output
    done = CliRunner().invoke(
        cli, ["export", fixture, str(out), "--graphs", "logits", "--eot-token-id", "348", "--threads", "1"]
    )
    assert done.exit_code == 0, done.output + str(done.exception)
    assert (out / "logits.onnx").is_file() and "1 graphs" in done.stdout and "parity logits" in done.stderr
    again = CliRunner().invoke(cli, ["export", fixture, str(out), "--graphs", "logits"])
    assert again.exit_code != 0 and "--overwrite" in again.output
    # --overwrite replaces the bundle as a whole, through a staging folder that does not stay behind
    (out / "stale.onnx").write_text("from the old bundle")
    replaced = CliRunner().invoke(
        cli,
        ["export", fixture, str(out), "--graphs", "logits", "--eot-token-id", "348", "--threads", "1", "--overwrite"],
    )
    assert replaced.exit_code == 0, replaced.output + str(replaced.exception)
    assert not (out / "stale.onnx").exists() and [p.name for p in tmp_path.iterdir()] == ["tiny"]
    from llada_export.sidecar import Sidecar

    assert "logits" in Sidecar.read(out).parity


@pytest.mark.slow
def test_bench_prints_each_row_once() -> None:
    from click.testing import CliRunner

    from llada_cli.main import cli

    args = ["--threads", "1", "--models", "bundled", "--shapes", "1x16", "--precisions", "fp32", "--repeat", "1"]
    done = CliRunner().invoke(cli, ["bench", *args, "--gen-tokens", "8"])
    assert done.exit_code == 0, done.output + str(done.exception)
    rows = [line for line in done.output.splitlines() if line.startswith("| bundled | 1x16 |")]
    assert [row.split(" | ")[2] for row in rows] == ["torch eager fp32", "onnxruntime fp32"], done.output


@pytest.mark.slow
def test_int8_bundle_keeps_the_readme_texts(tmp_path: Path) -> None:
    from llada_export import export
    from llada_export.edgecheck import run

    result = export(None, tmp_path / "int8", precision="int8", graphs=("logits", "greedy"), threads=1)
    assert result.sidecar.precision == "int8"
    size = sum(g.bytes for g in result.sidecar.graphs.values())
    assert size < 0.5 * 2 * (ROOT / "llada_sdk/bundled/llada-tiny-kb/model.safetensors").stat().st_size
    assert run(str(result.folder))["texts"] == EXPECTED
    # every linear layer is quantised except the LM head, which stays float32
    import onnx

    from llada_export.graphs import lm_head_nodes

    graph = onnx.load(str(result.folder / "greedy.onnx")).graph
    head = lm_head_nodes(graph, int(result.sidecar.config["embedding_size"]))
    assert len(head) == 1
    weights = {init.name: init for init in graph.initializer}
    node = next(n for n in graph.node if n.name == head[0])
    assert node.op_type == "MatMul" and weights[node.input[1]].data_type == onnx.TensorProto.FLOAT
    n_layers = int(result.sidecar.config["n_layers"])
    assert sum(n.op_type == "MatMulInteger" for n in graph.node) == 7 * n_layers  # q, k, v, out, gate, up, down


@pytest.mark.slow
def test_fp16_export_stays_close_to_fp32(tmp_path: Path) -> None:
    from llada_export import export

    result = export(None, tmp_path / "fp16", precision="fp16", graphs=("logits", "greedy"), threads=1)
    fig = result.sidecar.parity["logits"]
    assert fig.logits_max_abs is not None and fig.logits_max_abs < 0.1 and (fig.argmax_agreement or 0) >= 0.99
    io = {t.name: t.dtype for t in result.sidecar.graphs["logits"].outputs}
    assert io == {"logits": "float32"}  # float16 inside, float32 at the boundary
