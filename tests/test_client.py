"""The one Mistral client: the real SDK over real sockets to the fake server, with injected faults."""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_mistral import FakeMistral

from pipeline.api.client import (
    ApiError,
    AuthError,
    ClientConfigError,
    Endpoint,
    MistralChat,
    estimate_cost,
    read_dotenv,
    resolve_endpoint,
)
from pipeline.api.ratelimit import RateLimiter
from pipeline.prompts import THOUGHT
from pipeline.settings import Api, Settings

KEY = "sk-test-client-5f1c2e9a7b"
MESSAGES = THOUGHT.messages(premise="A man sleeps on a bench.", hypothesis="A man sleeps.")


@pytest.fixture
def fake() -> Iterator[FakeMistral]:
    with FakeMistral(api_key=KEY, latency_s=0.01) as server:
        yield server


def _complete(url: str, key: str = KEY, *, timeout_s: float = 5.0, max_retries: int = 3, backoff: float = 0.05,
              retries: list[str] | None = None):
    async def go():
        on_retry = (lambda kind, _delay: retries.append(kind)) if retries is not None else None
        async with MistralChat(Endpoint(url, key), RateLimiter(None), timeout_s=timeout_s, max_retries=max_retries,
                               backoff_base_s=backoff, on_retry=on_retry) as chat:
            return await chat.complete(MESSAGES, model="ministral-8b-latest", max_tokens=200, temperature=0.2)

    return asyncio.run(go())


def test_answer_with_usage_and_latency(fake: FakeMistral) -> None:
    reply = _complete(fake.url)
    assert reply.text.startswith('{"thought_process"')
    assert reply.tokens_in and reply.tokens_out and reply.latency_ms >= 10
    assert reply.attempts == 1 and reply.response_model == "ministral-8b-latest"
    (record,) = fake.snapshot()
    assert record.authorization == f"Bearer {KEY}"


def test_429_waits_for_retry_after(fake: FakeMistral) -> None:
    fake.config.retry_after = "0.6"
    fake.config.script.extend(["429", "429"])
    retries: list[str] = []
    reply = _complete(fake.url, retries=retries)
    assert reply.attempts == 3 and retries == ["rate_limited", "rate_limited"]
    arrivals = [r.at for r in fake.snapshot()]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(gap >= 0.6 for gap in gaps), gaps  # Retry-After honoured, not the 0.05 s backoff


def test_429_without_retry_after_backs_off_exponentially(fake: FakeMistral) -> None:
    fake.config.retry_after = None
    fake.config.script.extend(["429", "429", "429"])
    reply = _complete(fake.url, backoff=0.1, max_retries=4)
    assert reply.attempts == 4
    arrivals = [r.at for r in fake.snapshot()]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # base 0.1 s doubling, with jitter in the upper half: >= 0.05, 0.1, 0.2
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2, gaps


def test_5xx_and_timeouts_are_retried(fake: FakeMistral) -> None:
    fake.config.hang_s = 3.0
    fake.config.script.extend(["500", "timeout"])
    retries: list[str] = []
    started = time.monotonic()
    reply = _complete(fake.url, timeout_s=0.4, retries=retries)
    assert retries == ["server_error", "timeout"]
    assert reply.attempts == 3 and reply.text
    assert time.monotonic() - started < 2.5  # the hung request was abandoned at the timeout


def test_retries_give_up_with_api_error(fake: FakeMistral) -> None:
    fake.config.retry_after = "0"
    fake.config.rate_429 = 1.0
    with pytest.raises(ApiError) as caught:
        _complete(fake.url, max_retries=2)
    assert caught.value.kind == "rate_limited" and caught.value.attempts == 3
    assert "gave up after 3 attempts" in str(caught.value)
    assert len(fake.snapshot()) == 3


def test_bad_request_is_not_retried(fake: FakeMistral) -> None:
    fake.config.script.append("400")
    with pytest.raises(ApiError) as caught:
        _complete(fake.url)
    assert caught.value.kind == "bad_request" and caught.value.status == 400
    assert "Invalid model" in str(caught.value)
    assert len(fake.snapshot()) == 1


