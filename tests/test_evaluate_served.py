"""`nlistral evaluate --backend openai`: the real `openai` SDK against a fake vLLM-like server, real SQLite."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from fake_mistral import request_key, toy_db, toy_pairs
from fake_openai import ACCEPTED, FakeOpenAI, evaluate_answer
from typer.testing import CliRunner

from db import open_db
from db.queues import QueueFilter
from db.queues import ids as queue_ids
from exports.formats import user_prompt
from pipeline.cli import app
from pipeline.evaluate.runner import EvalOptions, EvaluationError

MODEL = "nli-adapter"  # the LoRA module name a vLLM server would serve the adapter under
PAIRS = toy_pairs(5)  # gold 0, 1, 0, 1, 0
POISON = "Sorry, I cannot decide that."
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("keyless_env")


@pytest.fixture
def fake() -> FakeOpenAI:
    """A fake OpenAI-compatible server answering 3 of the 5 pairs right, one wrong and one with prose."""
    with FakeOpenAI(latency_s=0.002) as server:
        script(server)
        yield server


def script(server: FakeOpenAI, *, with_thought: bool = True) -> None:
    """Gold for pairs 0-2, the other label for pair 3, a poison reply for pair 4."""
    labels = [gold for _, _, gold in PAIRS[:3]] + [1 - PAIRS[3][2]]
    replies = {("evaluate", p[0]): evaluate_answer(label, with_thought=with_thought) for p, label in zip(PAIRS, labels)}
    server.script_replies({**replies, ("evaluate", PAIRS[4][0]): POISON})


def evaluate(db: Path, *urls: str, extra: tuple[str, ...] = ()) -> object:
    """`nlistral evaluate --backend openai` against these servers."""
    servers = [arg for url in urls for arg in ("--server-url", url)]
    return runner.invoke(app, ["evaluate", "--db", str(db), "--backend", "openai", *servers, "--model", MODEL,
                               "--max-new-tokens", "96", *extra])


def predictions(db: Path) -> list[sqlite3.Row]:
    """The stored predictions, by example id."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute("SELECT g.*, e.premise FROM generations g JOIN examples e ON e.id = g.example_id "
                                 "WHERE g.kind = 'prediction' ORDER BY g.example_id"))
    finally:
        conn.close()


def test_predictions_metrics_and_model_errors_match_a_hand_count(fake: FakeOpenAI, tmp_path: Path) -> None:
    db = toy_db(tmp_path / "e.db", PAIRS)
    result = evaluate(db, fake.url, extra=("--json", "m.json"))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "predictions stored under run" in result.output  # type: ignore[attr-defined]
    # Requests: one user message, the training prompt, greedy, max_tokens as asked, nothing vLLM would refuse.
    assert fake.rejected == [] and len(fake.bodies) == 5
    sent = {body["messages"][0]["content"] for body in fake.bodies}
    assert sent == {user_prompt(p, h, with_thought=True) for p, h, _ in PAIRS}
    for body in fake.bodies:
        assert set(body) <= ACCEPTED and "response_format" not in body
        assert (body["model"], body["temperature"], body["max_tokens"]) == (MODEL, 0, 96)
        assert [m["role"] for m in body["messages"]] == ["user"]
    rows = predictions(db)
    assert [r["predicted_label"] for r in rows] == [0, 1, 0, 0, None]
    assert [r["parse_status"] for r in rows][4] == "failed" and rows[4]["raw_response"] == POISON
    assert all(r["parse_status"] == "ok" for r in rows[:4])
    for r in rows:
        params = json.loads(r["params"])
        assert (r["model"], r["backend"], params["endpoint"], params["decoding"]) == (MODEL, "openai", fake.url, "greedy")
        assert r["tokens_in"] > 0 and r["tokens_out"] > 0 and r["latency_ms"] > 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    m = metrics["metrics"]
    assert (m["accuracy"], m["precision"], m["recall"], m["parse_failure_rate"]) == (0.6, 1.0, 0.5, 0.2)
    assert metrics["parse_status"] == {"ok": 4, "repaired": 0, "failed": 1}
    assert metrics["model"] == MODEL
    config = metrics["config"]
    assert (config["backend"], config["servers"], config["model"]) == ("openai", [fake.url], MODEL)
    store = open_db(db)
    try:
        run_config = json.loads(store.execute("SELECT config FROM runs WHERE kind = 'evaluate'").fetchone()[0])
        assert (run_config["backend"], run_config["servers"], run_config["model"]) == ("openai", [fake.url], MODEL)
        wrong = [r["example_id"] for r in rows[3:]]
        assert queue_ids(store, QueueFilter(queue="model_errors")) == wrong
    finally:
        store.conn.close()


