"""Resume after SIGKILL: `nlistral generate` killed mid-run, then re-run, pays for no stored answer twice."""
from __future__ import annotations

import csv
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from fake_mistral import FakeMistral, request_key, toy_pairs
from kill import generation_process, sigkill_when, stored_count

from db import open_db
from pipeline.importing import import_file
from pipeline.prompts import THOUGHT

KEY = "sk-test-kill-b7e2046d11"
MODEL = "ministral-8b-latest"
N, CONCURRENCY = 60, 6


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    pairs = toy_pairs(N)
    data = tmp_path / "toy_train.csv"
    with data.open("w", newline="") as fh:
        csv.writer(fh).writerows([("premise", "hypothesis", "label"), *pairs])
    db_path = tmp_path / "kill.db"
    store = open_db(db_path)
    import_file(store, data)
    store.conn.close()
    key_of = {request_key(MODEL, THOUGHT.messages(premise=p, hypothesis=h)): (p, h) for p, h, _ in pairs}

    with FakeMistral(api_key=KEY, latency_s=0.2) as fake:
        first = generation_process("generate", db_path, fake.url, KEY, tmp_path, CONCURRENCY)
        sigkill_when(first, lambda: stored_count(db_path, "thought") >= 15, "the first run stored fewer than 15 answers")
        phase1 = fake.snapshot()

        conn = sqlite3.connect(db_path)
        stored_pairs = {(p, h) for p, h in conn.execute(
            "SELECT e.premise, e.hypothesis FROM generations g JOIN examples e ON e.id = g.example_id "
            "WHERE g.kind = 'thought'")}
        conn.close()
        assert 15 <= len(stored_pairs) < N

        second = generation_process("generate", db_path, fake.url, KEY, tmp_path, CONCURRENCY)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 0, err.decode()
        phase2 = fake.snapshot()[len(phase1):]

    # Every example has exactly one thought; no key twice.
    conn = sqlite3.connect(db_path)
    per_example = Counter(r[0] for r in conn.execute("SELECT example_id FROM generations WHERE kind = 'thought'"))
    assert len(per_example) == N and set(per_example.values()) == {1}
    assert conn.execute("SELECT count(DISTINCT dedupe_key) FROM generations").fetchone()[0] == N
    conn.close()
    # The re-run never asked again for an answer that was stored.
    resent = [r for r in phase2 if key_of[r.key] in stored_pairs]
    assert resent == []
    # Only requests in flight at the kill (answered, not yet stored) may have been paid twice.
    answered_twice = {k for k, n in Counter(r.key for r in phase1 + phase2 if r.status == 200).items() if n > 1}
    assert len(answered_twice) <= CONCURRENCY
    assert all(key_of[k] not in stored_pairs for k in answered_twice)