def test_reply_that_is_not_a_completion_is_returned_for_storage(fake: FakeMistral) -> None:
    fake.config.script.append("bad_body")
    reply = _complete(fake.url)
    assert reply.envelope_error and "not JSON" in reply.text
    assert len(fake.snapshot()) == 1  # an answer arrived (and may have been billed): never re-sent blindly


def test_authentication_error_says_what_to_set(fake: FakeMistral) -> None:
    wrong = "sk-wrong-key-0000000001"
    with pytest.raises(AuthError) as caught:
        _complete(fake.url, key=wrong)
    message = str(caught.value)
    assert "MISTRAL_API_KEY" in message and "401" in message
    assert wrong not in message and KEY not in message
    assert len(fake.snapshot()) == 1  # not retried


def test_key_never_reaches_logs_even_with_sdk_debugging(fake: FakeMistral, monkeypatch, caplog, capfd) -> None:
    monkeypatch.setenv("MISTRAL_DEBUG", "1")  # the SDK would log request headers with its own logger
    caplog.set_level(logging.DEBUG)
    fake.config.retry_after = "0"
    fake.config.script.extend(["429", "500"])
    _complete(fake.url)
    with pytest.raises(AuthError) as caught:
        _complete(fake.url, key=KEY + "-revoked")
    captured = capfd.readouterr()
    for text in (caplog.text, captured.out, captured.err, str(caught.value), repr(Endpoint(fake.url, KEY))):
        assert KEY not in text
    assert "retrying after rate_limited" in caplog.text  # the log is there, just without the key


def test_resolve_endpoint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    config = tmp_path / "config.toml"
    with pytest.raises(ClientConfigError) as caught:
        resolve_endpoint(Settings(path=config))
    assert "MISTRAL_API_KEY" in str(caught.value) and str(config) in str(caught.value)
    # A local server needs no key.
    assert resolve_endpoint(Settings(api=Api(server_url="http://localhost:8000"))).api_key is None
    with pytest.raises(ClientConfigError):
        resolve_endpoint(Settings(), "localhost:8000")
    # .env in the working directory, environment first.
    (tmp_path / ".env").write_text("# secrets\nexport MISTRAL_API_KEY='sk-from-dotenv'\n")
    assert resolve_endpoint(Settings()).api_key == "sk-from-dotenv"
    monkeypatch.setenv("MISTRAL_API_KEY", "sk-from-env")
    endpoint = resolve_endpoint(Settings())
    assert endpoint.api_key == "sk-from-env" and endpoint.server_url is None
    assert endpoint.label == "https://api.mistral.ai"
    assert "sk-from-env" not in repr(endpoint)


def test_endpoint_label_drops_credentials() -> None:
    assert Endpoint("http://user:secret@gpu-box:8000/?token=abc", None).label == "http://gpu-box:8000"


def test_read_dotenv(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('OTHER=1\nMISTRAL_API_KEY = "abc"\n')
    assert read_dotenv(env, "MISTRAL_API_KEY") == "abc"
    assert read_dotenv(tmp_path / "missing", "MISTRAL_API_KEY") is None


def test_connection_refused_is_retried_then_reported() -> None:
    with FakeMistral() as server:
        url = server.url
    with pytest.raises(ApiError) as caught:  # nothing listens there any more
        _complete(url, max_retries=1)
    assert caught.value.kind == "connection" and caught.value.attempts == 2


def test_estimate_cost() -> None:
    assert estimate_cost("ministral-8b-latest", 1_000_000, 0) == pytest.approx(0.15)
    assert estimate_cost("some-local-model", 10, 10) is None


def test_sdk_wrapper_classes_are_built_once(fake: FakeMistral) -> None:
    """The client caches the SDK's per-call pydantic wrapper classes (half its CPU per request)."""
    from mistralai.client.utils import serializers
    from pydantic import ConfigDict

    _complete(fake.url)
    config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)
    first = serializers.create_model("Unmarshaller", body=(int, ...), __config__=config)
    again = serializers.create_model("Unmarshaller", body=(int, ...), __config__=config)
    assert first is again and first(body=3).body == 3
    assert serializers.create_model("Other", body=(str, ...), __config__=config) is not first