def test_no_thought_sends_the_label_only_prompt(fake: FakeOpenAI, tmp_path: Path) -> None:
    script(fake, with_thought=False)
    db = toy_db(tmp_path / "e.db", PAIRS)
    result = evaluate(db, fake.url, extra=("--no-thought", "--limit", "4"))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert {b["messages"][0]["content"] for b in fake.bodies} == {user_prompt(p, h, with_thought=False)
                                                                 for p, h, _ in PAIRS[:4]}
    assert [r["predicted_label"] for r in predictions(db)] == [0, 1, 0, 0]


def test_resume_asks_only_for_what_is_not_stored(fake: FakeOpenAI, tmp_path: Path) -> None:
    db = toy_db(tmp_path / "e.db", PAIRS)
    fake.config.script.extend(["ok", "ok", "400"])  # the third request is refused: the run fails there
    first = evaluate(db, fake.url, extra=("--max-concurrency", "1"))
    assert first.exit_code != 0 and "--resume" in first.output  # type: ignore[attr-defined]
    assert len(predictions(db)) == 2
    asked = len(fake.snapshot())
    again = evaluate(db, fake.url, extra=("--max-concurrency", "1", "--resume"))
    assert again.exit_code == 0, again.output  # type: ignore[attr-defined]
    assert "Resuming evaluate run" in again.output  # type: ignore[attr-defined]
    key = lambda i: request_key(MODEL, [{"role": "user", "content": user_prompt(*PAIRS[i][:2])}])
    assert {r.key for r in fake.snapshot()[asked:]} <= {key(2), key(3), key(4)}  # nothing stored is asked again
    answered = fake.ok_by_key()  # an answer in flight when the run failed may have come and gone unstored
    assert [answered[key(i)] for i in range(2)] == [1, 1] and all(answered[key(i)] for i in range(2, 5))
    rows = predictions(db)
    assert len(rows) == 5 and len({r["run_id"] for r in rows}) == 1
    before = len(fake.snapshot())
    assert evaluate(db, fake.url, extra=("--resume",)).exit_code == 0  # type: ignore[attr-defined]
    assert len(fake.snapshot()) == before + 5  # a completed run is not resumed: a new run asks again
    first_run, second_run = sorted({str(r["run_id"]) for r in predictions(db)})
    compared = runner.invoke(app, ["compare", first_run, second_run, "--db", str(db), "--json"])
    assert compared.exit_code == 0 and MODEL in compared.output, compared.output  # type: ignore[attr-defined]


def test_requests_are_spread_over_every_server(tmp_path: Path) -> None:
    pairs = toy_pairs(12)
    db = toy_db(tmp_path / "e.db", pairs)
    with FakeOpenAI(latency_s=0.02) as one, FakeOpenAI(latency_s=0.02) as two:
        result = evaluate(db, one.url, two.url, extra=("--max-concurrency", "4", "--json", "m.json"))
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
        assert len(one.snapshot()) > 0 and len(two.snapshot()) > 0
        assert len(one.snapshot()) + len(two.snapshot()) == 12
        rows = predictions(db)
        assert {json.loads(r["params"])["endpoint"] for r in rows} == {one.url, two.url}
        config = json.loads((tmp_path / "m.json").read_text())["config"]
        assert config["servers"] == sorted([one.url, two.url])


@pytest.mark.parametrize(("extra", "message"), [
    (("--adapter", "runs/a/adapter"), "lives on the server"),
    (("--shuffle-thoughts",), "--shuffle-thoughts"),
    (("--batch-size", "8"), "--max-concurrency"),
])
def test_in_process_only_options_are_refused(tmp_path: Path, extra: tuple[str, ...], message: str) -> None:
    db = toy_db(tmp_path / "e.db", PAIRS)
    result = evaluate(db, "http://127.0.0.1:9", extra=extra)
    assert result.exit_code == 2 and message in " ".join(result.output.split())  # type: ignore[attr-defined]


def test_options_need_a_model_and_a_server_and_keep_the_in_process_identity() -> None:
    with pytest.raises(EvaluationError, match="--model NAME"):
        EvalOptions(backend="openai", servers=("http://localhost:8000/v1",))
    with pytest.raises(EvaluationError, match="--server-url"):
        EvalOptions(backend="openai", model=MODEL)
    with pytest.raises(EvaluationError, match="--backend openai"):
        EvalOptions(adapter="a", model=MODEL)
    assert not {"backend", "servers", "model", "rps"} & set(EvalOptions(adapter="a").identity())
