"""Load on ``llada serve``: N concurrent HTTP clients vs one request at a time, through the same server.

    python benchmarks/serve_load.py [--model bundled|medium] [--clients 1 4 16] [--requests 48] [--threads 1]
                                    [--padding skipped|computed|both]

A mix of requests (streamed chat, infilling with fixed spans, forward completion) goes to an in-process
server on a loopback port, from N client threads at a time; N=1 is one request at a time. Printed side by
side: aggregate completion tokens/s and its ratio to N=1, batched forward passes (and requests per
forward), p50/p99 latency, p50 time to the first streamed chunk, and the slowest request (starvation).
Then the server's overhead per request: a one-block bundled answer through HTTP vs the same SDK call in
this process, from two clients: httpx (what a Python client adds is in its figure) and a bare socket
client (the server's part: socket, uvicorn, the app, the batcher). The server runs in a process of its
own, with ``--threads`` torch threads.

``--padding both`` runs every level twice, side by side: with the batched forwards skipping the work of
the padding that rows of different lengths get (``LLaDAModel.forward_unpadded``, what the server does)
and with it computed (the plain padded forward), on one server process each.

``medium`` is the 168M-parameter config of the other CPU benchmarks (random weights, seed 0) with the
bundled model's tokenizer, so it takes text; its answers are noise, its cost is real.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import torch
import uvicorn

from llada_sdk import LLaDA
from llada_sdk.loading import BUNDLED_DIR
from llada_server import create_app


def medium_model() -> LLaDA:
    from dataclasses import replace

    from llada_sdk.config import medium_config
    from llada_sdk.model import LLaDAModel
    from llada_sdk.training import save_checkpoint

    bundled = LLaDA.from_pretrained(device="cpu")
    cfg = replace(
        medium_config(),
        vocab_size=bundled.config.vocab_size,
        embedding_size=bundled.config.embedding_size,
        mask_token_id=bundled.config.mask_token_id,
        eos_token_id=bundled.config.eos_token_id,
    )
    torch.manual_seed(0)
    model = LLaDAModel(cfg).eval()
    folder = Path(tempfile.mkdtemp(prefix="llada-medium-"))
    save_checkpoint(model, folder)
    for f in BUNDLED_DIR.iterdir():
        if f.name.startswith("tokenizer") or f.name == "special_tokens_map.json":
            shutil.copyfile(f, folder / f.name)
    return LLaDA.from_pretrained(folder, device="cpu", dtype="float32")


@contextmanager
def serving(model: str, threads: int, padding: str = "skipped") -> Iterator[str]:
    """The server in a process of its own (as in deployment: clients never share its interpreter)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, __file__, "--serve-port", str(port), "--model", model, "--threads", str(threads)]
    cmd += ["--padding", padding]
    proc = subprocess.Popen(cmd)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(base + "/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(60)


def serve(port: int, model: str, threads: int, padding: str = "skipped") -> None:
    torch.set_num_threads(threads)
    llm = LLaDA.from_pretrained(device="cpu") if model == "bundled" else medium_model()
    if padding == "computed":  # the batcher then finds the plain forward under the unpadded name
        llm.backend.model.forward_unpadded = llm.backend.model.forward  # type: ignore[attr-defined]
    app = create_app(llm, max_concurrent=32, max_queue=256)
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).run()


def workload(n: int) -> list[tuple[str, dict[str, Any]]]:
    names = ["Zapur", "Kaitabu", "Lotrobar", "Mubrar", "Nome", "Ridesti"]
    out = []
    for i in range(n):
        who = names[i % len(names)]
        kind = ("chat", "infill", "complete")[i % 3]
        if kind == "chat":
            body = {"messages": [{"role": "user", "content": f"Where does {who} live?"}], "stream": True}
            out.append(("/v1/chat/completions", {**body, "stream_options": {"include_usage": True}}))
        elif kind == "infill":
            out.append(("/v1/infill", {"text": f"{who} lives in [MASK:2] and works as a [MASK:2]."}))
        else:
            out.append(("/v1/completions", {"prompt": f"{who} lives in", "early_stop": False}))
    return out


