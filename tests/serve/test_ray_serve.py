"""Scale-out on Ray Serve: two replicas of the bundled model on a local Ray (one thread each), driven
through Serve's HTTP proxy on a loopback port. Every request loop is bounded in count and time."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # CI runs these on their own: Ray wants both cores
ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")

ASK = [{"role": "user", "content": "Where does Zapur live?"}]
ANSWER = "Zapur lives in Duskmere."
ARGS: dict[str, Any] = {
    "num_replicas": 2,
    "threads": 1,
    "num_cpus": 1,
    "max_queued_requests": 4,
    "health_check_period_s": 1,
    "server": {"max_concurrent": 4, "max_queue": 2, "timeout_s": 60},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_running(replicas: int, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app = serve.status().applications.get("llada")
        if app is not None and app.status == "RUNNING":
            counts = app.deployments["llada"].replica_states
            if counts.get("RUNNING", 0) == replicas and sum(counts.values()) == replicas:
                return
        time.sleep(0.5)
    raise AssertionError(f"the app did not reach {replicas} running replicas: {serve.status()}")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    from llada_server.ray_serve import build_app

    port = _free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(ARGS), name="llada", route_prefix="/")
        _wait_running(2)
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def _content(r: httpx.Response) -> str:
    return str(r.json()["choices"][0]["message"]["content"])


def _chat(url: str, **extra: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json={"messages": ASK, **extra}, timeout=90)


def test_the_openai_client_is_answered_and_both_replicas_serve(url: str) -> None:
    # Ray's router may shed a burst with 503 + Retry-After while it probes the replicas; the openai
    # client retries those, as a user's client would. What is answered must be right.
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=6, timeout=90)
    chat = client.chat.completions.with_raw_response
    with ThreadPoolExecutor(8) as pool:
        raw = list(pool.map(lambda _: chat.create(model="llada-tiny-kb", messages=ASK), range(16)))  # type: ignore[arg-type]
    wrong = [a for a in (r.parse().choices[0].message.content for r in raw) if a != ANSWER]
    assert not wrong, wrong
    replicas = {r.headers["x-llada-replica"] for r in raw}
    assert len(replicas) == 2, replicas
    metrics = httpx.get(url + "/metrics", timeout=30).text
    assert 'replica="' in metrics and "llada_requests_total" in metrics


def test_more_clients_than_the_queues_hold_get_503_and_accepted_requests_finish(url: str) -> None:
    # 2 replicas x (4 decoding + 2 queued) + 4 in Ray's queue = 16 admitted at most; 40 arrive together
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda _: _chat(url, max_tokens=64), range(40)))
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503} and codes.count(503) > 0 and codes.count(200) >= 12, codes
    assert all("retry-after" in r.headers for r in answers if r.status_code == 503)
    assert all(r.json()["choices"][0]["finish_reason"] in ("stop", "length") for r in answers if r.status_code == 200)


def _stream(url: str) -> str:
    """One streamed answer: "done", "error" (an error event or a 5xx) or "cut" (the connection closed)."""
    body = {"messages": ASK, "stream": True, "max_tokens": 128, "early_stop": False}
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
            if r.status_code >= 500:
                return "error"
            r.raise_for_status()
            last = ""
            for line in r.iter_lines():
                if line.startswith("data: {") and '"error"' in line:
                    return "error"
                last = line or last
            return "done" if last == "data: [DONE]" else "cut"
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
        return "cut"


def test_killing_a_replica_mid_stream_fails_its_requests_cleanly_and_ray_restarts_it(url: str) -> None:
    pid = int(_chat(url).headers["x-llada-replica"].split("pid ")[1].rstrip(")"))
    with ThreadPoolExecutor(16) as pool:
        streams = [pool.submit(_stream, url) for _ in range(16)]
        time.sleep(1.0)  # every client is streaming
        os.kill(pid, signal.SIGKILL)
        t = time.monotonic()
        outcomes = [f.result(timeout=90) for f in streams]  # none hangs past its own timeout
    assert time.monotonic() - t < 90
    assert outcomes.count("done") >= 1 and set(outcomes) <= {"done", "error", "cut"}, outcomes
    _wait_running(2)
    answers = [_chat(url) for _ in range(8)]
    assert all(r.status_code == 200 for r in answers)
    assert all(int(r.headers["x-llada-replica"].split("pid ")[1].rstrip(")")) != pid for r in answers)


def test_a_redeploy_with_new_options_drops_no_accepted_request(url: str) -> None:
    from llada_server.ray_serve import build_app

    with ThreadPoolExecutor(4) as pool:
        running = [pool.submit(_chat, url, max_tokens=32) for _ in range(8)]
        time.sleep(0.5)
        serve.run(build_app({**ARGS, "options": {"max_tokens": 16}}), name="llada", route_prefix="/")
        answers = [f.result(timeout=120) for f in running]
    assert all(r.status_code in (200, 503) for r in answers) and any(r.status_code == 200 for r in answers)
    assert all(r.json()["choices"][0]["message"]["content"] for r in answers if r.status_code == 200)
    _wait_running(2)
    r = _chat(url)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 16
