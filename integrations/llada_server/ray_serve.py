"""Scale-out on Ray Serve: the same OpenAI-compatible app as replicas behind one endpoint.

Each replica is ``create_app(llm)`` with its own ``StepBatcher`` (batching happens inside a replica; Ray
routes requests between replicas, autoscales on ongoing requests, health-checks and restarts them). The
API does not change when it scales. Needs ``pip install 'llada-sdk[serve,ray]'``.

    serve run llada_server.ray_serve:build_app num_replicas=2 threads=1      # a local cluster
    serve deploy examples/ray_serve.yaml                                    # a running cluster
    llada serve --replicas 2                                                # the same, from the CLI

``build_app(args)`` is Ray's application builder (``args``: the fields of ``RayConfig``); ``app`` is the
default application (one replica of the bundled model). Which replica answered is in the
``X-LLaDA-Replica`` response header and the ``replica`` label of ``llada_requests_total``.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve import Application

from llada_server.settings import ServerSettings


class Autoscaling(BaseModel):
    """Ray Serve's ``autoscaling_config``: replicas follow the ongoing requests per replica."""

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: float = Field(8.0, gt=0, description="Ongoing requests per replica to aim for.")


class RayConfig(BaseModel):
    """A deployment of the server on Ray Serve (the ``args`` of ``build_app`` and of a ``serve deploy`` YAML)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="A checkpoint directory, an ONNX bundle, a Hub id; None: bundled.")
    backend: str = Field("auto", description="auto, torch, onnx or a plugin's name.")
    device: str | None = Field(None, description="cpu, cuda... (None: CUDA when the replica has a GPU).")
    dtype: str | None = None
    threads: int | None = Field(None, ge=1, description="Compute threads per replica (torch; onnxruntime for bundles).")
    num_replicas: int = Field(1, ge=1, description="Replicas (ignored with `autoscaling`).")
    autoscaling: Autoscaling | None = None
    num_cpus: float = Field(1.0, ge=0, description="CPUs Ray reserves per replica.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica (1: a GPU each).")
    max_queued_requests: int = Field(
        64,
        ge=-1,
        description="Requests Ray queues beyond the replicas' capacity (-1: no limit); more get 503 + Retry-After.",
    )
    health_check_period_s: float = Field(5.0, gt=0)
    server: ServerSettings = Field(default_factory=ServerSettings, description="Each replica's admission and limits.")
    options: dict[str, Any] = Field(default_factory=dict, description="Default GenerationOptions of every request.")

    def capacity(self) -> int:
        """What one replica takes at once: its decoding slots plus its own queue (Ray routes the rest)."""
        return self.server.max_concurrent + self.server.max_queue


@serve.ingress()
class LLaDADeployment:
    """One replica: loads the model, serves ``create_app`` on it, reports its health to Ray."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = RayConfig.model_validate(config)
        self.state: Any = None

    def __serve_build_asgi_app__(self) -> Any:
        from llada_sdk import LLaDA
        from llada_server.app import create_app

        cfg = self.config
        extra: dict[str, Any] = {}
        if cfg.threads is not None:
            if cfg.backend == "onnx" or _is_bundle(cfg.model):
                extra["threads"] = cfg.threads
            else:
                import torch

                torch.set_num_threads(cfg.threads)
        llm = LLaDA.from_pretrained(
            cfg.model, backend=cfg.backend, device=cfg.device, dtype=cfg.dtype, options=cfg.options or None, **extra
        )
        replica = serve.get_replica_context().replica_tag
        app = create_app(llm, cfg.server.model_copy(update={"replica_id": f"{replica} (pid {os.getpid()})"}))
        self.state = app.state.llada
        return app

    def check_health(self) -> None:
        """Ray's health check: the replica's readiness (an error marks it unhealthy and Ray replaces it)."""
        if self.state is None or self.state.draining or self.state.backend.batcher.closed:
            raise RuntimeError("the replica is not ready")


def _is_bundle(model: str | None) -> bool:
    if model is None:
        return False
    from pathlib import Path

    return (Path(model) / "llada_onnx.json").is_file()


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Ray Serve's application builder: ``args`` holds ``RayConfig`` fields (``serve run`` passes
    ``key=value`` pairs as strings; pydantic converts them)."""
    cfg = RayConfig.model_validate(args or {})
    options: dict[str, Any] = {
        "max_ongoing_requests": cfg.capacity(),
        "max_queued_requests": cfg.max_queued_requests,
        # Ray's own rejections (its queue full) look like a replica's: 503 with Retry-After
        "backpressure_config": {"status_code": 503, "retry_after_s": 1},
        "ray_actor_options": {"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus},
        "health_check_period_s": cfg.health_check_period_s,
        "graceful_shutdown_timeout_s": cfg.server.drain_s,
    }
    if cfg.autoscaling is not None:
        options["autoscaling_config"] = cfg.autoscaling.model_dump()
    else:
        options["num_replicas"] = cfg.num_replicas
    deployment = serve.deployment(name="llada")(LLaDADeployment)
    return deployment.options(**options).bind(cfg.model_dump())


app = build_app()
