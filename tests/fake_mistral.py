"""A fake Mistral-compatible chat server on real sockets, with fault injection, for tests and benchmarks.

It implements `POST /v1/chat/completions` with the response shape the real SDK validates, and answers
plausibly from the prompt: a thought's label comes from word overlap between hypothesis and premise
(flipped for a configurable share of pairs, chosen by a hash), a reflection's from the gold label in
its prompt, a blind reflection's (a reflection prompt without a gold label) from the earlier attempt's
label (the other one, or the same for a configurable share), a judge's score from a hash, an evaluate
prompt (the training user prompt alone) as a thought (label-only for the label-only instruction). Faults (400, 429 with Retry-After, 500, hangs past the client's
timeout, malformed JSON, wrong schema, a body that is not a completion) are injected by rate or by a
script for the next requests. Every request is recorded with a key (hash of model and messages) so
tests can assert that no answer was paid for twice.

In a test:   with FakeMistral(latency_s=0.05) as fake: ... fake.url ... fake.ok_by_key()
As a process: python tests/fake_mistral.py --latency 0.3 --rate-429 0.05   (prints FAKE_MISTRAL_URL ...)
Control over HTTP: GET /_fake/stats, POST /_fake/config (JSON of FakeConfig fields), POST /_fake/reset.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import random
import re
import signal
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Self

FAULTS = ("ok", "400", "429", "500", "timeout", "malformed", "wrong_schema", "bad_body")
TEST_KEY = "sk-test-fake-server-3c9e1d"  # the key tests set in MISTRAL_API_KEY (conftest.api_env)


@dataclass
class FakeConfig:
    """What the server does; change fields at any time (tests) or via POST /_fake/config."""

    latency_s: float = 0.0
    api_key: str | None = None  # when set, any other bearer token gets 401
    rate_429: float = 0.0
    retry_after: str | None = "1"  # the Retry-After header sent with 429s (None: no header)
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    hang_s: float = 30.0  # how long a "timeout" request hangs before answering
    rate_malformed: float = 0.0
    rate_wrong_schema: float = 0.0
    rate_bad_body: float = 0.0
    thought_error_rate: float = 0.2  # share of pairs whose thought gets the other label
    reflection_error_rate: float = 0.0  # share of reflections that do not reach gold
    blind_keep_rate: float = 0.0  # share of blind reflections that keep the earlier attempt's label
    script: deque[str] = field(default_factory=deque)  # faults for the next requests, in order
    # Scripted answers: "KIND<tab>PREMISE" (kind: thought, reflection, blind_reflection, judge, or evaluate: the
    # training user prompt alone, as `nlistral evaluate --backend openai` sends it) -> the reply
    # text sent for that request, whatever it is (a poison reply, a label in prose); other requests as usual.
    replies: dict[str, str] = field(default_factory=dict)
    seed: int = 0


@dataclass(frozen=True)
class Record:
    """One request as the server saw it."""

    key: str
    kind: str
    model: str
    status: int
    fault: str
    at: float  # time.time() on arrival
    authorization: str
    messages: tuple[tuple[str, str], ...] = ()  # (role, content) of each message of the request


class FakeMistral:
    """The server, run on an asyncio loop in a background thread (127.0.0.1, ephemeral port)."""

    def __init__(self, port: int = 0, **config: Any) -> None:
        self.config = FakeConfig(**config)
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._port = port
        self._rng = random.Random(self.config.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeMistral:
        """Start serving; returns self with .url set."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._connection, "127.0.0.1", self._port, backlog=512))
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-mistral", daemon=True)
        self._thread.start()
        ready.wait(10)
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections."""
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests read ---------------------------------------------------------------------

    def snapshot(self) -> list[Record]:
        """The records so far."""
        with self._lock:
            return list(self.records)

    def ok_by_key(self) -> Counter[str]:
        """How many successful (200) answers each request key received."""
        return Counter(r.key for r in self.snapshot() if r.status == 200)

    def duplicates(self) -> int:
        """Request keys answered successfully more than once (answers paid for twice)."""
        return sum(1 for n in self.ok_by_key().values() if n > 1)

    def script_replies(self, replies: dict[tuple[str, str], str]) -> None:
        """Answer (kind, premise) requests with these reply texts; anything else as usual."""
        self.config.replies = {f"{kind}\t{premise}": reply for (kind, premise), reply in replies.items()}

    def reset(self) -> None:
        """Forget the records."""
        with self._lock:
            self.records.clear()

    def stats(self) -> dict[str, Any]:
        """A summary: counts by status and fault, duplicates, first and last arrival."""
        records = self.snapshot()
        return {
            "requests": len(records),
            "by_status": dict(Counter(str(r.status) for r in records)),
            "by_fault": dict(Counter(r.fault for r in records)),
            "ok_keys": len(self.ok_by_key()),
            "duplicates": self.duplicates(),
            "first_at": records[0].at if records else None,
            "last_at": records[-1].at if records else None,
        }

    # -- HTTP --------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line.strip():
                    break
                method, target = request_line.decode("latin-1").split(" ")[:2]
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, extra, payload = await self._route(method, target, headers, body)
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "content-type: application/json",
                        f"content-length: {len(payload)}", *(f"{k}: {v}" for k, v in extra.items())]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError, ValueError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _route(self, method: str, target: str, headers: dict[str, str],
                     body: bytes) -> tuple[int, dict[str, str], bytes]:
        path = target.split("?")[0]
        if method == "GET" and path == "/_fake/stats":
            return 200, {}, json.dumps(self.stats()).encode()
        if method == "POST" and path == "/_fake/reset":
            self.reset()
            return 200, {}, b"{}"
        if method == "POST" and path == "/_fake/config":
            changes = json.loads(body or b"{}")
            known = {f.name for f in fields(FakeConfig)}
            for name, value in changes.items():
                if name not in known:
                    return 400, {}, json.dumps({"message": f"unknown config field {name}"}).encode()
                setattr(self.config, name, deque(value) if name == "script" else value)
            return 200, {}, json.dumps({k: v for k, v in asdict(self.config).items() if k != "script"}).encode()
        if method == "POST" and path == "/v1/chat/completions":
            return await self._chat(headers, body)
        return 404, {}, json.dumps({"message": f"no route {method} {path}"}).encode()

    async def _chat(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        arrived = time.time()
        request = json.loads(body)
        model, messages = request.get("model", ""), request.get("messages", [])
        key = request_key(model, messages)
        kind = _kind(messages)
        auth = headers.get("authorization", "")
        cfg = self.config
        if cfg.api_key is not None and auth != f"Bearer {cfg.api_key}":
            self._record(key, kind, model, 401, "auth", arrived, auth)
            return 401, {}, json.dumps({"message": "Unauthorized", "request_id": "fake"}).encode()
        fault = self._fault()
        if cfg.latency_s:
            await asyncio.sleep(cfg.latency_s)
        if fault == "429":
            self._record(key, kind, model, 429, fault, arrived, auth)
            extra = {"retry-after": cfg.retry_after} if cfg.retry_after is not None else {}
            return 429, extra, json.dumps({"message": "Requests rate limit exceeded"}).encode()
        if fault == "400":
            self._record(key, kind, model, 400, fault, arrived, auth)
            return 400, {}, json.dumps({"message": f"Invalid model: {model}"}).encode()
        if fault == "500":
            self._record(key, kind, model, 500, fault, arrived, auth)
            return 500, {}, json.dumps({"message": "Internal server error"}).encode()
        if fault == "timeout":
            await asyncio.sleep(cfg.hang_s)
        if fault == "bad_body":
            self._record(key, kind, model, 200, fault, arrived, auth)
            return 200, {}, b'{"id": "cmpl-x", "choices": [ this is not JSON'
        content = _answer(kind, messages, cfg, key)
        if fault == "malformed":
            content = content[: max(10, len(content) // 2)]  # cut off mid-string, as a truncated reply
        elif fault == "wrong_schema":
            content = json.dumps({"answer": "I believe so", "confidence": 0.7})
        self._record(key, kind, model, 200, fault, arrived, auth, messages)
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 5
        completion_tokens = len(content) // 4 + 1
        payload = {
            "id": f"cmpl-{key[:12]}", "object": "chat.completion", "model": model, "created": int(arrived),
            "choices": [{"index": 0, "finish_reason": "length" if fault == "malformed" else "stop",
                         "message": {"role": "assistant", "content": content, "tool_calls": None}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
        return 200, {}, json.dumps(payload).encode()

    def _fault(self) -> str:
        cfg = self.config
        with self._lock:
            if cfg.script:
                return cfg.script.popleft()
            draw = self._rng.random()
        edge = 0.0
        for name, rate in (("429", cfg.rate_429), ("500", cfg.rate_500), ("timeout", cfg.rate_timeout),
                           ("malformed", cfg.rate_malformed), ("wrong_schema", cfg.rate_wrong_schema),
                           ("bad_body", cfg.rate_bad_body)):
            edge += rate
            if draw < edge:
                return name
        return "ok"

    def _record(self, key: str, kind: str, model: str, status: int, fault: str, at: float, auth: str,
                messages: list[dict[str, Any]] | None = None) -> None:
        sent = tuple((str(m.get("role")), str(m.get("content"))) for m in messages or ())
        with self._lock:
            self.records.append(Record(key, kind, model, status, fault, at, auth, sent))


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error"}


def request_key(model: str, messages: list[dict[str, Any]]) -> str:
    """The identity of a request: the same model and messages are the same (paid-for) question."""
    text = json.dumps([model, [[m.get("role"), m.get("content")] for m in messages]], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


EVALUATE_QUESTION = "Does the premise entail the hypothesis?"  # opens both evaluate instructions (exports.formats)


def _kind(messages: list[dict[str, Any]]) -> str:
    system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    if not system and any(EVALUATE_QUESTION in str(m.get("content", "")) for m in messages):
        return "evaluate"  # `nlistral evaluate --backend openai`: the training user prompt alone
    if "improved_thought_process" in system:
        user = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
        return "reflection" if "Annotators' label:" in user else "blind_reflection"
    if '"score"' in system:
        return "judge"
    return "thought"


def _field(text: str, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}: (.*)$", text, re.MULTILINE)
    return match.group(1) if match else ""


def _share(key: str, salt: str) -> float:
    """A deterministic number in [0, 1) from a request key."""
    return int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:8], 16) / 2**32


def _answer(kind: str, messages: list[dict[str, Any]], cfg: FakeConfig, key: str) -> str:
    user = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
    premise, hypothesis = _field(user, "Premise"), _field(user, "Hypothesis")
    scripted = cfg.replies.get(f"{kind}\t{premise}")
    if scripted is not None:
        return scripted
    pair_key = hashlib.sha256(f"{premise}\x1f{hypothesis}".encode()).hexdigest()
    if kind == "judge":
        score = 1 + int(_share(key, "score") * 5)
        return json.dumps({"score": score, "rationale": f"Fake grade {score}: the steps mostly follow the premise."})
    if kind == "blind_reflection":
        answered = re.search(r"it answered (\d)", user)
        earlier = int(answered.group(1)) if answered else 0
        label = earlier if _share(pair_key, "blind") < cfg.blind_keep_rate else 1 - earlier
        return json.dumps({
            "error_analysis": "Checked step by step against the premise.",
            "improved_thought_process": _steps(premise, hypothesis, label),
            "predicted_label": label,
        })
    if kind == "reflection":
        gold = int(_field(user, "Annotators' label")[:1] or 0)
        label = 1 - gold if _share(pair_key, "reflect") < cfg.reflection_error_rate else gold
        return json.dumps({
            "error_analysis": "The earlier reasoning read more into the premise than it states.",
            "improved_thought_process": _steps(premise, hypothesis, label),
            "predicted_label": label,
        })
    words = lambda s: {w for w in re.findall(r"[a-z]+", s.lower()) if len(w) > 2}
    hyp = words(hypothesis)
    overlap = len(hyp & words(premise)) / len(hyp) if hyp else 0.0
    label = 1 if overlap >= 0.6 else 0
    if _share(pair_key, "thought") < cfg.thought_error_rate:
        label = 1 - label
    if kind == "evaluate" and '"thought_process"' not in user:  # the label-only instruction
        return json.dumps({"predicted_label": label})
    return json.dumps({"thought_process": _steps(premise, hypothesis, label), "predicted_label": label})


def _steps(premise: str, hypothesis: str, label: int) -> str:
    verdict = ("its claim is covered by what the premise states, so the hypothesis can be inferred from the premise."
               if label == 1 else
               "it adds something the premise does not settle, so the hypothesis cannot be inferred from the premise.")
    return (f"Step 1: The premise states: {premise[:80]!r}. Step 2: The hypothesis claims: {hypothesis[:80]!r}. "
            f"Step 3: Comparing the two, {verdict}")


_SUBJECTS = ("a man", "a woman", "two children", "an old dog", "the chef", "a cyclist", "the pilot", "a student")
_ACTIONS = ("is reading a newspaper", "is crossing a busy street", "is cooking pasta", "is sleeping on a bench",
            "is painting a fence", "is carrying a red bag", "is playing a guitar", "is feeding some birds")
_PLACES = ("in a park", "near the station", "at home", "by the river", "on a rooftop", "in a small village")


def toy_pairs(n: int) -> list[tuple[str, str, int]]:
    """n distinct (premise, hypothesis, gold) triples for tests, about half of them entailed."""
    pairs = []
    for i in range(n):
        subject = _SUBJECTS[i % len(_SUBJECTS)]
        action = _ACTIONS[(i // len(_SUBJECTS)) % len(_ACTIONS)]
        place = _PLACES[(i // 7) % len(_PLACES)]
        premise = f"{subject.capitalize()} {action} {place} (scene {i})."
        if i % 2:
            pairs.append((premise, f"{subject.capitalize()} {action}.", 1))
        else:
            other = _ACTIONS[(i // len(_SUBJECTS) + 3) % len(_ACTIONS)]
            pairs.append((premise, f"{subject.capitalize()} {other} {place}.", 0))
    return pairs


def toy_db(path: Path, pairs: list[tuple[str, str, int]], name: str = "toy_train") -> Path:
    """A store at path holding these pairs, imported from a CSV (NAME.csv beside it) as a user would."""
    from db import open_db
    from pipeline.importing import import_file

    csv_path = path.parent / f"{name}.csv"
    with csv_path.open("w", newline="") as fh:
        csv.writer(fh).writerows([("premise", "hypothesis", "label"), *pairs])
    db = open_db(path)
    import_file(db, csv_path)
    db.conn.close()
    return path


def client_settings(url: str, **api: Any) -> Any:
    """Settings that point the client at a fake server at url, fast (high rps, short timeout); api overrides."""
    from pipeline.settings import Api, Settings

    return Settings(api=Api(**{"server_url": url, "rps": 500.0, "max_concurrency": 6, "timeout_s": 5.0,
                                "max_retries": 3, **api}))


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; print the URL on the first line of stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    for f in fields(FakeConfig):
        if f.name in ("script", "replies"):
            continue
        kind = {"float": float, "int": int}.get(str(f.type), str)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default)
    args = vars(parser.parse_args(argv))
    port = args.pop("port")
    server = FakeMistral(port=port, **args).start()
    print(f"FAKE_MISTRAL_URL {server.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.2):
        pass
    server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