def one(client: httpx.Client, route: str, body: dict[str, Any]) -> tuple[float, float | None, int]:
    """(latency, time to first chunk, completion tokens) of one request."""
    t = time.perf_counter()
    if body.get("stream"):
        first, tokens = None, 0
        with client.stream("POST", route, json=body) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                if first is None and any(c["delta"].get("content") for c in chunk["choices"]):
                    first = time.perf_counter() - t
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
        return time.perf_counter() - t, first, tokens
    r = client.post(route, json=body)
    r.raise_for_status()
    return time.perf_counter() - t, None, int(r.json()["usage"]["completion_tokens"])


class BareClient:
    """HTTP/1.1 over one kept-alive socket, request bytes built once: a client whose own cost is close to
    nothing, so that its round trip is the server's (socket, uvicorn, the app). httpx and the ``openai``
    client add their own Python on top; the benchmark prints both."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def request(self, method: str, route: str, body: dict[str, Any] | None = None) -> bytes:
        return self.send(self.prepare(method, route, body))

    @staticmethod
    def prepare(method: str, route: str, body: dict[str, Any] | None = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
        return (head + ("Content-Type: application/json\r\n" if data else "") + "\r\n").encode() + data

    def send(self, raw: bytes) -> bytes:
        self.sock.sendall(raw)
        status = self.file.readline().split(b" ", 2)
        length = 0
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = self.file.read(length)
        if status[1] != b"200":
            raise RuntimeError(f"{status[1].decode()}: {body[:200]!r}")
        return body

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def metric(base: str, name: str) -> float:
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def run_level(base: str, clients: int, jobs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    f0, r0 = metric(base, "llada_forward_passes_total"), metric(base, "llada_batch_requests_sum")
    real, pad = (metric(base, f'llada_forward_positions_total{{kind="{k}"}}') for k in ("real", "padding"))
    with httpx.Client(base_url=base, timeout=600) as client, ThreadPoolExecutor(clients) as pool:
        t = time.perf_counter()
        results = list(pool.map(lambda job: one(client, *job), jobs))
        wall = time.perf_counter() - t
    lat = sorted(r[0] for r in results)
    firsts = [r[1] for r in results if r[1] is not None]
    return {
        "clients": clients,
        "tokens_s": sum(r[2] for r in results) / wall,
        "forwards": metric(base, "llada_forward_passes_total") - f0,
        "shared": metric(base, "llada_batch_requests_sum") - r0,
        "padding": (metric(base, 'llada_forward_positions_total{kind="padding"}') - pad)
        / max(1.0, metric(base, 'llada_forward_positions_total{kind="real"}') - real),
        "p50": statistics.median(lat),
        "p99": lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))],
        "ttfc": statistics.median(firsts) if firsts else float("nan"),
        "max": lat[-1],
        "wall": wall,
    }


def overhead(llm: LLaDA, base: str, repeat: int) -> dict[str, Any]:
    """A one-block answer: the seconds of ``repeat`` SDK calls and of the same request through HTTP, from
    httpx (what a Python client sees) and from ``BareClient`` (the server's part alone). The three run back
    to back in a rotating order, so a slow stretch of the machine (the SDK call alone moves by 25 % between
    runs here) falls on every side. Also where the HTTP time went: the mean seconds inside the app (the
    server's latency histogram, from the ASGI call to the last byte) and the median of a ``/health`` round
    trip from each client (socket, uvicorn and a trivial route)."""
    msgs = [{"role": "user", "content": "Where does Zapur live?"}]
    opts: dict[str, Any] = {"max_tokens": 8, "block_length": 8}
    route = "/v1/chat/completions"
    times: dict[str, list[float]] = {"sdk": [], "httpx": [], "bare": []}
    bare = BareClient(base)
    chat, health = BareClient.prepare("POST", route, {"messages": msgs, **opts}), BareClient.prepare("GET", "/health")
    with httpx.Client(base_url=base, timeout=60) as client:
        calls: dict[str, Callable[[], Any]] = {
            "sdk": lambda: llm.chat(msgs, **opts),
            "httpx": lambda: client.post(route, json={"messages": msgs, **opts}).raise_for_status(),
            "bare": lambda: bare.send(chat),
        }

        def timed(call: Callable[[], Any]) -> float:
            t = time.perf_counter()
            call()
            return time.perf_counter() - t

        for _ in range(3):  # warm every path
            for call in calls.values():
                call()
        label = '{route="/v1/chat/completions"}'
        in_app = [metric(base, f"llada_request_latency_seconds_{k}{label}") for k in ("sum", "count")]
        order = list(calls)
        for i in range(repeat):
            for name in order[i % 3 :] + order[: i % 3]:
                times[name].append(timed(calls[name]))
        app_s = metric(base, f"llada_request_latency_seconds_sum{label}") - in_app[0]
        app_n = metric(base, f"llada_request_latency_seconds_count{label}") - in_app[1]
        health_httpx = statistics.median(timed(lambda: client.get("/health").raise_for_status()) for _ in range(repeat))
        health_bare = statistics.median(timed(lambda: bare.send(health)) for _ in range(repeat))
    bare.close()
    return {**times, "app_mean": app_s / max(app_n, 1), "health_httpx": health_httpx, "health_bare": health_bare}


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["bundled", "medium"], default="bundled")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--overhead-repeat", type=int, default=60)
    parser.add_argument("--padding", choices=["skipped", "computed", "both"], default="skipped")
    parser.add_argument("--serve-port", type=int, default=None, help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args(argv)
    if args.serve_port is not None:
        serve(args.serve_port, args.model, args.threads, args.padding)
        return []
    torch.set_num_threads(args.threads)
    jobs = workload(args.requests)
    rows: list[dict[str, Any]] = []
    costs: dict[str, Any] = {}
    for padding in ("skipped", "computed") if args.padding == "both" else (args.padding,):
        with serving(args.model, args.threads, padding) as base:
            run_level(base, 1, jobs[:3])  # warm-up
            rows += [{**run_level(base, c, jobs), "padded": padding} for c in args.clients]
            if args.model == "bundled" and padding == "skipped":
                costs = overhead(LLaDA.from_pretrained(device="cpu"), base, args.overhead_repeat)
    out(
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s), model {args.model}, {args.requests} requests (chat streamed, infill, completion)"
    )
    out(
        "| padding | clients | tokens/s | vs 1 client | forward passes | requests per forward | padding per real position "
        "| p50 s | p99 s | p99/p50 | first chunk p50 s | slowest s |"
    )
    out("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        one_rate = next(x["tokens_s"] for x in rows if x["padded"] == r["padded"])  # its server's first level
        out(
            f"| {r['padded']} | {r['clients']} | {r['tokens_s']:.1f} | {r['tokens_s'] / one_rate:.2f}x | "
            f"{r['forwards']:.0f} | {r['shared'] / max(r['forwards'], 1):.2f} | {r['padding']:.2f} | {r['p50']:.3f} | "
            f"{r['p99']:.3f} | {r['p99'] / r['p50']:.2f} | {r['ttfc']:.3f} | {r['max']:.3f} |"
        )
    if costs:
        # three estimates per client, as the machine's noise is skewed: the median of the paired
        # differences, the difference of the medians, and of the fastest calls (each path's floor, as
        # timeit takes it)
        sdk = costs["sdk"]
        base_s = statistics.median(sdk)
        out(
            f"server overhead, one-block answer ({len(sdk)} rounds): SDK median {base_s * 1000:.1f} ms (min {min(sdk) * 1000:.1f})"
        )
        for client in ("bare", "httpx"):
            http = costs[client]
            estimates = {
                "median of paired differences": statistics.median(h - s for h, s in zip(http, sdk)),
                "difference of medians": statistics.median(http) - base_s,
                "difference of minimums": min(http) - min(sdk),
            }
            out(
                f"  through HTTP from {client}: median {statistics.median(http) * 1000:.1f} ms (min "
                f"{min(http) * 1000:.1f}); "
                + "; ".join(f"{k} {v * 1000:.2f} ms = {v / base_s * 100:.1f} %" for k, v in estimates.items())
            )
        inside = costs["app_mean"] - statistics.mean(sdk)
        out(
            f"where it goes: inside the app (ASGI call to last byte, mean) {costs['app_mean'] * 1000:.1f} ms, "
            f"{inside * 1000:.2f} ms over the SDK call's mean = {inside / base_s * 100:.1f} %; a /health round "
            f"trip median {costs['health_bare'] * 1000:.2f} ms from bare, {costs['health_httpx'] * 1000:.2f} ms from httpx"
        )
    return rows


if __name__ == "__main__":
    main()
