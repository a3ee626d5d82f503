"""The one Mistral client: a chat call with pacing and retries, and what a request is estimated to cost.

Built on the official SDK (`mistralai.client.Mistral`, `chat.complete_async`, JSON mode). The SDK's
own retries are off; pipeline.api.retry decides what is retried and when, and an authentication
error stops at once. Where requests go and the key they carry: pipeline.api.endpoint (re-exported here).
"""
from __future__ import annotations

from typing import Any

from pipeline.api.chat import ChatClient, PacedChat, Reply
from pipeline.api.endpoint import (
    KEY_VAR,
    MISTRAL_URL,
    AuthError,
    ClientConfigError,
    Endpoint,
    api_key,
    check_key,
    check_server_url,
    read_dotenv,
    resolve_endpoint,
)
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import MAX_RETRY_AFTER_S, RETRY_STATUS, ApiError, Retryable, classify

__all__ = [
    "KEY_VAR", "MAX_RETRY_AFTER_S", "MISTRAL_URL", "PRICES_PER_MTOK", "RETRY_STATUS", "ApiError", "AuthError",
    "ChatClient", "ClientConfigError", "Endpoint", "MistralChat", "Reply", "api_key", "check_key", "check_server_url",
    "estimate_cost", "read_dotenv", "resolve_endpoint",
]

# USD per million tokens (input, output): an ESTIMATE from public price lists (mid-2026), for
# progress and --dry-run figures only. Check https://mistral.ai/pricing for what you will be billed.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "ministral-3b-latest": (0.10, 0.10),
    "ministral-8b-latest": (0.15, 0.15),
    "ministral-14b-latest": (0.20, 0.20),
    "mistral-small-latest": (0.10, 0.30),
    "mistral-medium-latest": (0.40, 2.00),
    "mistral-large-latest": (0.50, 1.50),
    "magistral-small-latest": (0.50, 1.50),
    "magistral-medium-latest": (2.00, 5.00),
}


def estimate_cost(model: str, tokens_in: int | None, tokens_out: int | None,
                  backend: str = "mistral") -> float | None:
    """Estimated USD for a request: None when the model's price is not in the table, except on a
    self-hosted OpenAI-compatible server (backend "openai") or in this process (backend "local"), where an
    unknown model costs 0."""
    price = PRICES_PER_MTOK.get(model)
    if tokens_in is None or tokens_out is None:
        return None
    if price is None:
        return 0.0 if backend in ("openai", "local") else None
    return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000


class MistralChat(PacedChat):
    """Chat completions against one endpoint, paced by a RateLimiter and retried on transient failures."""

    def __init__(
        self,
        endpoint: Endpoint,
        limiter: RateLimiter,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 6,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        on_retry: Any = None,
    ) -> None:
        import httpx2
        from mistralai.client import Mistral
        from mistralai.client.utils.logger import NoOpLogger

        super().__init__(limiter, timeout_s=timeout_s, max_retries=max_retries, backoff_base_s=backoff_base_s,
                         backoff_cap_s=backoff_cap_s, on_retry=on_retry)
        _reuse_sdk_model_classes()
        self.endpoint, self.label = endpoint, endpoint.label
        self._http = httpx2.AsyncClient(
            follow_redirects=True, limits=httpx2.Limits(max_connections=256, max_keepalive_connections=64))
        # The SDK's debug logger prints request headers (the key) when MISTRAL_DEBUG is set: silence it.
        self._sdk = Mistral(api_key=endpoint.api_key or None, server_url=endpoint.server_url, async_client=self._http,
                            timeout_ms=int(timeout_s * 1000), debug_logger=NoOpLogger())

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def _send(self, messages: list[dict[str, str]], model: str, max_tokens: int, temperature: float,
                    json_mode: bool, attempt: int) -> Reply:
        import httpx2
        from mistralai.client import errors

        scrub = self.endpoint.scrub
        try:
            res = await self._sdk.chat.complete_async(
                model=model, messages=messages,  # type: ignore[arg-type]  # role/content dicts, as the SDK takes
                max_tokens=max_tokens, temperature=temperature,
                response_format={"type": "json_object"} if json_mode else None)
        except errors.ResponseValidationError as exc:
            # A 200 whose body is not a chat completion: keep the body as the (unparseable) answer.
            return Reply(exc.body or "", None, None, 0.0, attempt, envelope_error=scrub(str(exc))[:500])
        except errors.MistralError as exc:
            raise classify(exc.status_code, exc.headers, scrub((exc.body or "").strip())[:300],
                           self.endpoint.label) from None
        except httpx2.TimeoutException:
            raise Retryable("timeout", f"no answer within {self.timeout_s:g} s from {self.endpoint.label}") from None
        except (httpx2.TransportError, errors.NoResponseError) as exc:
            raise Retryable("connection", f"connection to {self.endpoint.label} failed: "
                            f"{scrub(str(exc)) or type(exc).__name__}") from None
        choice = res.choices[0] if res.choices else None
        content = choice.message.content if choice is not None and choice.message is not None else None
        usage = res.usage
        return Reply(_content_text(content), usage.prompt_tokens if usage else None,
                     usage.completion_tokens if usage else None, 0.0, attempt, res.model,
                     str(choice.finish_reason) if choice is not None else None)


def _reuse_sdk_model_classes() -> None:
    """Build each of the SDK's throwaway pydantic wrapper classes once instead of on every call.

    The SDK (3.x) wraps every value it (un)marshals in a new `create_model("Unmarshaller", body=(T, ...))`
    class: about nine per chat request at ~1 ms each, half the client's CPU per request. The class
    depends only on its name, field type and config, so it is cached on those; anything unhashable or
    unexpected goes to the SDK's own path unchanged.
    """
    from mistralai.client.utils import serializers

    original = getattr(serializers, "create_model", None)
    if original is None or getattr(original, "_nlistral_cached", False):
        return
    classes: dict[Any, Any] = {}

    def create_model(name: str, **fields: Any) -> Any:
        config = fields.get("__config__")
        body = fields.get("body")
        if set(fields) != {"body", "__config__"} or not isinstance(body, tuple):
            return original(name, **fields)
        try:
            key = (name, body, tuple(sorted(config.items())) if config else None)
            cls = classes.get(key)
        except TypeError:  # an unhashable type: build it the SDK's way
            return original(name, **fields)
        if cls is None:
            cls = classes[key] = original(name, **fields)
        return cls

    create_model._nlistral_cached = True  # type: ignore[attr-defined]
    setattr(serializers, "create_model", create_model)  # noqa: B010 - the SDK does not export it: patch by name


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(getattr(chunk, "text", "") or "" for chunk in content)
