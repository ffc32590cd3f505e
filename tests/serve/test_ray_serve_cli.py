"""The two ways users start a Ray deployment, as real subprocesses: `serve run` of the example config and
`llada serve --replicas 2`; both answer the official openai client from both replicas."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # CI runs these on their own: Ray wants both cores
pytest.importorskip("ray.serve")
yaml = pytest.importorskip("yaml")
openai = pytest.importorskip("openai")

ROOT = Path(__file__).parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answered_by_two_replicas(proc: subprocess.Popen[bytes], port: int) -> set[str]:
    """Ask until two replicas have answered (bounded: 240 s, one request at a time)."""
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=60)
    seen: set[str] = set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(seen) < 2:
        assert proc.poll() is None, "the server exited"
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="llada-tiny-kb", messages=[{"role": "user", "content": "Where does Zapur live?"}]
            )
        except (openai.APIConnectionError, openai.NotFoundError, openai.InternalServerError):
            time.sleep(1)  # the proxy or the app is not up yet
            continue
        assert raw.parse().choices[0].message.content == "Zapur lives in Duskmere."
        seen.add(raw.headers["x-llada-replica"])
    return seen


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def test_serve_run_of_the_example_config(tmp_path: Path) -> None:
    port = _free_port()
    config = yaml.safe_load((ROOT / "examples" / "ray_serve.yaml").read_text())
    config["http_options"]["port"] = port
    path = tmp_path / "ray_serve.yaml"
    path.write_text(yaml.safe_dump(config))
    serve_cli = Path(sys.executable).parent / "serve"
    proc = subprocess.Popen([str(serve_cli), "run", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert len(_answered_by_two_replicas(proc, port)) == 2
    finally:
        _stop(proc)


def test_llada_serve_replicas() -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "llada_cli", "serve", "--replicas", "2", "--threads", "1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert len(_answered_by_two_replicas(proc, port)) == 2
    finally:
        _stop(proc)
