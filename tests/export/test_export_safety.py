"""``llada export`` never destroys what it did not write, and an interrupted export leaves nothing that
loads: OUT checks (the working directory, the source model, non-bundles), the staging folder and the
swap, Ctrl-C (exit 130, never a missing-package error), and the atomic sidecar.

The graph export and the parity run are replaced by fast stand-ins here (the weightless ``commit``
graph and fixed figures): these tests are about files and exits; test_onnx_bundle.py exports for real."""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import llada_export.exporter as exporter
from llada_cli.errors import INTERRUPTED, classify
from llada_cli.main import cli
from llada_export.sidecar import SIDECAR, ParityFigures, Sidecar
from llada_sdk import _deps
from llada_sdk.errors import MissingExtraError
from llada_sdk.loading import BUNDLED_DIR

FIGURES = {"logits": ParityFigures(provider="cpu", cases=1, argmax_agreement=1.0)}


@pytest.fixture
def fast_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every graph is the weightless commit graph and the parity run returns fixed figures."""

    def graph(torch: Any, model: Any, role: str, decode: Any, path: Path, opset: int, *rest: Any) -> None:
        exporter._commit_graph(path, opset, 0, "float32")

    monkeypatch.setattr(exporter, "_export_graph", graph)
    monkeypatch.setattr(exporter, "parity_run", lambda *a, **kw: FIGURES)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _export(out: Path | str, **kw: Any) -> Any:
    return exporter.export(None, out, graphs=("logits",), **kw)


@pytest.mark.parametrize("where", ["cwd", "cwd_parent", "cwd_symlink"])
def test_out_that_is_or_contains_the_working_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious.txt").write_text("keep me")
    (tmp_path / "link").symlink_to(work)
    monkeypatch.chdir(work)
    out = {"cwd": ".", "cwd_parent": "..", "cwd_symlink": str(tmp_path / "link")}[where]
    with pytest.raises(ValueError, match="the current working directory") as info:
        _export(out, overwrite=True)
    assert f"`out` {out} " in str(info.value)
    assert (work / "precious.txt").read_text() == "keep me" and sorted(os.listdir(work)) == ["precious.txt"]


@pytest.mark.parametrize(("where", "word"), [("same", "is"), ("inside", "lies inside"), ("parent", "contains")])
def test_out_that_is_inside_or_contains_the_source_model_is_refused(tmp_path: Path, where: str, word: str) -> None:
    src = tmp_path / "m"
    shutil.copytree(BUNDLED_DIR, src)
    before = _snapshot(tmp_path)
    out = {"same": src, "inside": src / "onnx", "parent": tmp_path}[where]
    with pytest.raises(ValueError, match=f"{word} the source model folder"):
        exporter.export(str(src), out, overwrite=True)
    assert _snapshot(tmp_path) == before


def test_overwrite_replaces_only_a_bundle(tmp_path: Path) -> None:
    plain = tmp_path / "notes"
    plain.mkdir()
    (plain / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"`out` .*notes is not an llada bundle \(no llada_onnx.json"):
        _export(plain, overwrite=True)
    with pytest.raises(ValueError, match="exists and is not empty; pass overwrite=True"):
        _export(plain)
    other = tmp_path / "other"
    other.mkdir()
    (other / SIDECAR).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not an llada bundle"):
        _export(other, overwrite=True)
    file = tmp_path / "file"
    file.write_text("keep me")
    with pytest.raises(ValueError, match=r"`out` .*file exists and is not a folder"):
        _export(file, overwrite=True)
    assert (plain / "precious.txt").read_text() == "keep me" and file.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "notes", "other"]  # no staging folder left


@pytest.mark.usefixtures("fast_export")
def test_empty_folder_is_used_and_a_bundle_is_replaced_in_place(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    first = _export(out)  # empty: no --overwrite needed
    assert first.folder == out and Sidecar.read(out).parity == FIGURES
    (out / "stale.onnx").write_text("from the old bundle")
    link = tmp_path / "link"
    link.symlink_to(out)
    _export(link, overwrite=True)  # through a symlink: the bundle it points to is replaced
    assert link.is_symlink() and not (out / "stale.onnx").exists() and (out / "logits.onnx").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "link"]
    assert Sidecar.read(out).parity == FIGURES


@pytest.mark.usefixtures("fast_export")
@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("failure", [KeyboardInterrupt, exporter.ExportError])
def test_failed_or_interrupted_parity_leaves_out_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool, failure: type[BaseException]
) -> None:
    out = tmp_path / "bundle"
    if existing:
        _export(out)
    before = _snapshot(tmp_path)

    def parity(*args: Any, **kw: Any) -> Any:
        raise failure("during the parity run")

    monkeypatch.setattr(exporter, "parity_run", parity)
    with pytest.raises(failure):
        _export(out, overwrite=True)
    assert _snapshot(tmp_path) == before  # the old bundle as it was, or still nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bundle"] if existing else [])


@pytest.mark.usefixtures("fast_export")
def test_parity_false_is_recorded_so_the_bundle_loads(tmp_path: Path) -> None:
    result = _export(tmp_path / "b", parity=False)
    raw = json.loads((tmp_path / "b" / SIDECAR).read_text())
    assert raw["parity"] == {} and raw["parity_skipped"] is True
    assert Sidecar.read(tmp_path / "b").parity_skipped and result.sidecar.parity_skipped
    with_parity = json.loads(_export(tmp_path / "c").folder.joinpath(SIDECAR).read_text())
    assert "parity_skipped" not in with_parity  # only written when set


def _interrupted_import(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """``import module`` fails as a package does when Ctrl-C lands in its ``__init__``: an ImportError
    raised while handling the KeyboardInterrupt."""
    real = importlib.import_module

    def fake(name: str, package: str | None = None) -> Any:
        if name != module:
            return real(name, package)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ImportError(f"cannot import name 'x' from partially initialized module {module!r}") from None

    monkeypatch.setattr(_deps.importlib, "import_module", fake)


def test_require_reraises_an_interrupt_chained_in_an_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _interrupted_import(monkeypatch, "onnxruntime")
    with pytest.raises(KeyboardInterrupt):
        _deps.require("onnxruntime", "onnx")


def test_require_reports_a_missing_extra_only_when_the_module_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'llada-sdk\[onnx\]'"):
        _deps.require("llada_no_such_module", "onnx")
    real = importlib.import_module

    def broken(name: str, package: str | None = None) -> Any:
        if name == "json":
            raise ImportError("cannot import name 'x' from partially initialized module 'json'")
        return real(name, package)

    monkeypatch.setattr(_deps.importlib, "import_module", broken)
    with pytest.raises(ImportError, match="json is installed but cannot be imported") as info:
        _deps.require("json", "onnx")
    assert not isinstance(info.value, MissingExtraError)


def test_classify_finds_an_interrupt_anywhere_in_the_chain() -> None:
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as kbi:
            raise ImportError("partially initialized") from kbi
    except ImportError as imp:
        chained: BaseException = imp
    try:
        raise MissingExtraError("onnxruntime", "onnx") from chained
    except MissingExtraError as exc:
        assert classify(exc)[0] == INTERRUPTED
    assert classify(chained)[0] == INTERRUPTED


@pytest.mark.usefixtures("fast_export")
@pytest.mark.parametrize("how", ["interrupt", "interrupted_import"])
def test_cli_export_interrupted_in_the_parity_run_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    def parity(*args: Any, **kw: Any) -> Any:
        if how == "interrupt":
            raise KeyboardInterrupt
        _interrupted_import(monkeypatch, "onnxruntime")
        _deps.require("onnxruntime", "onnx")  # what loading the bundle does first

    monkeypatch.setattr(exporter, "parity_run", parity)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(cli, ["export", "llada-tiny-kb", str(out), "--graphs", "logits"])
    assert result.exit_code == 130, result.output
    assert "Aborted." in result.output and "not installed" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_export_refuses_the_working_directory_and_keeps_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["export", "llada-tiny-kb", ".", "--overwrite"])
    assert result.exit_code == 2, result.output
    assert "Error: `out` . is the current working directory" in result.output
    assert sorted(os.listdir(tmp_path)) == ["precious.txt"]


@pytest.mark.usefixtures("fast_export")
def test_sidecar_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _export(tmp_path / "b").folder
    old = (folder / SIDECAR).read_text()
    side = Sidecar.read(folder).model_copy(update={"precision": "int8"})
    names = sorted(os.listdir(folder))

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        side.write(folder)
    assert (folder / SIDECAR).read_text() == old and sorted(os.listdir(folder)) == names  # no temporary file
    monkeypatch.undo()
    side.write(folder)
    assert Sidecar.read(folder).precision == "int8" and sorted(os.listdir(folder)) == names


@pytest.mark.slow
def test_a_real_ctrl_c_during_an_export_exits_130_and_leaves_nothing(tmp_path: Path) -> None:
    """SIGINT to a real ``llada export`` once it has started writing (its staging folder exists): exit 130,
    "Aborted.", no missing-package message, and neither OUT nor the staging folder is left behind."""
    import signal
    import subprocess
    import sys
    import time

    from tests.cli.test_cli import clean_env

    out = tmp_path / "bundle"
    command = [sys.executable, "-m", "llada_cli", "export", "llada-tiny-kb", str(out), "--graphs", "logits"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.endswith(".llada-export") for p in tmp_path.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the export never started writing"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    assert "Aborted." in stderr and "not installed" not in stdout + stderr
    assert list(tmp_path.iterdir()) == []
