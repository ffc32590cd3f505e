"""``ServerSettings``: how a server admits and bounds requests; ``llada serve`` builds its flags from it.

Light on purpose (pydantic only): the CLI imports it to build ``llada serve --help`` without FastAPI.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServerSettings(BaseModel):
    """How a server admits and bounds requests (``llada serve`` flags)."""

    model_config = ConfigDict(extra="forbid")

    model_name: str | None = Field(
        None, description="The model id clients send and /v1/models lists (default: the model's name)."
    )
    api_key: str | None = Field(None, description="Bearer token every /v1 route requires (None: open).")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest request body; larger gets 413.")
    max_tokens_limit: int | None = Field(
        None, ge=1, description="Largest max_tokens a request may ask for (default: the model's context window)."
    )
    max_concurrent: int = Field(16, ge=1, le=1024, description="Requests decoded at once (batched together).")
    max_queue: int = Field(64, ge=0, description="Requests waiting beyond those; more get 503 + Retry-After.")
    max_n: int = Field(8, ge=1, le=128, description="Largest n (choices per request).")
    timeout_s: float = Field(300.0, gt=0, allow_inf_nan=False, description="Seconds a request may take.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS (none: CORS off).")
    drain_s: float = Field(
        30.0, ge=0, le=3600, allow_inf_nan=False, description="On SIGTERM: seconds open requests may take to finish."
    )
    replica_id: str | None = Field(
        None, description="This replica's name in a scaled-out deployment (a response header and a metrics label)."
    )
    gather_ms: float = Field(5.0, ge=0, le=1000, description="How long a batched step waits for stragglers.")
