"""The one Mistral client: endpoint and key resolution, and a chat call with pacing and retries.

Built on the official SDK (`mistralai.client.Mistral`, `chat.complete_async`, JSON mode). The SDK's
own retries are off; this module retries 429, 5xx, timeouts and dropped connections with exponential
backoff and jitter, honouring `Retry-After`, and stops at once on an authentication error.

The API key comes from MISTRAL_API_KEY (environment, else a `.env` file in the working directory).
It is handed to the SDK and nowhere else: not stored, not logged, and scrubbed from error messages.
"""
from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import PipelineError
from pipeline.ratelimit import RateLimiter
from pipeline.settings import Settings, config_path

log = logging.getLogger("nlistral.client")

KEY_VAR = "MISTRAL_API_KEY"
MISTRAL_URL = "https://api.mistral.ai"
RETRY_STATUS = (408, 425, 429, 500, 502, 503, 504, 529)
MAX_RETRY_AFTER_S = 300.0

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


class ClientConfigError(PipelineError):
    """No usable endpoint or key is configured (the message says what to set)."""


class AuthError(ClientConfigError):
    """The server refused the API key (401/403): nothing else will succeed, so the run stops."""


class ApiError(PipelineError):
    """A request that finally failed (after retries where retrying made sense)."""

    def __init__(self, message: str, kind: str, status: int | None = None, attempts: int = 1):
        super().__init__(message)
        self.kind = kind  # rate_limited | server_error | timeout | connection | bad_request
        self.status = status
        self.attempts = attempts


@dataclass(frozen=True)
class Endpoint:
    """Where requests go and the key they carry (never printed: repr hides it)."""

    server_url: str | None
    api_key: str | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """The server as scheme://host[:port], safe to store and show (no credentials, no query)."""
        parts = urlsplit(self.server_url or MISTRAL_URL)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class Reply:
    """One model answer with what it cost."""

    text: str
    tokens_in: int | None
    tokens_out: int | None
    latency_ms: float
    attempts: int
    response_model: str | None = None
    finish_reason: str | None = None
    envelope_error: str | None = None  # the HTTP body was not a chat completion; text is that body


def read_dotenv(path: Path, name: str) -> str | None:
    """The value of `name` in a .env file (KEY=VALUE lines, optional `export`, quotes and `# comments`), else None."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        text = line.strip()
        if text.startswith("export "):
            text = text[len("export "):].strip()
        key, sep, value = text.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            end = value.find(value[0], 1) if value[:1] in ("'", '"') else -1
            # A quoted value ends at its closing quote; an unquoted one at a " #" comment.
            value = value[1:end] if end > 0 else re.split(r"\s#", value, maxsplit=1)[0].strip()
            return value or None
    return None


def api_key(env_file: Path | None = None) -> str | None:
    """MISTRAL_API_KEY from the environment, else from ./.env (or env_file); ClientConfigError when the
    value cannot be a key (a character outside printable ASCII, a space)."""
    value, where = os.environ.get(KEY_VAR, "").strip(), "the environment"
    if not value:
        env_file = env_file or Path(".env")
        value, where = read_dotenv(env_file, KEY_VAR) or "", str(env_file)
    if not value:
        return None
    check_key(value, where)
    return value


def check_key(key: str, where: str) -> None:
    """ClientConfigError naming the first character that cannot be in an API key (never the key itself).

    HTTP headers carry ASCII only, so such a key would fail deep inside the HTTP library; a key pasted
    with a typographic quote or a non-breaking space is the usual cause.
    """
    for i, ch in enumerate(key):
        if "!" <= ch <= "~":
            continue
        name = unicodedata.name(ch, "a control character")
        cause = ("a typographic quote" if ch in "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u00ab\u00bb"
                 else "a space" if ch.isspace() else "a character that is not plain ASCII")
        raise ClientConfigError(
            f"{KEY_VAR} (from {where}) holds {cause}, U+{ord(ch):04X} ({name}), at character {i + 1} of "
            f"{len(key)}. An API key is plain ASCII letters, digits and punctuation, with no spaces; it was "
            f"probably pasted with extra characters. Set {KEY_VAR} again to the key alone (it is not shown here).")


def resolve_endpoint(settings: Settings, server_url: str | None = None) -> Endpoint:
    """The endpoint from --server-url, else [api] server_url, else the Mistral API (which needs a key)."""
    url = server_url or settings.api.server_url
    key = api_key()
    if url is None and not key:
        empty = " (it is set but empty)" if KEY_VAR in os.environ else ""
        raise ClientConfigError(
            f"No API key: set {KEY_VAR}{empty} (environment or a .env file in this directory), or point "
            f"--server-url / [api] server_url in {settings.path or config_path()} at a Mistral-compatible server."
        )
    if url is not None:
        check_server_url(url)
    return Endpoint(url, key)


def check_server_url(url: str) -> None:
    """ClientConfigError unless url is http(s)://HOST[:PORT][/PATH]."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:  # a bad port or a broken [IPv6] host
        ok = False
    if not ok or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ClientConfigError(f"server URL {url!r} is not usable: it must be http:// or https://, a host, an "
                                "optional port and path, with no spaces, e.g. http://localhost:8000")


