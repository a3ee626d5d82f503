"""Generate, reflect and judge end to end: real SDK, real sockets, real SQLite, the fake server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from fake_mistral import TEST_KEY, FakeMistral, client_settings, request_key, toy_db, toy_pairs
from typer.testing import CliRunner

from db import open_db
from db.generations import generations_for
from db.runs import get_run, list_runs
from pipeline.api.client import ApiError, AuthError, ClientConfigError
from pipeline.cli import app
from pipeline.generate import (
    GenerateError,
    Selection,
    estimate,
    reflect_one,
    run_stage,
    stage_options,
)
from pipeline.prompts import JUDGE, REFLECTION, THOUGHT
from pipeline.settings import Settings

KEY = TEST_KEY
MODEL = "ministral-8b-latest"
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("api_env")


def make_db(path: Path, n: int = 12, name: str = "toy_train", pairs: list | None = None) -> Path:
    """A database with n toy examples, imported from a CSV as a user would."""
    return toy_db(path, pairs or toy_pairs(n), name)


def thoughts(path: Path) -> list[dict]:
    db = open_db(path)
    rows = list(db.query("SELECT * FROM generations WHERE kind = 'thought' ORDER BY example_id, id"))
    db.conn.close()
    return rows


def write_config(url: str, **api: object) -> Path:
    lines = ["[api]", f'server_url = "{url}"'] + [f"{k} = {json.dumps(v)}" for k, v in api.items()]
    path = Path(os.environ["NLISTRAL_CONFIG"])
    path.write_text("\n".join(lines) + "\n")
    return path


def test_generate_stores_each_thought_once_and_a_rerun_sends_nothing(fake: FakeMistral, tmp_path: Path) -> None:
    path = make_db(tmp_path / "g.db")
    opts = stage_options("thought", client_settings(fake.url))
    result = run_stage(path, opts)
    assert result.status == "completed" and result.counters.stored == 12
    rows = thoughts(path)
    assert len(rows) == 12 and len({r["example_id"] for r in rows}) == 12
    row = rows[0]
    assert row["model"] == MODEL and row["backend"] == "mistral" and row["prompt_version"] == THOUGHT.version
    assert row["run_id"] == result.run_id and row["parse_status"] == "ok" and row["predicted_label"] in (0, 1)
    assert row["tokens_in"] > 0 and row["tokens_out"] > 0 and row["latency_ms"] > 0 and row["cost_usd"] > 0
    assert json.loads(row["params"])["endpoint"] == fake.url
    run = get_run(open_db(path), result.run_id)
    assert run.kind == "generate" and run.status == "completed"
    assert run.config["model"] == MODEL and run.config["prompt_version"] == THOUGHT.version
    summary = run.metrics
    assert summary["answers"] == 12 and summary["against_gold"]["n"] == 12
    assert summary["against_gold"]["accuracy"] is not None

    sent = len(fake.snapshot())
    again = run_stage(path, opts)
    assert again.counters.total == 0 and len(fake.snapshot()) == sent  # never pays twice
    assert fake.duplicates() == 0
    # A new prompt version or model is new work; the old answers stay.
    other = run_stage(path, stage_options("thought", client_settings(fake.url), model="mistral-small-latest"))
    assert other.counters.stored == 12 and len(thoughts(path)) == 24


def test_parse_failures_are_stored_and_only_resent_when_asked(fake: FakeMistral, tmp_path: Path) -> None:
    path = make_db(tmp_path / "f.db", n=6)
    fake.config.script.extend(["malformed", "wrong_schema", "bad_body"])
    opts = stage_options("thought", client_settings(fake.url, max_concurrency=1))
    result = run_stage(path, opts)
    assert result.counters.parse["failed"] == 3 and result.summary["parse_failed"] == 3
    failed = [r for r in thoughts(path) if r["parse_status"] == "failed"]
    assert len(failed) == 3
    for row in failed:
        assert row["predicted_label"] is None and row["raw_response"]  # never a default label
        assert json.loads(row["params"])["parse_problems"]
    assert "cut off at max_tokens" in " ".join(json.loads(failed[0]["params"])["parse_problems"])
    assert "not JSON" in failed[2]["raw_response"]  # the body that was not a completion, kept as is
    db = open_db(path)
    assert db.execute("SELECT count(*) FROM examples WHERE parse_failed = 1").fetchone()[0] == 3
    db.conn.close()

    sent = len(fake.snapshot())
    assert run_stage(path, opts).counters.total == 0 and len(fake.snapshot()) == sent
    retry = run_stage(path, stage_options("thought", client_settings(fake.url), retry_failed=True))
    assert retry.counters.stored == 3 and len(fake.snapshot()) == sent + 3
    rows = thoughts(path)
    assert len(rows) == 9  # the failed versions are kept beside the new ones
    assert run_stage(path, stage_options("thought", client_settings(fake.url), retry_failed=True)).counters.total == 0


def test_requests_given_up_are_not_stored_and_are_sent_again_next_run(fake: FakeMistral, tmp_path: Path) -> None:
    path = make_db(tmp_path / "a.db", n=4)
    fake.config.script.extend(["500"] * 2)  # one example: 1 try + 1 retry, both 500
    result = run_stage(path, stage_options("thought", client_settings(fake.url, max_concurrency=1, max_retries=1)))
    assert result.counters.failures == Counter({"server_error": 1}) and result.counters.stored == 3
    assert result.counters.requests == 5
    assert len(thoughts(path)) == 3
    assert run_stage(path, stage_options("thought", client_settings(fake.url))).counters.stored == 1
    assert len(thoughts(path)) == 4 and fake.duplicates() == 0


def test_reflect_only_mismatches_and_flag_labels_that_miss_gold(fake: FakeMistral, tmp_path: Path) -> None:
    path = make_db(tmp_path / "r.db", n=16)
    fake.config.thought_error_rate = 0.5
    run_stage(path, stage_options("thought", client_settings(fake.url)))
    db = open_db(path)
    mismatched = {r["id"]: r["thought_id"] for r in db.query(
        "SELECT id, thought_id FROM examples WHERE thought_label != gold_label")}
    assert mismatched
    fake.config.reflection_error_rate = 1.0  # every reflection keeps the wrong label
    result = run_stage(path, stage_options("reflection", client_settings(fake.url)))
    assert result.counters.stored == len(mismatched)
    rows = list(db.query("SELECT * FROM generations WHERE kind = 'reflection'"))
    assert {r["example_id"]: r["parent_id"] for r in rows} == mismatched
    for row in rows:
        assert row["model"] == "mistral-small-latest" and row["prompt_version"] == REFLECTION.version
        assert "label_not_gold" in json.loads(row["flags"])  # flagged, not forced to gold
        assert row["error_analysis"] and row["thought_process"]
    assert result.summary["not_gold"] == len(mismatched) and result.summary["reached_gold"] == 0
    assert run_stage(path, stage_options("reflection", client_settings(fake.url))).counters.total == 0
    db.conn.close()


def test_judge_scores_thoughts_and_reflections(fake: FakeMistral, tmp_path: Path) -> None:
    path = make_db(tmp_path / "j.db", n=8)
    fake.config.thought_error_rate = 0.5
    run_stage(path, stage_options("thought", client_settings(fake.url)))
    run_stage(path, stage_options("reflection", client_settings(fake.url)))
    on_thoughts = run_stage(path, stage_options("judge", client_settings(fake.url)))
    on_reflections = run_stage(path, stage_options("judge", client_settings(fake.url), judge_target="reflection"))
    db = open_db(path)
    judged = list(db.query("SELECT j.*, p.kind AS parent_kind FROM generations j JOIN generations p "
                           "ON p.id = j.parent_id WHERE j.kind = 'judge'"))
    kinds = Counter(r["parent_kind"] for r in judged)
    assert kinds["thought"] == 8 and kinds["reflection"] == on_reflections.counters.stored > 0
    assert all(1 <= r["score"] <= 5 and r["rationale"] and r["prompt_version"] == JUDGE.version for r in judged)
    assert on_thoughts.summary["mean_score"] is not None
    assert [r.kind for r in list_runs(db)][:2] == ["judge", "judge"]
    db.conn.close()


def test_selection_by_dataset_ids_and_limit(fake: FakeMistral, tmp_path: Path) -> None:
    path = make_db(tmp_path / "s.db", n=10)
    make_db(path, name="other_dev", pairs=[("A cat naps.", "A cat rests.", 1)])
    db = open_db(path)
    ids = [r[0] for r in db.execute("SELECT id FROM examples WHERE dataset = 'toy' ORDER BY id")]
    db.conn.close()
    opts = stage_options("thought", client_settings(fake.url))
    assert run_stage(path, opts, Selection(dataset="other")).counters.stored == 1
    assert run_stage(path, opts, Selection(ids=(ids[0], ids[3]))).counters.stored == 2
    assert run_stage(path, opts, Selection(split="train", limit=3)).counters.stored == 3
    assert {r["example_id"] for r in thoughts(path)} >= {ids[0], ids[3]}
    assert estimate(path, opts).requests == 10 - 2 - 3


def test_reflect_one_makes_a_new_version_each_time(fake: FakeMistral, tmp_path: Path) -> None:
    path = make_db(tmp_path / "o.db", n=4)
    run_stage(path, stage_options("thought", client_settings(fake.url)))
    db = open_db(path)
    example_id = db.execute("SELECT min(id) FROM examples").fetchone()[0]
    thought_id = db.execute("SELECT thought_id FROM examples WHERE id = ?", [example_id]).fetchone()[0]
    first = reflect_one(path, example_id, settings=client_settings(fake.url))
    second = reflect_one(path, example_id, settings=client_settings(fake.url), model="mistral-medium-latest")
    assert first.kind == second.kind == "reflection" and first.id != second.id
    assert first.parent_id == second.parent_id == thought_id
    assert second.model == "mistral-medium-latest" and first.model == "mistral-small-latest"
    assert [g.id for g in generations_for(db, example_id, "reflection")] == [first.id, second.id]
    assert db.execute("SELECT reflection_id FROM examples WHERE id = ?", [example_id]).fetchone()[0] == second.id
    assert get_run(db, first.run_id).config["rerun"] is True
    db.conn.close()


def test_reflect_one_errors(fake: FakeMistral, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_db(tmp_path / "e.db", n=2)
    db = open_db(path)
    example_id = db.execute("SELECT min(id) FROM examples").fetchone()[0]
    db.conn.close()
    with pytest.raises(GenerateError, match="no thought yet"):
        reflect_one(path, example_id, settings=client_settings(fake.url))
    run_stage(path, stage_options("thought", client_settings(fake.url)))
    fake.config.rate_500 = 1.0
    with pytest.raises(ApiError) as caught:
        reflect_one(path, example_id, settings=client_settings(fake.url, max_retries=1))
    assert caught.value.kind == "server_error"
    monkeypatch.delenv("MISTRAL_API_KEY")
    with pytest.raises(ClientConfigError, match="MISTRAL_API_KEY"):
        reflect_one(path, example_id, settings=Settings())


def test_cli_dry_run_sends_nothing(fake: FakeMistral, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_db(tmp_path / "d.db", n=5)
    monkeypatch.delenv("MISTRAL_API_KEY")  # a dry run needs no key
    result = runner.invoke(app, ["generate", "--db", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["requests"] == 5 and data["tokens_in_estimate"] > 0 and data["cost_usd_estimate"] > 0
    text = runner.invoke(app, ["reflect", "--db", str(path), "--dry-run"])
    assert "0 requests" in text.output and text.exit_code == 0
    assert fake.snapshot() == []


def test_cli_generate_reflect_judge(fake: FakeMistral, tmp_path: Path) -> None:
    path = make_db(tmp_path / "c.db", n=6)
    fake.config.thought_error_rate = 0.5
    write_config(fake.url, rps=200.0, max_concurrency=4)
    for command in (["generate"], ["reflect"], ["judge", "--target", "reflection"]):
        result = runner.invoke(app, [*command, "--db", str(path), "--json"])
        assert result.exit_code == 0, result.output
        payload = json.loads(result.output[result.output.index("{"):])
        assert payload["status"] == "completed" and payload["run"]["failures"] == {}
    human = runner.invoke(app, ["generate", "--db", str(path), "--ids", "1-3"])
    assert "thought accuracy vs gold" in human.output and human.exit_code == 0
    assert runner.invoke(app, ["generate", "--db", str(path), "--ids", "3-1"]).exit_code == 2


def test_cli_auth_error_stops_the_run_and_the_key_is_nowhere(fake: FakeMistral, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    path = make_db(tmp_path / "k.db", n=30)
    write_config(fake.url, rps=50.0, max_concurrency=4)
    assert runner.invoke(app, ["generate", "--db", str(path), "--limit", "5"]).exit_code == 0
    revoked = "sk-revoked-3141592653"
    monkeypatch.setenv("MISTRAL_API_KEY", revoked)
    result = runner.invoke(app, ["generate", "--db", str(path)])
    assert result.exit_code == 2
    assert "MISTRAL_API_KEY" in result.output and "401" in result.output
    assert len([r for r in fake.snapshot() if r.status == 401]) <= 4  # stopped at once, not 25 failures
    db = open_db(path)
    run = list_runs(db, "generate")[0]
    assert run.status == "failed" and "MISTRAL_API_KEY" in run.error
    db.conn.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("k.db*"))  # the database, its WAL and SHM
    for key in (KEY, revoked):
        assert key.encode() not in stored
        assert key not in result.output and key not in caplog.text


def test_bad_requests_in_a_row_stop_the_run(fake: FakeMistral, tmp_path: Path) -> None:
    path = make_db(tmp_path / "b.db", n=20)
    fake.config.script.extend(["400"] * 20)
    with pytest.raises(GenerateError, match="rejected"):
        run_stage(path, stage_options("thought", client_settings(fake.url, max_concurrency=1)))
    assert len(fake.snapshot()) == 5


def test_auth_error_from_run_stage(fake: FakeMistral, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_db(tmp_path / "x.db", n=3)
    monkeypatch.setenv("MISTRAL_API_KEY", "sk-nope-000")
    with pytest.raises(AuthError):
        run_stage(path, stage_options("thought", client_settings(fake.url)))
    assert thoughts(path) == []


def test_fake_server_request_keys_match_our_prompts(fake: FakeMistral, tmp_path: Path) -> None:
    """The duplicate check in the kill test relies on this: one key per (model, prompt, pair)."""
    path = make_db(tmp_path / "q.db", n=3)
    run_stage(path, stage_options("thought", client_settings(fake.url)))
    premise, hypothesis, _ = toy_pairs(3)[0]
    assert request_key(MODEL, THOUGHT.messages(premise=premise, hypothesis=hypothesis)) in fake.ok_by_key()


def test_prompt_versions_follow_the_text_and_values_are_inserted_verbatim() -> None:
    from dataclasses import replace

    assert len({THOUGHT.version, REFLECTION.version, JUDGE.version}) == 3
    assert replace(THOUGHT, system=THOUGHT.system + " ").version != THOUGHT.version
    assert replace(THOUGHT).version == THOUGHT.version
    user = THOUGHT.messages(premise="A {weird} premise with {braces}", hypothesis="It is {0}.")[1]["content"]
    assert user == "Premise: A {weird} premise with {braces}\nHypothesis: It is {0}."
    for prompt, keys in ((THOUGHT, ("thought_process", "predicted_label")),
                         (REFLECTION, ("error_analysis", "improved_thought_process", "predicted_label")),
                         (JUDGE, ("score", "rationale"))):
        assert all(f'"{k}"' in prompt.system for k in keys)


def test_answers_wait_for_a_write_lock_held_past_the_busy_timeout(fake: FakeMistral, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A large import in another process holds the write lock longer than the busy timeout: the paid
    answers wait and are stored, none lost, none asked for twice."""
    import sqlite3
    import threading
    import time

    from db import connection

    path = make_db(tmp_path / "g.db")
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr("db.tx.LOCKED_WAIT_S", 30)

    def hold_the_lock() -> None:
        other = sqlite3.connect(path, isolation_level=None, timeout=30)
        while not other.execute("SELECT count(*) FROM runs WHERE kind = 'generate'").fetchone()[0]:
            time.sleep(0.01)
        other.execute("BEGIN IMMEDIATE")
        time.sleep(1.0)
        other.execute("COMMIT")

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    seen_waiting: list[bool] = []
    result = run_stage(path, stage_options("thought", client_settings(fake.url)),
                       on_progress=lambda c: seen_waiting.append(c.waiting_for_store))
    holder.join()
    assert result.status == "completed" and result.counters.stored == 12
    # The progress bar was told while answers waited, and is told when they no longer do.
    assert True in seen_waiting and seen_waiting[-1] is False and result.counters.store_waits >= 1
    assert len(thoughts(path)) == 12 and fake.duplicates() == 0 and len(fake.snapshot()) == 12


LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[3] == "on-request":
    sys.stdin.readline()
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def _hold_write_lock(path: Path, seconds: float, when: str = "now") -> subprocess.Popen[str]:
    """A real process holding the store's write lock for seconds, now or once told (a line on stdin)."""
    proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(path), str(seconds), when],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if when == "now":
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_cli_run_start_waits_for_a_write_lock_held_past_the_busy_timeout(fake: FakeMistral, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holds the write lock past the busy timeout when the run starts: generate waits,
    says so, and completes (it crashed with 'database is locked')."""
    from db import connection

    path = make_db(tmp_path / "w.db", n=4)
    write_config(fake.url, rps=200.0)
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 200)
    holder = _hold_write_lock(path, 1.5)
    try:
        result = runner.invoke(app, ["generate", "--db", str(path)])
    finally:
        holder.wait(10)
    assert result.exit_code == 0, result.output
    assert "Waiting: another process holds the write lock" in result.output and "the run starts" in result.output
    assert len(thoughts(path)) == 4 and list_runs(open_db(path), "generate")[0].status == "completed"


def test_run_finish_waits_for_a_write_lock_held_past_the_busy_timeout(fake: FakeMistral, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from db import connection

    path = make_db(tmp_path / "w.db", n=3)
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 200)
    holder = _hold_write_lock(path, 1.5, when="on-request")
    assert holder.stdin is not None and holder.stdout is not None

    def progress(counters) -> None:  # every answer stored: the lock is taken before the run records its end
        if counters.finished == counters.total and not holder.stdin.closed:
            holder.stdin.write("take it\n")
            holder.stdin.close()
            assert holder.stdout.readline().strip() == "held"

    told: list[str] = []
    try:
        result = run_stage(path, stage_options("thought", client_settings(fake.url, max_concurrency=1)),
                           on_progress=progress, notify=told.append)
    finally:
        holder.wait(10)
    assert result.status == "completed" and result.counters.stored == 3
    assert len(told) == 1 and f"run {result.run_id} is recorded as completed" in told[0]
    assert get_run(open_db(path), result.run_id).status == "completed"


def test_cli_every_request_failing_is_a_failed_run(tmp_path: Path) -> None:
    """Server down (a closed port) or answering 500 to everything: exit 1, run failed, the reason and
    what to check (it exited 0 with a completed run)."""
    path = make_db(tmp_path / "down.db", n=3)
    with FakeMistral() as gone:
        closed = gone.url  # nothing listens there any more
    with FakeMistral(api_key=KEY, rate_500=1.0) as failing:
        for url, check in ((closed, "is running and reachable"), (failing.url, "answered with errors")):
            write_config(url, rps=200.0, max_retries=0)
            result = runner.invoke(app, ["generate", "--db", str(path)])
            assert result.exit_code == 1, result.output
            assert "every request failed (3 given up" in result.output and check in result.output
            run = list_runs(open_db(path), "generate")[0]
            assert run.status == "failed" and "nothing was stored" in run.error and check in run.error
        assert len(failing.snapshot()) == 3
    assert thoughts(path) == []


def test_cli_some_requests_failing_completes_and_says_how_many(fake: FakeMistral, tmp_path: Path) -> None:
    path = make_db(tmp_path / "some.db", n=6)
    write_config(fake.url, rps=200.0, max_retries=0, max_concurrency=1)
    fake.config.script.extend(["500", "500"])
    result = runner.invoke(app, ["generate", "--db", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 of 6 requests failed and were not stored" in result.output
    assert list_runs(open_db(path), "generate")[0].status == "completed" and len(thoughts(path)) == 4
