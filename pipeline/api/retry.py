"""When a failed request is sent again, and after how long.

429, 5xx, 408 and 425, timeouts and dropped connections are retried with exponential backoff and
jitter, honouring `Retry-After` (up to MAX_RETRY_AFTER_S); an authentication error (401/403) stops at
once; any other status is a bad request, not retried.
"""
from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any

from pipeline.api.endpoint import KEY_VAR, AuthError
from pipeline.errors import PipelineError
from pipeline.settings import config_path

RETRY_STATUS = (408, 425, 429, 500, 502, 503, 504, 529)
MAX_RETRY_AFTER_S = 300.0


class ApiError(PipelineError):
    """A request that finally failed (after retries where retrying made sense)."""

    def __init__(self, message: str, kind: str, status: int | None = None, attempts: int = 1):
        super().__init__(message)
        self.kind = kind  # rate_limited | server_error | timeout | connection | bad_request
        self.status = status
        self.attempts = attempts


class Retryable(PipelineError):
    """A transient failure: the request may be sent again (a signal inside the client, never raised to a caller)."""

    def __init__(self, kind: str, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.kind, self.message, self.status, self.retry_after = kind, message, status, retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before sending a failed request again."""

    max_retries: int = 6
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0

    def delay(self, exc: Retryable, attempt: int) -> float:
        """Seconds to wait before attempt + 1; ApiError when the request is given up."""
        if attempt > self.max_retries:
            raise ApiError(f"{exc.message} (gave up after {attempt} attempts)", exc.kind, exc.status, attempt)
        delay = exc.retry_after if exc.retry_after is not None else self.backoff(attempt)
        if delay > MAX_RETRY_AFTER_S:
            raise ApiError(f"{exc.message}; the server asks to wait {delay:.0f} s: try again later",
                           exc.kind, exc.status, attempt)
        return delay

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: half fixed, half random, capped."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def classify(status: int, headers: Any, detail: str, where: str, key_var: str = KEY_VAR) -> Exception:
    """The error for an HTTP status from the server at `where`: AuthError, Retryable or ApiError."""
    if status in (401, 403):
        return AuthError(
            f"{where} refused the request as unauthorised (HTTP {status}). Set {key_var} (environment or "
            f".env) to a valid key for this server, or check --server-url / [api] server_url in "
            f"{config_path()}.")
    if status in RETRY_STATUS:
        kind = "rate_limited" if status == 429 else ("timeout" if status == 408 else "server_error")
        return Retryable(kind, f"HTTP {status} from {where}: {detail}", status, retry_after(headers))
    return ApiError(f"HTTP {status} from {where}: {detail}", "bad_request", status)


def retry_after(headers: Any) -> float | None:
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
