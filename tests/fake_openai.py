"""A fake OpenAI-compatible chat server (as vLLM serves it) on real sockets, for the openai backend's tests.

The answers, faults (429 with Retry-After, 5xx, hangs, poison replies), records and control routes are
FakeMistral's (tests/fake_mistral.py); this server adds vLLM's request checking in front of them: a
request without `model` or `messages`, with a field outside ACCEPTED, or with `stream` true is refused
with HTTP 400 and a vLLM-style error body ({"object": "error", "message": ..., "type": "BadRequestError"}).
Real vLLM is more lenient (recent versions ignore unknown fields with a warning); the fake is strict so
that the client is kept to fields every server accepts.

In a test:   with FakeOpenAI() as fake: ... fake.url + "/v1" ... fake.rejected
Evaluate prompts (kind "evaluate"): fake.script_replies({("evaluate", PREMISE): evaluate_answer(LABEL)}).
"""
from __future__ import annotations

import json
from typing import Any

from fake_mistral import FakeMistral

# The ChatCompletionRequest fields the client may send (a subset of what vLLM accepts).
ACCEPTED = frozenset({"model", "messages", "temperature", "max_tokens", "response_format", "seed", "top_p", "n",
                      "stop", "stream"})
REQUIRED = ("model", "messages")


def evaluate_answer(label: int, *, with_thought: bool = True) -> str:
    """A fine-tuned model's answer to an evaluate prompt, as training taught it (for script_replies)."""
    if not with_thought:
        return json.dumps({"predicted_label": label})
    return json.dumps({"thought_process": f"Step 1: compare the two. Step 2: so the label is {label}.",
                       "predicted_label": label})


def vllm_error(message: str, status: int = 400) -> bytes:
    """An error body as vLLM's OpenAI-compatible server writes it."""
    return json.dumps({"object": "error", "message": message, "type": "BadRequestError", "param": None,
                       "code": status}).encode()


def request_problem(request: Any) -> str | None:
    """Why vLLM would refuse this chat-completions request body, else None."""
    if not isinstance(request, dict):
        return "Input should be a valid dictionary"
    missing = [name for name in REQUIRED if name not in request]
    if missing:
        return "; ".join(f"{name}: Field required" for name in missing)
    unknown = sorted(set(request) - ACCEPTED)
    if unknown:
        return "; ".join(f"{name}: Extra inputs are not permitted" for name in unknown)
    if request.get("stream"):
        return "stream: only stream=false is served by this fake"
    fmt = request.get("response_format")
    if fmt is not None and fmt not in ({"type": "json_object"}, {"type": "text"}):
        return f"response_format: unsupported {fmt!r}"
    return None


class FakeOpenAI(FakeMistral):
    """FakeMistral behind vLLM's request checks; `rejected` lists the messages of refused requests."""

    def __init__(self, port: int = 0, **config: Any) -> None:
        super().__init__(port, **config)
        self.rejected: list[str] = []
        self.bodies: list[dict[str, Any]] = []  # every chat request body as received

    async def _route(self, method: str, target: str, headers: dict[str, str],
                     body: bytes) -> tuple[int, dict[str, str], bytes]:
        if method == "POST" and target.split("?")[0] == "/v1/chat/completions":
            try:
                request = json.loads(body)
            except ValueError:
                request = None
            problem = request_problem(request)
            if problem is not None:
                with self._lock:
                    self.rejected.append(problem)
                return 400, {}, vllm_error(problem)
            with self._lock:
                self.bodies.append(request)
        return await super()._route(method, target, headers, body)