def estimate_cost(model: str, tokens_in: int | None, tokens_out: int | None) -> float | None:
    """Estimated USD for a request (None when the model's price is not in the table)."""
    price = PRICES_PER_MTOK.get(model)
    if price is None or tokens_in is None or tokens_out is None:
        return None
    return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000


class MistralChat:
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

        _reuse_sdk_model_classes()
        self.endpoint, self.limiter = endpoint, limiter
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_base_s, self.backoff_cap_s = backoff_base_s, backoff_cap_s
        self.on_retry = on_retry  # called with (kind, delay_s) before each retry
        self._http = httpx2.AsyncClient(
            follow_redirects=True, limits=httpx2.Limits(max_connections=256, max_keepalive_connections=64))
        # The SDK's debug logger prints request headers (the key) when MISTRAL_DEBUG is set: silence it.
        self._sdk = Mistral(api_key=endpoint.api_key or None, server_url=endpoint.server_url, async_client=self._http,
                            timeout_ms=int(timeout_s * 1000), debug_logger=NoOpLogger())

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def __aenter__(self) -> MistralChat:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def complete(self, messages: list[dict[str, str]], *, model: str, max_tokens: int, temperature: float,
                       json_mode: bool = True, tokens_estimate: int = 0) -> Reply:
        """One answer; retries transient failures; raises AuthError or ApiError."""
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire(tokens_estimate)
            started = time.monotonic()
            try:
                reply = await self._send(messages, model, max_tokens, temperature, json_mode, attempt)
            except _Retryable as exc:
                if attempt > self.max_retries:
                    raise ApiError(f"{exc.message} (gave up after {attempt} attempts)", exc.kind, exc.status,
                                   attempt) from None
                delay = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
                if delay > MAX_RETRY_AFTER_S:
                    raise ApiError(f"{exc.message}; the server asks to wait {delay:.0f} s: try again later",
                                   exc.kind, exc.status, attempt) from None
                log.info("retrying after %s (attempt %d, waiting %.2f s)", exc.kind, attempt, delay)
                if self.on_retry:
                    self.on_retry(exc.kind, delay)
                await asyncio.sleep(delay)
                continue
            latency_ms = (time.monotonic() - started) * 1000
            if reply.tokens_in is not None and reply.tokens_out is not None:
                self.limiter.settle(tokens_estimate, reply.tokens_in + reply.tokens_out)
            return Reply(reply.text, reply.tokens_in, reply.tokens_out, latency_ms, attempt, reply.response_model,
                         reply.finish_reason, reply.envelope_error)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: half fixed, half random, capped."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _send(self, messages: list[dict[str, str]], model: str, max_tokens: int, temperature: float,
                    json_mode: bool, attempt: int) -> Reply:
        import httpx2
        from mistralai.client import errors

        try:
            res = await self._sdk.chat.complete_async(
                model=model, messages=messages, max_tokens=max_tokens, temperature=temperature,
                response_format={"type": "json_object"} if json_mode else None)
        except errors.ResponseValidationError as exc:
            # A 200 whose body is not a chat completion: keep the body as the (unparseable) answer.
            return Reply(exc.body or "", None, None, 0.0, attempt, envelope_error=self._scrub(str(exc))[:500])
        except errors.MistralError as exc:
            raise self._classify(exc.status_code, exc.headers, exc.body) from None
        except httpx2.TimeoutException:
            raise _Retryable("timeout", f"no answer within {self.timeout_s:g} s from {self.endpoint.label}") from None
        except (httpx2.TransportError, errors.NoResponseError) as exc:
            raise _Retryable("connection", f"connection to {self.endpoint.label} failed: "
                             f"{self._scrub(str(exc)) or type(exc).__name__}") from None
        choice = res.choices[0] if res.choices else None
        content = choice.message.content if choice is not None and choice.message is not None else None
        usage = res.usage
        return Reply(_content_text(content), usage.prompt_tokens if usage else None,
                     usage.completion_tokens if usage else None, 0.0, attempt, res.model,
                     str(choice.finish_reason) if choice is not None else None)

    def _classify(self, status: int, headers: Any, body: str | None) -> Exception:
        detail = self._scrub((body or "").strip())[:300]
        where = self.endpoint.label
        if status in (401, 403):
            return AuthError(
                f"{where} refused the request as unauthorised (HTTP {status}). Set {KEY_VAR} (environment or "
                f".env) to a valid key for this server, or check --server-url / [api] server_url in "
                f"{config_path()}.")
        if status in RETRY_STATUS:
            kind = "rate_limited" if status == 429 else ("timeout" if status == 408 else "server_error")
            return _Retryable(kind, f"HTTP {status} from {where}: {detail}", status, _retry_after(headers))
        return ApiError(f"HTTP {status} from {where}: {detail}", "bad_request", status)

    def _scrub(self, text: str) -> str:
        key = self.endpoint.api_key
        return text.replace(key, "[API key]") if key else text


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
    serializers.create_model = create_model


class _Retryable(Exception):
    def __init__(self, kind: str, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.kind, self.message, self.status, self.retry_after = kind, message, status, retry_after


def _retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), else None."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(getattr(chunk, "text", "") or "" for chunk in content)