# --- keys and settings that used to end in a traceback ------------------------------------------------


@pytest.mark.parametrize("key, source, named", [
    ("sk-7Qx\u00a09Zw", "env", "U+00A0 (NO-BREAK SPACE)"),
    ("\u201csk-7Qx9Zw\u201d", "env", "U+201C (LEFT DOUBLE QUOTATION MARK)"),
    ("sk-7Qx 9Zw", "env", "U+0020 (SPACE)"),
    ("sk-7Qx\u20199Zw", ".env", "U+2019 (RIGHT SINGLE QUOTATION MARK)"),
])
def test_a_key_that_cannot_be_sent_is_refused_at_start_without_showing_it(
        fake: FakeMistral, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, source: str, named: str) -> None:
    from typer.testing import CliRunner

    from db import open_db
    from pipeline.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NLISTRAL_CONFIG", str(tmp_path / "none.toml"))
    if source == "env":
        monkeypatch.setenv("MISTRAL_API_KEY", key)
    else:
        monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
        (tmp_path / ".env").write_text(f"MISTRAL_API_KEY={key}\n", encoding="utf-8")
    open_db(tmp_path / "k.db").conn.close()
    result = CliRunner().invoke(app, ["generate", "--db", str(tmp_path / "k.db"), "--server-url", fake.url])
    assert result.exit_code == 2, result.output
    assert named in result.output and ("the environment" if source == "env" else ".env") in result.output
    assert "MISTRAL_API_KEY" in result.output and "Traceback" not in result.output
    for part in ("7Qx", "9Zw"):
        assert part not in result.output  # not a piece of the key either
    assert fake.snapshot() == []  # refused before anything was sent


def test_empty_keys_and_dotenv_details(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MISTRAL_API_KEY", "   ")
    with pytest.raises(ClientConfigError, match="set but empty"):
        resolve_endpoint(Settings())
    env = tmp_path / ".env"
    env.write_bytes("\ufeffMISTRAL_API_KEY=sk-bom  # written by a Windows editor\n".encode())
    assert read_dotenv(env, "MISTRAL_API_KEY") == "sk-bom"
    env.write_text("MISTRAL_API_KEY='sk-quoted' # mine\n")
    assert read_dotenv(env, "MISTRAL_API_KEY") == "sk-quoted"
    assert resolve_endpoint(Settings()).api_key == "sk-quoted"


@pytest.mark.parametrize("lines, named", [
    (["[api]", 'rps = "fast"'], "rps in [api] must be a number"),
    (["[api]", "rps = nan"], "rps in [api] must be a number above 0"),
    (["[api]", "max_concurrency = 0"], "max_concurrency in [api] must be a whole number of 1 or more"),
    (["[api]", "timeout_s = -1"], "timeout_s in [api] must be a number of seconds above 0"),
    (["[api]", "tokens_per_minute = 1.5"], "tokens_per_minute in [api] must be a whole number"),
    (["[api]", "server_url = 8000"], "server_url in [api] must be a non-empty string"),
    (["[api]", 'server_url = "http://localhost:80000"'], "server URL 'http://localhost:80000' is not usable"),
    (["[models]", 'thought = ""'], "thought in [models] must be a non-empty string"),
])
def test_bad_settings_are_errors_that_name_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   lines: list[str], named: str) -> None:
    from typer.testing import CliRunner

    from db import open_db
    from pipeline.cli import app

    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("NLISTRAL_CONFIG", str(config))
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    open_db(tmp_path / "s.db").conn.close()
    result = CliRunner().invoke(app, ["generate", "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 2, result.output
    assert named in result.output and "Traceback" not in result.output
    if "server URL" not in named:
        assert str(config) in result.output


def test_rps_that_is_not_a_number_above_zero_is_bad_usage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from db import open_db
    from pipeline.cli import app

    monkeypatch.setenv("NLISTRAL_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    open_db(tmp_path / "r.db").conn.close()
    result = CliRunner().invoke(app, ["generate", "--db", str(tmp_path / "r.db"), "--rps", "nan"])
    assert result.exit_code == 2 and "--rps must be positive" in result.output
