"""The OpenAI-compatible backend: chat completions through the official `openai` SDK (`AsyncOpenAI`,
`chat.completions.create`) to vLLM, SGLang, llama.cpp's server, Ollama or any such server.

The request carries only fields vLLM's ChatCompletionRequest accepts: model, messages, max_tokens,
temperature and response_format (JSON mode). The SDK's own retries are off (max_retries=0);
pipeline.api.chat's loop paces and retries as for the Mistral backend. The key is OPENAI_API_KEY when
set; a local server needs none, and the SDK is then given a placeholder, never shown anywhere.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pipeline.api.chat import Messages, PacedChat, Reply, RetryFn
from pipeline.api.endpoint import OPENAI_KEY_VAR, Endpoint
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import Retryable, classify

NO_KEY = "EMPTY"  # what vLLM's docs pass when the server was started without --api-key


def base_url(server_url: str) -> str:
    """The SDK's base URL: the server URL as given when it names a path (…/v1), else with /v1 added."""
    url = server_url.rstrip("/")
    return url if urlsplit(url).path not in ("", "/") else f"{url}/v1"


class OpenAIChat(PacedChat):
    """Chat completions against one OpenAI-compatible server, paced by a RateLimiter and retried."""

    def __init__(self, endpoint: Endpoint, limiter: RateLimiter, *, timeout_s: float = 60.0, max_retries: int = 6,
                 backoff_base_s: float = 1.0, backoff_cap_s: float = 60.0, on_retry: RetryFn | None = None) -> None:
        import httpx2
        from openai import AsyncOpenAI

        super().__init__(limiter, timeout_s=timeout_s, max_retries=max_retries, backoff_base_s=backoff_base_s,
                         backoff_cap_s=backoff_cap_s, on_retry=on_retry)
        self.endpoint, self.label = endpoint, endpoint.label
        assert endpoint.server_url is not None
        self._http = httpx2.AsyncClient(
            follow_redirects=True, limits=httpx2.Limits(max_connections=256, max_keepalive_connections=64))
        self._sdk = AsyncOpenAI(api_key=endpoint.api_key or NO_KEY, base_url=base_url(endpoint.server_url),
                                timeout=timeout_s, max_retries=0, http_client=self._http)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._sdk.close()
        await self._http.aclose()

    async def _send(self, messages: Messages, model: str, max_tokens: int, temperature: float,
                    json_mode: bool, attempt: int) -> Reply:
        import openai

        scrub, where = self.endpoint.scrub, self.label
        request: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens,
                                   "temperature": temperature}
        if json_mode:
            request["response_format"] = {"type": "json_object"}
        try:
            raw = await self._sdk.chat.completions.with_raw_response.create(**request)
        except openai.APITimeoutError:
            raise Retryable("timeout", f"no answer within {self.timeout_s:g} s from {where}") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise Retryable("connection", f"connection to {where} failed: "
                            f"{scrub(str(cause)) or type(cause).__name__}") from None
        except openai.APIStatusError as exc:
            raise classify(exc.status_code, exc.response.headers, scrub(_error_text(exc))[:300], where,
                           OPENAI_KEY_VAR) from None
        try:
            res = raw.parse()
        except (ValueError, openai.APIResponseValidationError) as exc:
            # A 200 whose body is not a chat completion: keep the body as the (unparseable) answer.
            return Reply(raw.http_response.text, None, None, 0.0, attempt, envelope_error=scrub(str(exc))[:500])
        return _reply(res, attempt)


def _reply(res: Any, attempt: int) -> Reply:
    """The Reply for a ChatCompletion, or for a 200 whose body is not one (kept as unparseable text)."""
    choices = getattr(res, "choices", None)
    if not isinstance(choices, list):  # the SDK hands back whatever JSON (or text) came: not a completion
        text = res if isinstance(res, str) else str(res)
        return Reply(text, None, None, 0.0, attempt, envelope_error="the body has no 'choices' list")
    choice = choices[0] if choices else None
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None)
    usage = getattr(res, "usage", None)
    return Reply(content if isinstance(content, str) else "", getattr(usage, "prompt_tokens", None),
                 getattr(usage, "completion_tokens", None), 0.0, attempt, getattr(res, "model", None),
                 str(choice.finish_reason) if choice is not None and choice.finish_reason is not None else None)


def _error_text(exc: Any) -> str:
    """The server's error message (vLLM: {"object": "error", "message": ...}), else the body as text."""
    body = exc.body
    if isinstance(body, dict):
        inner = body["error"] if isinstance(body.get("error"), dict) else body
        message = inner.get("message")
        if isinstance(message, str):
            return message.strip()
    try:
        return str(exc.response.text).strip()
    except Exception:  # noqa: BLE001 - a streamed or closed body: the SDK's own message will do
        return str(exc)
