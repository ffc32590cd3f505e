"""``llada serve``: the OpenAI-compatible HTTP server (``llada_server``; needs ``llada-sdk[serve]``)."""

from __future__ import annotations

import math
from typing import Any

import click

from llada_cli.common import load_model, model_options
from llada_cli.genopts import generation_options, resolve_model, resolve_options
from llada_server.settings import ServerSettings


@click.command(short_help="Serve a model over the OpenAI HTTP API (chat, completions, infill).")
@click.argument("model_arg", metavar="[MODEL]", required=False)
@model_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one).")
@click.option(
    "--api-key",
    envvar="LLADA_API_KEY",
    show_envvar=True,
    default=None,
    help="Require `Authorization: Bearer KEY` on every /v1 route.",
)
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info")
@click.option(
    "--replicas",
    type=click.IntRange(1),
    default=None,
    help="Serve N replicas on a local Ray cluster (Ray Serve; needs llada-sdk[ray]). [default: one process, no Ray]",
)
@generation_options(model=ServerSettings, exclude=("api_key",), pairs=False)
@generation_options()
@click.pass_context
def serve(
    ctx: click.Context,
    model_arg: str | None,
    model: str | None,
    device: str | None,
    dtype: str,
    host: str,
    port: int,
    api_key: str | None,
    log_level: str,
    replicas: int | None,
) -> None:
    """Serve MODEL (default: -m / LLADA_MODEL / the bundled model) with the OpenAI HTTP API on
    HOST:PORT: /v1/chat/completions (tools, json_schema answered schema-exactly), /v1/completions
    (`suffix` is bidirectional completion; [MASK] spans in the prompt are infilled), /v1/infill,
    /v1/models, /health, /ready and /metrics (Prometheus). Concurrent requests share each denoising
    step's forward pass. The generation flags set the defaults of every request; a request's own
    fields (max_tokens, temperature, steps, block_length, ...) override them.

    \b
    Examples:
      llada serve
      llada serve ./LLaDA-8B-Instruct --device cuda --max-tokens 128 --block-length 32
      llada serve ./llada-kb-onnx --port 8080 --api-key secret
    """
    from llada_sdk._deps import require

    for module in ("fastapi", "uvicorn", "sse_starlette", "prometheus_client"):
        require(module, "serve")
    import uvicorn

    from llada_server.app import create_app

    if model_arg is not None and model is not None:
        raise click.UsageError("give the model once: as MODEL or as -m/--model", ctx)
    settings = resolve_model(ctx, ServerSettings).model_copy(update={"api_key": api_key})
    options = resolve_options(ctx)
    if replicas is not None:
        _serve_on_ray(ctx, model_arg or model, device, dtype, host, port, replicas, settings, options)
        return
    llm = load_model(model_arg or model, device, dtype)
    llm.options = options
    app = create_app(llm, settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.drain_s) + 1,  # after the streams' own grace period
    )
    state = app.state.llada

    class Draining(uvicorn.Server):
        """Marks the app as draining (``/ready`` answers 503) on the first signal, then shuts down."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            state.draining = True
            super().handle_exit(sig, frame)

    Draining(config).run()


def _serve_on_ray(
    ctx: click.Context,
    model: str | None,
    device: str | None,
    dtype: str,
    host: str,
    port: int,
    replicas: int,
    settings: ServerSettings,
    options: Any,
) -> None:
    """``--replicas N``: a local Ray cluster, Serve's proxy on HOST:PORT, N replicas of the app."""
    from llada_sdk._deps import require

    ray = require("ray", "ray")
    serve = require("ray.serve", "ray")
    from llada_cli.common import chosen_backend
    from llada_server.ray_serve import build_app

    backend, backend_options = chosen_backend(ctx, model)
    threads = backend_options.get("threads")
    gpu = device is not None and device.startswith("cuda")
    args = {
        "model": model,
        "backend": backend,
        "device": device,
        "dtype": None if dtype == "auto" else dtype,
        "threads": threads,
        "num_replicas": replicas,
        "num_cpus": float(threads or 1),
        "num_gpus": 1.0 if gpu else 0.0,
        "server": settings.model_dump(),
        "options": options.model_dump(exclude_defaults=True),
    }
    ray.init(include_dashboard=False)
    serve.start(http_options={"host": host, "port": port})
    click.echo(f"llada serve: {replicas} replicas on Ray, http://{host}:{port}/v1 (Ctrl-C stops)", err=True)
    try:
        serve.run(build_app(args), name="llada", route_prefix="/", blocking=True)
    finally:
        serve.shutdown()
        ray.shutdown()
