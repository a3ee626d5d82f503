"""`nlistral stats` with several reviewers: standing decisions by reviewer and by reason (tables and --json)."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from db import open_db
from db.reviews import record, undo
from pipeline.cli import app

runner = CliRunner()


def test_reasons_and_reviewers_in_stats(demo_db_path):
    db = open_db(demo_db_path)
    record(db, "reject", [1, 2], reviewer="ada", payload={"reason": "gold is wrong", "comment": "see premise"})
    record(db, "reject", [1], reviewer="bob", payload={"reason": "[red]formatting"})
    record(db, "accept", [3], reviewer="bob")
    record(db, "flag_bias", [4], reviewer="bob", payload={"category": "ambiguous", "reason": "ambiguous pair"})
    record(db, "reject", [5], reviewer="cy", payload={"reason": "gold is wrong"})
    undo(db, reviewer="cy")  # no longer stands: neither counted nor listed
    db.conn.close()
    out = json.loads(runner.invoke(app, ["stats", "--json", "--db", str(demo_db_path)]).output)
    assert out["reasons"] == {"gold is wrong": 2, "[red]formatting": 1, "ambiguous pair": 1}
    assert out["reviewers"] == [
        {"reviewer": "ada", "decisions": 2, "accept": 0, "reject": 2, "edit": 0, "flag": 0},
        {"reviewer": "bob", "decisions": 3, "accept": 1, "reject": 1, "edit": 0, "flag": 1},
    ]
    assert out["review"]["status"]["rejected"] == 2  # the existing keys stay as they were
    text = runner.invoke(app, ["stats", "--db", str(demo_db_path)]).output
    assert "Decisions by reviewer" in text and "Reasons given" in text and "[red]formatting" in text


def test_a_store_nobody_decided_on_has_no_team_tables(demo_db_path):
    out = json.loads(runner.invoke(app, ["stats", "--json", "--db", str(demo_db_path)]).output)
    assert out["reasons"] == {} and out["reviewers"] == []
    text = runner.invoke(app, ["stats", "--db", str(demo_db_path)]).output
    assert "Decisions by reviewer" not in text and "Reasons given" not in text
