"""Edit-aware routing (exports/routing.py): an edit's recorded size decides whether it is only an SFT target as
edited (small) or also a DPO pair (large); the manifests count each route."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from db import open_db
from db.reviews import record
from db.textdiff import edit_size
from exports import DpoOptions, ExportOptionError, SftOptions, plan, write_to
from exports.routing import DEFAULT_SMALL, parse_route
from pipeline.cli import app
from pipeline.cli.export import ROUTE_DEFAULT

runner = CliRunner()


@pytest.mark.parametrize(("old", "new", "words", "of"), [
    ("a b c d e", "a b c d e", 0, 5),
    ("a b c d e", "a b X d e", 1, 5),  # one word replaced
    ("a b c d e", "a b c e", 1, 5),  # one deleted
    ("a b c d e", "a  b\nc d e f g", 2, 5),  # two inserted; whitespace is no word
    ("a b c d e", "v w x y z", 5, 5),
    ("", "new text", 2, 0),
])
def test_edit_size_is_a_word_level_edit_distance(old, new, words, of):
    size = edit_size(old, new)
    assert (size.words, size.of) == (words, of)
    assert size.ratio == words / max(of, 1)


def test_route_option_and_its_default():
    assert parse_route("small=0.35") == 0.35 and parse_route(ROUTE_DEFAULT) == DEFAULT_SMALL == 0.2
    for bad in ("big=0.2", "small=-1", "small=x", "0.2"):
        with pytest.raises(ExportOptionError, match="small=R"):
            parse_route(bad)
    with pytest.raises(ExportOptionError, match="--route"):
        SftOptions(ablation="reflected", route_small=0.5)


@pytest.fixture
def edited(demo_db_path):
    """Three examples whose reflection reaches gold, edited by 'ana': 1 word of the reflection changed (small),
    every word changed (large), and an edit that did not record what it replaced (size unknown)."""
    db = open_db(demo_db_path)
    rows = db.execute("SELECT e.id, e.gold_label, r.thought_process FROM examples e JOIN generations r "
                      "ON r.id = e.reflection_id WHERE r.predicted_label = e.gold_label ORDER BY e.id LIMIT 3"
                      ).fetchall()
    (small_id, gold_s, base_s), (large_id, gold_l, base_l), (unknown_id, gold_u, _) = rows
    words = base_s.split()
    assert len(words) >= 10
    small_text = " ".join(["Indeed", *words[1:]])
    record(db, "edit", [small_id], reviewer="ana", payload={"thought": small_text, "label": gold_s, "base": base_s})
    large_text = " ".join(f"w{i}" for i in range(len(base_l.split())))
    record(db, "edit", [large_id], reviewer="ana", payload={"thought": large_text, "label": gold_l, "base": base_l})
    record(db, "edit", [unknown_id], reviewer="ana", payload={"thought": "Rewritten.", "label": gold_u})
    return db, {"small": small_id, "large": large_id, "unknown": unknown_id, "small_ratio": 1 / len(words)}


def test_an_edit_records_its_size(edited):
    db, ids = edited
    payloads = {i: json.loads(p) for i, p in db.execute("SELECT example_id, payload FROM review_events "
                                                       "WHERE action = 'edit'")}
    assert payloads[ids["small"]]["edit_words"] == 1
    assert payloads[ids["small"]]["edit_ratio"] == round(ids["small_ratio"], 4)
    assert payloads[ids["large"]]["edit_ratio"] == 1.0
    assert "edit_ratio" not in payloads[ids["unknown"]]


def test_sft_writes_every_edit_and_counts_each_route(edited, tmp_path):
    db, _ = edited
    manifest = write_to(db, SftOptions(ablation="curated", reviewed_only=True), out=tmp_path / "sft.jsonl")
    assert manifest.counts["by_source"] == {"edit": 1, "edit_large": 2}
    assert manifest.options["route_small"] == 0.2 and "route small=0.2" in manifest.rule_text
    lenient = plan(db, SftOptions(ablation="curated", reviewed_only=True, route_small=1.0))
    assert lenient.by_source == {"edit": 2, "edit_large": 1}  # the unknown size stays large


def test_dpo_pairs_only_large_edits(edited, tmp_path):
    db, ids = edited
    out = tmp_path / "dpo.jsonl"
    manifest = write_to(db, DpoOptions(), out=out)
    pairs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {p["id"] for p in pairs} == {ids["large"], ids["unknown"]}
    assert {p["provenance"]["chosen_source"] for p in pairs} == {"edit_large"}
    replaced = db.execute("SELECT r.thought_process FROM examples e JOIN generations r ON r.id = e.reflection_id "
                          "WHERE e.id = ?", [ids["large"]]).fetchone()[0]
    assert replaced in {json.loads(p["rejected"])["thought_process"] for p in pairs if p["id"] == ids["large"]}
    assert manifest.counts["left_out"]["small_edit"] == 1
    assert manifest.counts["left_out_ids"]["small_edit"] == [ids["small"]]
    assert all(k.startswith("edit_large>") for k in manifest.counts["by_source"])
    assert plan(db, DpoOptions(route_small=0.0)).left_out.get("small_edit") is None  # every change is large


def test_an_edit_stored_without_its_size_is_sized_at_export(demo_db_path):
    db = open_db(demo_db_path)
    example_id, gold, base = db.execute(
        "SELECT e.id, e.gold_label, r.thought_process FROM examples e JOIN generations r ON r.id = e.reflection_id "
        "WHERE r.predicted_label = e.gold_label ORDER BY e.id LIMIT 1").fetchone()
    text = " ".join(["Indeed", *base.split()[1:]])  # small
    record(db, "edit", [example_id], reviewer="ana",  # as an edit recorded before sizes were stored
           payload={"thought": text, "label": gold, "base": base, "edit_ratio": None})
    assert plan(db, DpoOptions()).left_out == {"small_edit": 1, "pending": plan(db, DpoOptions()).left_out["pending"]}


def test_the_cli_takes_route(edited, tmp_path):
    db, _ = edited
    path = str(db.execute("PRAGMA database_list").fetchone()[2])
    result = runner.invoke(app, ["export", "dpo", "--db", path, "--route", "small=2", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["left_out"]["small_edit"] == 2  # all but the unknown size
    bad = runner.invoke(app, ["export", "sft", "--db", path, "--ablation", "curated", "--route", "small"])
    assert bad.exit_code == 2 and "--route takes small=R" in bad.output


def test_the_detail_pane_shows_the_edit_size_and_route(edited):
    from db.detail import load_details
    from nlistral_tui.widgets.detail_text import edit_content

    db, ids = edited
    details = load_details(db, [ids["small"], ids["large"], ids["unknown"]])
    small = edit_content(details[ids["small"]]).plain
    assert f"1 of {round(1 / ids['small_ratio'])} words changed" in small and "small: trained as edited" in small
    assert "large: trained as edited and a DPO pair" in edit_content(details[ids["large"]]).plain
    assert "size unknown" in edit_content(details[ids["unknown"]]).plain
    assert "[-" in edit_content(details[ids["small"]], show_diff=True).plain  # the word diff against the base
