"""The openai backend end to end: the real `openai` SDK, real sockets, real SQLite, a fake vLLM-like server."""
from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from pathlib import Path

import httpx
import openai
import pytest
from fake_mistral import request_key, toy_db, toy_pairs
from fake_openai import ACCEPTED, FakeOpenAI
from kill import generation_process, sigkill_when, stored_count
from typer.testing import CliRunner

from pipeline.api.chat import Spread
from pipeline.api.endpoint import Endpoint
from pipeline.api.openai_client import OpenAIChat, base_url
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import ApiError
from pipeline.cli import app
from pipeline.generate import run_stage, stage_options
from pipeline.prompts import THOUGHT
from pipeline.settings import Api, Settings

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"  # a self-hosted model: no price in the table
SECRET = "sk-openai-test-5f1c0b9e77"
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("keyless_env")


@pytest.fixture
def fake() -> FakeOpenAI:
    """A fake OpenAI-compatible server that takes any key (as vLLM started without --api-key)."""
    with FakeOpenAI(retry_after="0", latency_s=0.005) as server:
        yield server


def settings(*urls: str, **api: object) -> Settings:
    """Fast settings for the openai backend at these servers."""
    return Settings(api=Api(**{"backend": "openai", "server_url": list(urls), "rps": 500.0, "max_concurrency": 4,
                                "timeout_s": 5.0, "max_retries": 3, **api}))  # type: ignore[arg-type]


def cli(*args: str) -> object:
    """`nlistral ARGS` in-process."""
    return runner.invoke(app, list(args))


