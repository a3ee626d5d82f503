"""The built-in demo data: what a newcomer sees first must exercise every part of the app."""
from __future__ import annotations

from db import open_db


def test_demo_database_has_what_the_app_needs(demo_db_path):
    db = open_db(demo_db_path)
    q = lambda sql: db.execute(sql).fetchall()
    assert q("SELECT count(*) FROM examples")[0][0] >= 40
    labels = dict(q("SELECT gold_label, count(*) FROM examples GROUP BY 1"))
    assert set(labels) == {0, 1} and min(labels.values()) >= 15
    assert q("SELECT count(*) FROM examples WHERE thought_id IS NULL") == [(0,)]
    wrong = q("SELECT count(*) FROM examples WHERE thought_label != gold_label")[0][0]
    total = q("SELECT count(*) FROM examples")[0][0]
    assert 0.25 <= wrong / total <= 0.40
    assert q("SELECT count(*) FROM examples WHERE thought_label != gold_label AND reflection_id IS NULL") == [(0,)]
    assert q("SELECT count(*) FROM generations WHERE parse_status = 'failed'") == [(1,)]
    assert q("SELECT count(*) FROM generations WHERE flags LIKE '%label_not_gold%'") == [(1,)]
    markup = q("SELECT premise || hypothesis FROM examples WHERE premise LIKE '%[bold]%' OR hypothesis LIKE '%[bold]%'")
    assert len(markup) == 1 and "[link=" in markup[0][0]
    assert q("SELECT count(*) FROM generations WHERE thought_process LIKE '%\\x1b%'")[0][0] >= 1
    assert all("\x1b" not in (t or "") for (t,) in q("SELECT thought_process FROM generations"))
    models = {m for (m,) in q("SELECT DISTINCT model FROM generations")}
    assert models == {"demo/thought-writer", "demo/reflection-writer"}


# --- `nlistral demo` keeps the review; only --fresh rebuilds, and says what it deletes ---------------

def _demo(*args: str):
    from typer.testing import CliRunner

    from pipeline.cli import app

    return CliRunner().invoke(app, ["demo", "--no-tui", *args])


def test_running_demo_again_keeps_every_decision_and_fresh_says_what_it_deletes(tmp_path):
    from db import reviews
    from exports import SftOptions, write_to

    path = tmp_path / "demo.db"
    first = _demo("--db", str(path))
    assert first.exit_code == 0 and f"Built the demo database at {path}" in first.output
    db = open_db(path)
    ids = [i for (i,) in db.execute("SELECT id FROM examples ORDER BY id LIMIT 3")]
    reviews.record(db, "accept", ids[:2], reviewer="ana")
    reviews.record(db, "reject", ids[2:], reviewer="ana")
    write_to(db, SftOptions(ablation="curated"), out=tmp_path / "sft.jsonl")
    db.conn.close()

    again = _demo("--db", str(path))  # the README's "Try it" command, run a second time
    assert again.exit_code == 0, again.output
    assert "as it is (3 review decisions (3 examples decided), 1 export record, 1 run kept)" in again.output
    assert "--fresh" in again.output
    db = open_db(path)
    assert dict(db.execute("SELECT status, count(*) FROM review_state GROUP BY 1").fetchall()) == {
        "accepted": 2, "rejected": 1}
    assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == 45  # nothing added twice
    db.conn.close()

    fresh = _demo("--db", str(path), "--fresh")
    assert fresh.exit_code == 0, fresh.output
    assert (f"Rebuilt the demo database at {path}; deleted 3 review decisions (3 examples decided), "
            "1 export record, 1 run.") in " ".join(fresh.output.split())
    db = open_db(path)
    assert db.execute("SELECT count(*) FROM review_events").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM exports").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == 45
    db.conn.close()
    assert (tmp_path / "sft.jsonl").exists()  # the exported file itself is the user's: kept


def test_demo_fills_an_empty_store_and_refuses_one_with_other_data(tmp_path):
    empty = tmp_path / "empty.db"
    open_db(empty).conn.close()  # a store created but never filled
    result = _demo("--db", str(empty))
    assert result.exit_code == 0 and "Built the demo database" in result.output
    assert open_db(empty).execute("SELECT count(*) FROM examples").fetchone()[0] == 45

    data = tmp_path / "mine.csv"
    data.write_text("premise,hypothesis,label\nA,B,1\n")
    real = tmp_path / "real.db"
    store = open_db(real)
    from pipeline.importing import import_file

    import_file(store, data)
    store.conn.close()
    for extra in ((), ("--fresh",)):
        refused = _demo("--db", str(real), *extra)
        assert refused.exit_code == 1, refused.output
        assert "1 examples that are not demo data" in refused.output and "nlistral tui --db" in refused.output
    assert open_db(real).execute("SELECT count(*) FROM examples").fetchone()[0] == 1
