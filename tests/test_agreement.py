"""`nlistral agreement`: Cohen's kappa per pair and Krippendorff's alpha, checked against worked examples."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import open_db
from db.reviews import record, undo
from pipeline.agreement import agreement_report, alpha, kappa
from pipeline.cli import app
from pipeline.importing import import_file

runner = CliRunner()


def _store(tmp_path: Path, n: int) -> Path:
    data = tmp_path / "pairs.csv"
    data.write_text("premise,hypothesis,label\n" + "".join(f"P{i}.,H{i}.,{i % 2}\n" for i in range(n)))
    path = tmp_path / "team.db"
    db = open_db(path)
    import_file(db, data)
    db.conn.close()
    return path


def _agreement(path: Path) -> dict:
    result = runner.invoke(app, ["agreement", "--json", "--db", str(path)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_kappa_of_the_classic_two_by_two_table_through_the_command(tmp_path):
    # 50 items: both yes 20, both no 15, A yes / B no 5, A no / B yes 10 -> p_o 0.70, p_e 0.50, kappa 0.40.
    # Krippendorff's alpha on the same data: D_o = 30/100, D_e = 2*55*45/(100*99) = 0.5 -> alpha 0.40.
    path = _store(tmp_path, 50)
    db = open_db(path)
    ids = [r[0] for r in db.execute("SELECT id FROM examples ORDER BY id")]
    yes_yes, no_no, yes_no, no_yes = ids[:20], ids[20:35], ids[35:40], ids[40:50]
    record(db, "accept", yes_yes + yes_no, reviewer="ada", seconds_spent=4.0)
    record(db, "reject", no_no + no_yes, reviewer="ada", payload={"reason": "gold is wrong"}, seconds_spent=2.0)
    record(db, "accept", yes_yes + no_yes, reviewer="bob")
    record(db, "reject", no_no + yes_no, reviewer="bob")
    db.conn.close()
    out = _agreement(path)
    [pair] = out["pairs"]
    assert (pair["a"], pair["b"], pair["shared"]) == ("ada", "bob", 50)
    assert pair["agreement"] == pytest.approx(0.70) and pair["kappa"] == pytest.approx(0.40)
    assert out["alpha"] == pytest.approx(0.40)
    # nobody flagged or relabelled: every shared example is "none" for both, so kappa and alpha are undefined
    assert out["flags"]["pairs"][0]["shared"] == 50 and out["flags"]["pairs"][0]["kappa"] is None
    assert out["flags"]["alpha"] is None and out["relabels"]["alpha"] is None
    by_name = {r["reviewer"]: r for r in out["reviewers"]}
    assert by_name["ada"]["decisions"] == 50 and by_name["ada"]["accept_rate"] == pytest.approx(25 / 50)
    assert by_name["ada"]["median_seconds"] == pytest.approx(3.0)  # 25 at 4 s, 25 at 2 s
    assert by_name["bob"]["accept_rate"] == pytest.approx(30 / 50) and by_name["bob"]["median_seconds"] is None


def test_alpha_of_krippendorffs_published_reliability_data():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12 units, nominal alpha 0.743.
    rows = {"A": "1 2 3 3 2 1 4 1 2 . . .", "B": "1 2 3 3 2 2 4 1 2 5 . 3",
            "C": ". 3 3 3 2 3 4 2 2 5 1 .", "D": "1 2 3 3 2 4 4 1 2 5 1 ."}
    units: dict[int, dict[str, str]] = {}
    for coder, values in rows.items():
        for unit, value in enumerate(values.split()):
            if value != ".":
                units.setdefault(unit, {})[coder] = value
    assert round(alpha({u: r for u, r in units.items() if len(r) > 1}), 3) == 0.743


def test_kappa_is_undefined_only_when_both_used_one_and_the_same_category():
    assert kappa(["accept"] * 3, ["accept"] * 3) is None
    assert kappa(["accept"] * 3, ["reject"] * 3) == 0.0  # p_o 0, p_e 0: defined
    assert kappa(["accept", "reject"], ["accept", "reject"]) == 1.0


def test_flags_relabels_undo_and_three_reviewers(demo_db_path):
    db = open_db(demo_db_path)
    record(db, "accept", [1, 2, 3], reviewer="ada")
    record(db, "accept", [1, 2], reviewer="bob")
    record(db, "reject", [3], reviewer="bob")
    record(db, "accept", [3], reviewer="cy")
    record(db, "reject", [1], reviewer="cy")
    undo(db, reviewer="cy")  # cy's reject of 1 no longer stands: cy shares only example 3
    record(db, "flag_bias", [2], reviewer="ada", payload={"category": "gold_wrong"})
    record(db, "flag_bias", [2], reviewer="bob", payload={"category": "ambiguous"})
    record(db, "flag_bias", [1], reviewer="bob", payload={"category": "gold_wrong"})
    record(db, "unflag_bias", [1], reviewer="bob")  # taken back: "none", as ada's
    record(db, "relabel", [1, 3], reviewer="ada", payload={"label": 0})
    record(db, "relabel", [1], reviewer="bob", payload={"label": 0})
    report = agreement_report(db).as_dict()
    db.conn.close()
    pairs = {(p["a"], p["b"]): p for p in report["pairs"]}
    # ada: 1 accept, 2 flag, 3 accept; bob: 1 accept, 2 flag, 3 reject; cy: 3 accept
    assert pairs["ada", "bob"]["shared"] == 3 and pairs["ada", "bob"]["agreement"] == pytest.approx(2 / 3)
    assert pairs["ada", "cy"]["shared"] == 1 and pairs["ada", "cy"]["kappa"] is None
    assert pairs["bob", "cy"]["agreement"] == 0.0
    flags = {(p["a"], p["b"]): p for p in report["flags"]["pairs"]}
    assert flags["ada", "bob"]["shared"] == 3 and flags["ada", "bob"]["agreement"] == pytest.approx(2 / 3)
    relabels = {(p["a"], p["b"]): p for p in report["relabels"]["pairs"]}
    # ada 0, none, 0; bob 0, none, none
    assert relabels["ada", "bob"]["agreement"] == pytest.approx(2 / 3)
    assert relabels["ada", "cy"]["agreement"] == 0.0  # example 3: ada 0, cy none
    assert math.isfinite(report["alpha"]) and report["alpha"] < 1
    assert [r["reviewer"] for r in report["reviewers"]] == ["ada", "bob", "cy"]


def test_tables_show_names_literally_and_say_when_kappa_is_undefined(demo_db_path):
    db = open_db(demo_db_path)
    record(db, "accept", [1, 2], reviewer="[bold]ada")
    record(db, "accept", [1, 2], reviewer="bob\x1b]0;x")
    db.conn.close()
    result = runner.invoke(app, ["agreement", "--db", str(demo_db_path)])
    assert result.exit_code == 0, result.output
    assert "[bold]ada" in result.output and "\x1b" not in result.output
    assert "undefined" in result.output and "one and the same category only" in result.output


def test_a_store_without_shared_examples(demo_db_path):
    out = _agreement(demo_db_path)
    assert out["pairs"] == [] and out["alpha"] is None and out["reviewers"] == []
    assert out["flags"] == {"pairs": [], "alpha": None} and out["relabels"] == {"pairs": [], "alpha": None}
    text = runner.invoke(app, ["agreement", "--db", str(demo_db_path)])
    assert "no two reviewers have rated the same example yet" in text.output


def test_an_adjudication_is_not_a_rating(tmp_path):
    from db import open_db
    from db.reviews import record
    from pipeline.agreement import agreement_report
    from pipeline.demo import build_demo

    db = open_db(build_demo(tmp_path / "demo.db"))
    record(db, "accept", [1, 2], reviewer="ada")
    record(db, "reject", [1], reviewer="bob")
    record(db, "accept", [2], reviewer="bob")
    record(db, "reject", [1], reviewer="ada", payload={"adjudication": True})  # ada settles #1 her way
    pairs = agreement_report(db).as_dict()["pairs"]
    assert [(p["a"], p["b"], p["shared"], p["agreement"]) for p in pairs] == [("ada", "bob", 2, 0.5)]
