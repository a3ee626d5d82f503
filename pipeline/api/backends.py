"""The one place a backend name becomes a client: "mistral" (mistralai SDK), "openai" (openai SDK) or "local"
(a model folder run in this process)."""
from __future__ import annotations

from collections.abc import Sequence

from pipeline.api.chat import ChatClient, RetryFn, Spread
from pipeline.api.endpoint import BACKENDS, ClientConfigError, Endpoint
from pipeline.api.ratelimit import RateLimiter


def open_chat(backend: str, endpoints: Sequence[Endpoint], limiter: RateLimiter, *, timeout_s: float,
              max_retries: int, on_retry: RetryFn | None = None, model: str = "", max_batch: int = 1) -> ChatClient:
    """A ChatClient for these endpoints (several: spread over them), all paced by one limiter; for "local", the
    model folder `model` decoding up to max_batch requests at once (no endpoints, no pacing)."""
    if backend == "local":
        from pipeline.api.local_client import LocalChat

        return LocalChat(model, max_batch=max_batch)
    if backend == "mistral":
        from pipeline.api.client import MistralChat as Client
    elif backend == "openai":
        from pipeline.api.openai_client import OpenAIChat as Client  # type: ignore[assignment]
    else:
        raise ClientConfigError(f"unknown backend {backend!r} (--backend / [api] backend): use one of "
                                f"{', '.join(BACKENDS)}.")
    clients = [Client(e, limiter, timeout_s=timeout_s, max_retries=max_retries, on_retry=on_retry)
               for e in endpoints]
    return clients[0] if len(clients) == 1 else Spread(clients)
