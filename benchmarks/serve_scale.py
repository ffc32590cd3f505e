"""Scale-out on Ray Serve: 1 vs 2 replicas of the bundled model (one thread each) at N concurrent clients.

    python benchmarks/serve_scale.py [--clients 16] [--requests 160]

Each configuration runs on a fresh local Ray (``num_cpus=2``) behind Serve's HTTP proxy on a loopback
port, with the request mix of ``serve_load.py`` (streamed chat, infilling, completion). Printed side by
side: aggregate completion tokens/s and its ratio to one replica, p50/p99 latency, the slowest request,
and how the requests spread over the replicas (the ``X-LLaDA-Replica`` header). Then where the two cores
went during the measured requests: CPU seconds per process kind (``/proc``, Linux only) -- the replicas,
Serve's proxy, the rest of Ray (controller, raylet, GCS, agents) and this process (the clients).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import ray
from ray import serve
from serve_load import workload

from llada_server.ray_serve import build_app


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one(client: httpx.Client, route: str, body: dict[str, Any]) -> tuple[float, int, str]:
    t = time.perf_counter()
    body = {**body, "stream": False}
    body.pop("stream_options", None)
    r = client.post(route, json=body)
    r.raise_for_status()
    return time.perf_counter() - t, int(r.json()["usage"]["completion_tokens"]), r.headers["x-llada-replica"]


_KINDS = (("ServeReplica", "replicas"), ("ProxyActor", "proxy"))


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds so far of every process on the machine, summed by kind (empty where /proc is not)."""
    tick, me, out = os.sysconf("SC_CLK_TCK"), os.getpid(), dict[str, float]()
    for pid in filter(str.isdigit, os.listdir("/proc") if os.path.isdir("/proc") else []):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        if int(pid) == me:
            kind = "clients"
        elif "ray" not in cmd:
            kind = "other"
        else:
            kind = next((k for mark, k in _KINDS if mark in cmd), "ray")
        out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


def measure(replicas: int, clients: int, jobs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    port = _port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        args = {"num_replicas": replicas, "threads": 1, "num_cpus": 1, "server": {"max_concurrent": 16}}
        serve.run(build_app(args), name="llada", route_prefix="/")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            for job in jobs[: 2 * replicas]:  # warm every replica
                _one(client, *job)
            with ThreadPoolExecutor(clients) as pool:
                cpu0, t = cpu_by_kind(), time.perf_counter()
                results = list(pool.map(lambda job: _one(client, *job), jobs))
                wall, cpu1 = time.perf_counter() - t, cpu_by_kind()
    finally:
        serve.shutdown()
        ray.shutdown()
    lat = sorted(r[0] for r in results)
    return {
        "replicas": replicas,
        "tokens_s": sum(r[1] for r in results) / wall,
        "p50": statistics.median(lat),
        "p99": lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))],
        "max": lat[-1],
        "spread": sorted(Counter(r[2] for r in results).values(), reverse=True),
        "cpu": {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1},
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=160)
    args = parser.parse_args()
    jobs = workload(args.requests)
    rows = [measure(r, args.clients, jobs) for r in (1, 2)]
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, ray {ray.__version__}, "
        f"{args.clients} clients, {args.requests} requests, one thread per replica"
    )
    print("| replicas | tokens/s | vs 1 replica | p50 s | p99 s | slowest s | requests per replica |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['replicas']} | {r['tokens_s']:.1f} | {r['tokens_s'] / rows[0]['tokens_s']:.2f}x | {r['p50']:.3f} | "
            f"{r['p99']:.3f} | {r['max']:.3f} | {r['spread']} |"
        )
    kinds = ("replicas", "proxy", "ray", "clients", "other")
    print()
    print("CPU seconds during the measured requests (both cores: 2 x wall), by process kind:")
    print(f"| replicas | wall s | 2 x wall | {' | '.join(kinds)} | replicas' share |")
    print("|---|---|---|" + "---|" * len(kinds) + "---|")
    for r in rows:
        cpu = r["cpu"]
        print(
            f"| {r['replicas']} | {r['wall']:.1f} | {2 * r['wall']:.1f} | "
            + " | ".join(f"{cpu.get(k, 0.0):.1f}" for k in kinds)
            + f" | {cpu.get('replicas', 0.0) / max(sum(cpu.values()), 1e-9) * 100:.0f} % |"
        )


if __name__ == "__main__":
    main()
