"""The built-in demo data: what a newcomer sees first must exercise every part of the app."""
from __future__ import annotations

from db import open_db


def test_demo_database_has_what_the_app_needs(demo_db_path):
    db = open_db(demo_db_path)
    q = lambda sql: db.execute(sql).fetchall()  # noqa: E731
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