def rows(path: Path, sql: str) -> list[sqlite3.Row]:
    """Rows of a query on a store."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def test_generate_reflect_blind_and_judge_through_the_cli(fake: FakeOpenAI, tmp_path: Path) -> None:
    db = toy_db(tmp_path / "o.db", toy_pairs(10))
    common = ("--db", str(db), "--backend", "openai", "--server-url", fake.url, "--model", MODEL, "--rps", "500")
    for command in (["generate"], ["reflect"], ["reflect", "--blind"], ["judge"]):
        result = cli(*command, *common)
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
        assert "counted as 0" in result.output  # type: ignore[attr-defined]
    assert fake.rejected == []
    assert all(set(body) <= ACCEPTED and body["response_format"] == {"type": "json_object"} for body in fake.bodies)
    assert fake.duplicates() == 0
    stored = rows(db, "SELECT kind, model, backend, prompt_version, tokens_in, tokens_out, latency_ms, cost_usd, "
                      "params FROM generations")
    assert Counter(r["kind"] for r in stored)["thought"] == 10
    assert {r["kind"] for r in stored} == {"thought", "reflection", "blind_reflection", "judge"}
    for r in stored:
        assert (r["model"], r["backend"], r["cost_usd"]) == (MODEL, "openai", 0.0)
        assert r["prompt_version"] and r["tokens_in"] > 0 and r["tokens_out"] > 0 and r["latency_ms"] > 0
        assert json.loads(r["params"])["endpoint"] == fake.url
    configs = [json.loads(r["config"]) for r in rows(db, "SELECT config FROM runs WHERE kind != 'import'")]
    assert all(c["backend"] == "openai" and c["servers"] == [fake.url] and c["model"] == MODEL for c in configs)
    before = len(fake.snapshot())
    again = cli("generate", *common)  # resume: everything is stored, nothing is sent
    assert again.exit_code == 0 and len(fake.snapshot()) == before  # type: ignore[attr-defined]


def test_the_fake_refuses_what_vllm_refuses(fake: FakeOpenAI) -> None:
    sdk = openai.OpenAI(api_key="EMPTY", base_url=f"{fake.url}/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                    extra_body={"guided_choice": ["0", "1"]})
    assert info.value.status_code == 400 and "Extra inputs are not permitted" in str(info.value)
    missing = httpx.post(f"{fake.url}/v1/chat/completions", json={"messages": []})
    assert missing.status_code == 400 and missing.json()["object"] == "error"
    assert "model: Field required" in missing.json()["message"]
    assert fake.snapshot() == []  # refused before any answer


def test_a_rejected_request_is_a_bad_request_not_retried(fake: FakeOpenAI) -> None:
    fake.config.script.extend(["400"])

    async def go() -> None:
        async with OpenAIChat(Endpoint(fake.url), RateLimiter(None), timeout_s=5, max_retries=3) as chat:
            await chat.complete(THOUGHT.messages(premise="A.", hypothesis="B."), model=MODEL, max_tokens=50,
                                temperature=0)

    with pytest.raises(ApiError) as info:
        asyncio.run(go())
    assert info.value.kind == "bad_request" and info.value.status == 400 and len(fake.snapshot()) == 1


def test_429_and_5xx_are_retried_and_retry_after_is_honoured(fake: FakeOpenAI) -> None:
    fake.config.retry_after = "1"
    fake.config.script.extend(["429", "500", "500"])
    retries: list[str] = []

    async def go() -> object:
        async with OpenAIChat(Endpoint(fake.url), RateLimiter(None), timeout_s=5, max_retries=4,
                              backoff_base_s=0.01, on_retry=lambda kind, _d: retries.append(kind)) as chat:
            return await chat.complete(THOUGHT.messages(premise="A dog runs.", hypothesis="A dog moves."),
                                       model=MODEL, max_tokens=50, temperature=0)

    reply = asyncio.run(go())
    arrivals = [r.at for r in fake.snapshot()]
    assert [r.status for r in fake.snapshot()] == [429, 500, 500, 200]
    assert retries == ["rate_limited", "server_error", "server_error"]
    assert arrivals[1] - arrivals[0] >= 0.9  # Retry-After: 1 was waited out
    assert reply.attempts == 4 and reply.server == fake.url  # type: ignore[attr-defined]


def test_a_poison_reply_is_stored_as_a_parse_failure(fake: FakeOpenAI, tmp_path: Path) -> None:
    pairs = toy_pairs(4)
    db = toy_db(tmp_path / "p.db", pairs)
    fake.script_replies({("thought", pairs[0][0]): "Entailment, I'd say, probably. {not json"})
    result = run_stage(db, stage_options("thought", settings(fake.url), model=MODEL))
    assert result.counters.parse["failed"] == 1 and result.counters.stored == 4
    poisoned = rows(db, "SELECT g.parse_status, g.predicted_label, g.raw_response FROM generations g "
                        f"JOIN examples e ON e.id = g.example_id WHERE e.premise = '{pairs[0][0]}'")
    assert [(r["parse_status"], r["predicted_label"]) for r in poisoned] == [("failed", None)]
    assert poisoned[0]["raw_response"].startswith("Entailment, I'd say")


def test_two_servers_both_receive_requests(tmp_path: Path) -> None:
    db = toy_db(tmp_path / "s.db", toy_pairs(16))
    with FakeOpenAI(latency_s=0.02) as a, FakeOpenAI(latency_s=0.02) as b:
        result = run_stage(db, stage_options("thought", settings(a.url, b.url), model=MODEL))
        served = len(a.snapshot()), len(b.snapshot())
    assert result.counters.stored == 16 and sum(served) == 16 and min(served) >= 4, served
    endpoints = Counter(json.loads(r["params"])["endpoint"] for r in rows(db, "SELECT params FROM generations"))
    assert endpoints == {a.url: served[0], b.url: served[1]}
    run = rows(db, "SELECT config FROM runs WHERE kind = 'generate'")[0]
    assert json.loads(run["config"])["servers"] == [a.url, b.url]


def test_spread_prefers_the_least_busy_server() -> None:
    class Slow:
        def __init__(self) -> None:
            self.calls = 0

        async def complete(self, *_a: object, **_k: object) -> object:
            self.calls += 1
            await asyncio.sleep(0.05)

        async def aclose(self) -> None: ...

    first, second = Slow(), Slow()
    spread = Spread([first, second])  # type: ignore[list-item]

    async def go() -> None:
        await asyncio.gather(*(spread.complete([], model="m", max_tokens=1, temperature=0) for _ in range(6)))

    asyncio.run(go())
    assert (first.calls, second.calls) == (3, 3)


def test_dry_run_sends_nothing_and_says_why_the_cost_is_zero(fake: FakeOpenAI, tmp_path: Path) -> None:
    db = toy_db(tmp_path / "d.db", toy_pairs(5))
    result = cli("generate", "--db", str(db), "--backend", "openai", "--server-url", fake.url, "--model", MODEL,
                 "--dry-run", "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    estimate = json.loads(result.output)  # type: ignore[attr-defined]
    assert estimate["requests"] == 5 and estimate["cost_usd_estimate"] == 0.0 and "counted as 0" in estimate["cost_note"]
    no_url = cli("generate", "--db", str(db), "--backend", "openai", "--dry-run")  # counting needs no server
    assert no_url.exit_code == 0, no_url.output  # type: ignore[attr-defined]
    assert fake.snapshot() == [] and fake.rejected == []


def test_the_key_is_sent_but_never_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = toy_db(tmp_path / "k.db", toy_pairs(3))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeOpenAI(api_key=SECRET) as good, FakeOpenAI(api_key="sk-another-key") as wrong:
        ok = cli("generate", "--db", str(db), "--backend", "openai", "--server-url", good.url, "--model", MODEL)
        refused = cli("judge", "--db", str(db), "--backend", "openai", "--server-url", wrong.url, "--model", MODEL)
        assert {r.authorization for r in good.snapshot()} == {f"Bearer {SECRET}"}
    assert ok.exit_code == 0, ok.output  # type: ignore[attr-defined]
    assert refused.exit_code == 2 and "OPENAI_API_KEY" in refused.output  # type: ignore[attr-defined]
    for result in (ok, refused):
        assert SECRET not in result.output  # type: ignore[attr-defined]
    assert all(SECRET not in str(row[0]) for row in rows(db, "SELECT config FROM runs"))


def test_settings_errors_name_the_flag_and_the_fix(tmp_path: Path) -> None:
    db = toy_db(tmp_path / "e.db", toy_pairs(2))
    unknown = cli("generate", "--db", str(db), "--backend", "llamafile", "--server-url", "http://127.0.0.1:9")
    assert unknown.exit_code == 2 and "--backend" in unknown.output and "openai" in unknown.output  # type: ignore[attr-defined]
    no_url = cli("generate", "--db", str(db), "--backend", "openai")
    assert no_url.exit_code == 2 and "--server-url" in no_url.output  # type: ignore[attr-defined]
    twice = cli("generate", "--db", str(db), "--server-url", "http://a:1", "--server-url", "http://b:1")
    assert twice.exit_code == 2 and "--backend openai" in twice.output  # type: ignore[attr-defined]
    assert base_url("http://localhost:8000") == "http://localhost:8000/v1"
    assert base_url("http://localhost:11434/v1/") == "http://localhost:11434/v1"


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_pays_for_no_stored_answer(tmp_path: Path) -> None:
    n, concurrency = 40, 4
    pairs = toy_pairs(n)
    db = toy_db(tmp_path / "kill.db", pairs)
    key_of = {request_key(MODEL, THOUGHT.messages(premise=p, hypothesis=h)): p for p, h, _ in pairs}
    extra = ("--backend", "openai", "--model", MODEL)
    with FakeOpenAI(latency_s=0.1) as server:
        first = generation_process("generate", db, server.url, "unused", tmp_path, concurrency, *extra)
        sigkill_when(first, lambda: stored_count(db, "thought") >= 10, "the first run stored fewer than 10 answers")
        phase1 = server.snapshot()
        stored = {r["premise"] for r in rows(db, "SELECT e.premise FROM generations g JOIN examples e "
                                                 "ON e.id = g.example_id")}
        assert 10 <= len(stored) < n
        second = generation_process("generate", db, server.url, "unused", tmp_path, concurrency, *extra)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 0, err.decode()
        phase2 = server.snapshot()[len(phase1):]
    assert rows(db, "SELECT count(*) AS n, count(DISTINCT example_id) AS e FROM generations")[0][:] == (n, n)
    assert [r for r in phase2 if key_of[r.key] in stored] == []  # no stored answer asked for again
    twice = {k for k, c in Counter(r.key for r in phase1 + phase2 if r.status == 200).items() if c > 1}
    assert len(twice) <= concurrency and not any(key_of[k] in stored for k in twice)


def test_the_config_file_chooses_the_backend_and_its_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.api.endpoint import ClientConfigError
    from pipeline.settings import load_settings

    config = tmp_path / "config.toml"
    monkeypatch.setenv("NLISTRAL_CONFIG", str(config))
    config.write_text('[api]\nbackend = "openai"\nserver_url = ["http://gpu0:8000/v1", "http://gpu1:8000/v1"]\n')
    opts = stage_options("judge", load_settings())
    assert opts.backend == "openai" and [e.label for e in opts.endpoints] == ["http://gpu0:8000/v1",
                                                                              "http://gpu1:8000/v1"]
    assert opts.endpoint is not None and opts.endpoint.api_key is None  # a local server needs no key
    config.write_text('[api]\nbackend = "bogus"\n')
    with pytest.raises(ClientConfigError, match=r"\[api\] backend"):
        stage_options("judge", load_settings())
