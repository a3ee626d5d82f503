"""Importing real and hand-made files: counts, exact text, idempotence, and every kind of bad input."""
from __future__ import annotations

import csv
import json
import pickle
import sys
from pathlib import Path

import pytest

from db import open_db
from db.examples import NewExample, example_row
from db.staging import stage_rows
from pipeline.importing import ImportFailed, default_names, import_file
from pipeline.stats import collect_stats


def _counts(db) -> tuple[int, int, int, int]:
    q = lambda sql: db.execute(sql).fetchone()[0]
    return (q("SELECT count(*) FROM examples"), q("SELECT count(*) FROM generations WHERE kind = 'thought'"),
            q("SELECT count(*) FROM generations WHERE kind = 'reflection'"), q("SELECT count(*) FROM search_terms"))


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- the seed sample and the external benchmarks -------------------------------------------------

def test_seed_sample_counts_links_and_stats(seed_db, shared_data):
    assert _counts(seed_db)[:3] == (100, 100, 33)
    links = seed_db.execute(
        "SELECT r.example_id, t.example_id, t.kind, t.thought_process FROM generations r "
        "JOIN generations t ON t.id = r.parent_id WHERE r.kind = 'reflection'"
    ).fetchall()
    assert len(links) == 33
    assert all(r_ex == t_ex and kind == "thought" for r_ex, t_ex, kind, _ in links)
    by_source = {json.loads(line)["id"]: json.loads(line) for line in
                 (shared_data / "seed_sample" / "sample_reflections.json").read_text().splitlines() if line.strip()}
    for (source_id, flawed) in seed_db.execute(
        "SELECT e.source_id, t.thought_process FROM generations r JOIN generations t ON t.id = r.parent_id "
        "JOIN examples e ON e.id = r.example_id WHERE r.kind = 'reflection'"
    ):
        assert by_source[int(source_id)]["thought_process"] == flawed
    s = collect_stats(seed_db)
    assert (s["examples"], s["thoughts"], s["reflections"], s["mismatches"]) == (100, 100, 33, 33)
    assert s["thought_accuracy"] == pytest.approx(0.67)
    assert s["thought_precision"] == pytest.approx(0.92)
    assert s["thought_recall"] == pytest.approx(23 / 54)
    assert s["reflection_coverage"] == 1.0
    assert s["reflections_label_not_gold"] == 1
    flagged = seed_db.execute(
        "SELECT e.source_id FROM generations g JOIN examples e ON e.id = g.example_id "
        "WHERE g.flags LIKE '%label_not_gold%'").fetchall()
    assert flagged == [("90",)]


def test_text_is_stored_exactly_as_given(seed_db, shared_data):
    with (shared_data / "seed_sample" / "sample.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    stored = seed_db.execute("SELECT source_id, premise, hypothesis, gold_label FROM examples").fetchall()
    assert {(int(s), p, h, g) for s, p, h, g in stored} == {
        (i, r["premise"], r["hypothesis"], int(r["label"])) for i, r in enumerate(rows)}
    thoughts = {json.loads(line)["id"]: json.loads(line)["thought_process"] for line in
                (shared_data / "seed_sample" / "sample_thoughts.json").read_text().splitlines()}
    for source_id, text in seed_db.execute(
        "SELECT e.source_id, g.thought_process FROM generations g JOIN examples e ON e.id = g.example_id "
        "WHERE g.kind = 'thought'"
    ):
        assert text == thoughts[int(source_id)]


@pytest.mark.parametrize("name, total, ones", [
    ("rte_train.csv", 2490, 1249), ("rte_dev.csv", 277, 146),
    ("sick_train.csv", 4439, 1274), ("sick_test.csv", 4906, 1404),
])
def test_external_benchmarks_import_with_the_right_counts(db, shared_data, name, total, ones):
    report = import_file(db, shared_data / "external" / name)
    dataset, split = default_names(Path(name))
    assert (report.dataset, report.split) == (dataset, split)
    assert report.examples_added == total
    got = dict(db.execute("SELECT gold_label, count(*) FROM examples GROUP BY 1").fetchall())
    assert got == {1: ones, 0: total - ones}


def test_reimporting_adds_nothing(seed_db, shared_data):
    before = _counts(seed_db)
    seed = shared_data / "seed_sample"
    assert import_file(seed_db, seed / "sample.csv").examples_added == 0
    again = import_file(seed_db, seed / "sample_thoughts.json", model="open-mistral-7b")
    assert (again.examples_added, again.generations_added, again.generations_unchanged) == (0, 0, 100)
    again = import_file(seed_db, seed / "sample_reflections.json", model="open-mistral-nemo")
    assert (again.generations_added, again.generations_unchanged) == (0, 33)
    assert _counts(seed_db) == before


def test_every_imported_pair_is_indexed_under_its_own_id(db, tmp_path):
    from db.search import search

    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]

    def rows(ids: list[int]) -> str:
        return "id,premise,hypothesis,label\n" + "".join(
            f"{i},Premise {words[i]}word.,Hypothesis {words[i]}hyp.,{i % 2}\n" for i in ids)

    import_file(db, _write(tmp_path / "a_train.csv", rows([0, 1, 2])))  # every row new: indexed from the batch
    # Rows 0-2 again, unchanged and skipped, then 3-5 new: indexed by reading the new rows back.
    report = import_file(db, _write(tmp_path / "a_train.csv", rows([0, 1, 2, 3, 4, 5])))
    assert (report.examples_added, report.examples_unchanged) == (3, 3)
    ids = dict(db.execute("SELECT source_id, id FROM examples").fetchall())
    for i, word in enumerate(words):
        assert search(db, f"{word}word") == search(db, f"{word}hyp") == [ids[str(i)]], word
    assert db.execute("SELECT count(*) FROM search_terms WHERE term LIKE '%word'").fetchone()[0] == 6


def test_skips_and_conflicts_in_a_middle_batch_leave_the_other_batches_stored_and_indexed(db, tmp_path, monkeypatch):
    from db.search import search
    from pipeline.importing import validate

    monkeypatch.setattr(validate, "FIRST_BATCH", 2)
    monkeypatch.setattr(validate, "BATCH", 2)

    def rows(items: list[tuple[int, str]]) -> str:
        return "id,premise,hypothesis,label\n" + "".join(f"{i},Premise {w}.,Hypothesis {i}.,1\n" for i, w in items)

    import_file(db, _write(tmp_path / "a_train.csv", rows([(1, "one"), (2, "two")])))
    # Batches: (6, 7) | (1 unchanged, 8) | (9, 2 with other text) | (10, 11)
    later = [(6, "six"), (7, "seven"), (1, "one"), (8, "eight"), (9, "nine"), (2, "changed"), (10, "ten"),
             (11, "eleven")]
    with pytest.raises(ImportFailed, match="id 2 is already in a/train with a different premise"):
        import_file(db, _write(tmp_path / "a_train.csv", rows(later)))
    assert _counts(db)[0] == 2
    report = import_file(db, tmp_path / "a_train.csv", skip_bad=True, report_path=tmp_path / "bad.jsonl")
    assert (report.examples_added, report.examples_unchanged) == (6, 1)
    assert [(b.line, b.reason) for b in report.rejected] == [
        (7, "id 2 is already in a/train with a different premise or hypothesis")]
    ids = dict(db.execute("SELECT source_id, id FROM examples").fetchall())
    for i, word in later:
        assert search(db, word) == ([] if word == "changed" else [ids[str(i)]]), word
    # Nothing is left on the stage (db/staging.py) or in the table of skipped rows.
    assert db.execute("SELECT count(*) FROM import_stage.rows").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM temp.sqlite_master WHERE name = '_new_examples'").fetchone()[0] == 0


def test_an_import_adds_one_segment_to_the_search_index_however_many_batches_it_has(db, tmp_path, monkeypatch):
    from pipeline.importing import validate

    monkeypatch.setattr(validate, "FIRST_BATCH", 2)
    monkeypatch.setattr(validate, "BATCH", 2)
    path = _write(tmp_path / "a_train.csv", "premise,hypothesis,label\n" + "".join(
        f"Premise {i}.,Hypothesis {i}.,1\n" for i in range(6)))  # three batches
    assert import_file(db, path).examples_added == 6
    # Fewer segments, faster searches; FTS5 would write one per batch if each were indexed on its own.
    assert db.execute("SELECT count(DISTINCT segid) FROM search_fts_idx").fetchone()[0] == 1


def test_default_names_come_from_the_file_name():
    assert default_names(Path("rte_dev.csv")) == ("rte", "dev")
    assert default_names(Path("x/sample_thoughts.json")) == ("sample", "train")
    assert default_names(Path("sick_test.csv")) == ("sick", "test")
    # One name per split: every development-set word is dev (pipeline/importing/names.py says why).
    assert default_names(Path("mnli-validation.jsonl")) == ("mnli", "dev")


# --- formats -----------------------------------------------------------------------------------

def test_jsonl_with_ids_and_the_nli_label_map(db, tmp_path):
    path = _write(tmp_path / "snli.jsonl", "\n".join(json.dumps(r) for r in [
        {"id": "a1", "premise": "A dog runs.", "hypothesis": "An animal moves.", "label": "entailment"},
        {"id": "a2", "premise": "A dog runs.", "hypothesis": "A cat sleeps.", "label": "Contradiction"},
        {"id": "a3", "premise": "A dog runs.", "hypothesis": "The dog is happy.", "label": "neutral"},
    ]) + "\n")
    with pytest.raises(ImportFailed, match="--label-map nli"):
        import_file(db, path)
    assert _counts(db)[0] == 0
    from pipeline.labels import parse_label_map

    report = import_file(db, path, label_map=parse_label_map("nli"))
    assert report.format == "jsonl" and report.examples_added == 3
    assert db.execute("SELECT source_id, gold_label FROM examples ORDER BY id").fetchall() == [
        ("a1", 1), ("a2", 0), ("a3", 0)]


@pytest.mark.parametrize("parallel", [False, True])
def test_unicode_line_separators_inside_json_strings_are_text(db, tmp_path, monkeypatch, parallel):
    from pipeline.importing import core

    monkeypatch.setattr(core, "PARALLEL_MIN_BYTES", 0 if parallel else 1 << 40)
    # JSON allows these raw inside strings (ensure_ascii=False writes them so); only "\n" ends a record.
    premise = "Line\u2028separator, paragraph\u2029separator, NEL\x85 and form\x0cfeed."
    rows = [{"premise": premise, "hypothesis": "A text.\r", "label": 1},
            {"premise": "A", "hypothesis": "B", "label": 0}]
    path = _write(tmp_path / "seps.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows))
    assert "\u2028" in path.read_text(encoding="utf-8")
    report = import_file(db, path)
    assert report.examples_added == 2 and not report.rejected
    assert db.execute("SELECT premise, hypothesis FROM examples ORDER BY id").fetchall() == [
        (premise, "A text.\r"), ("A", "B")]
    csv_path = _write(tmp_path / "quoted.csv",
                      'premise,hypothesis,label\n"Multi\nline\u2028 premise",B\u2029,1\nC,D,0\n')
    assert import_file(db, csv_path).examples_added == 2
    assert db.execute("SELECT premise, hypothesis FROM examples WHERE dataset = 'quoted' AND source_id = '0'"
                      ).fetchone() == ("Multi\nline\u2028 premise", "B\u2029")


def test_custom_label_map_and_whitespace_kept(db, tmp_path):
    from pipeline.labels import parse_label_map

    path = _write(tmp_path / "yn.csv", 'premise,hypothesis,label\n"  Two  spaces ",Tab\there,YES\nA,B,no\n')
    import_file(db, path, label_map=parse_label_map("yes=1,no=0"))
    assert db.execute("SELECT premise, hypothesis, gold_label FROM examples ORDER BY id").fetchall() == [
        ("  Two  spaces ", "Tab\there", 1), ("A", "B", 0)]


def test_unlabelled_import_stores_null_gold(db, tmp_path):
    path = _write(tmp_path / "hidden_test.csv", "premise,hypothesis\nA man sits.,A person sits.\n")
    import_file(db, path, unlabelled=True)
    assert db.execute("SELECT split, gold_label FROM examples").fetchall() == [("test", None)]


def test_a_malformed_model_output_is_stored_as_a_parse_failure(demo_db_path):
    db = open_db(demo_db_path)
    row = db.execute("SELECT parse_status, predicted_label, raw_response FROM generations "
                     "WHERE kind = 'thought' AND parse_status = 'failed'").fetchall()
    assert len(row) == 1 and row[0][1] is None and row[0][2].startswith("```json")


# --- bad input: a clear error with file, line and fix; nothing written -------------------------

BAD_CASES = {
    "missing column": ("premise,label\nA,1\n", r"bad\.csv:1: the header lacks hypothesis"),
    "empty text": ("premise,hypothesis,label\nA,B,1\n ,B,0\n", r"bad\.csv:3: empty premise"),
    "label outside": ("premise,hypothesis,label\nA,B,2\n", r"bad\.csv:2: label '2' is not 0 or 1"),
    "label name": ("premise,hypothesis,label\nA,B,entailment\n", r"bad\.csv:2: label 'entailment'"),
    "ragged row": ("premise,hypothesis,label\nA,B,1,extra\n", r"bad\.csv:2: the row has 4 fields"),
    "duplicate id": ("id,premise,hypothesis,label\n7,A,B,1\n7,A,C,1\n", r"bad\.csv:3: id 7 appears earlier"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_csv_rows_fail_with_file_line_and_fix(db, tmp_path, case):
    text, pattern = BAD_CASES[case]
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(ImportFailed, match=pattern) as info:
        import_file(db, path)
    assert "Fix:" in str(info.value)
    assert _counts(db) == (0, 0, 0, 0)
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_malformed_json_line(db, tmp_path):
    path = _write(tmp_path / "bad.jsonl", '{"premise": "A", "hypothesis": "B", "label": 1}\n{"premise": "A",\n')
    with pytest.raises(ImportFailed, match=r"bad\.jsonl:2: malformed JSON"):
        import_file(db, path)
    assert _counts(db)[0] == 0


def test_bad_encoding_names_the_line(db, tmp_path):
    path = _write(tmp_path / "latin.csv", "premise,hypothesis,label\nA,B,1\nCaf\xe9,B,0\n".encode("latin-1"))
    with pytest.raises(ImportFailed, match=r"latin\.csv:3: not valid UTF-8.*iconv"):
        import_file(db, path)
    assert _counts(db)[0] == 0


def test_missing_path(db, tmp_path):
    with pytest.raises(ImportFailed, match="no such file"):
        import_file(db, tmp_path / "nope.csv")


def test_reflection_for_unknown_example(db, tmp_path):
    rec = {"id": 5, "premise": "A", "hypothesis": "B", "thought_process": "t", "predicted_label": 1,
           "true_label": 1, "error_analysis": "e", "improved_thought_process": "i"}
    path = _write(tmp_path / "x_reflections.jsonl", json.dumps(rec) + "\n")
    with pytest.raises(ImportFailed, match=r":1: reflection for unknown example id 5 in x/train.*import the examples"):
        import_file(db, path)
    assert _counts(db) == (0, 0, 0, 0)


def test_reflection_whose_thought_is_not_stored(db, tmp_path):
    _write(tmp_path / "x.csv", "id,premise,hypothesis,label\n5,A,B,1\n")
    import_file(db, tmp_path / "x.csv")
    rec = {"id": 5, "premise": "A", "hypothesis": "B", "thought_process": "never stored", "predicted_label": 1,
           "true_label": 1, "error_analysis": "e", "improved_thought_process": "i"}
    path = _write(tmp_path / "x_reflections.jsonl", json.dumps(rec) + "\n")
    with pytest.raises(ImportFailed, match="import the thoughts file first"):
        import_file(db, path)


def test_conflict_with_a_stored_example(db, tmp_path):
    import_file(db, _write(tmp_path / "d.csv", "id,premise,hypothesis,label\n1,A,B,1\n"))
    with pytest.raises(ImportFailed, match=r"d\.csv:2: id 1 is already in d/train with a different premise"):
        import_file(db, _write(tmp_path / "d.csv", "id,premise,hypothesis,label\n1,A,C,1\n"))
    with pytest.raises(ImportFailed, match="with gold label 1"):
        import_file(db, _write(tmp_path / "d.csv", "id,premise,hypothesis,label\n1,A,B,0\n"))
    assert _counts(db)[0] == 1


def test_not_a_database(tmp_path):
    from db import NotADatabaseError

    fake = _write(tmp_path / "notes.db", "just some text, not SQLite\n")
    for _ in range(2):
        with pytest.raises(NotADatabaseError, match="is not an SQLite database"):
            open_db(fake)
    assert fake.read_text() == "just some text, not SQLite\n"  # left as it was, nothing beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]
    long_text = _write(tmp_path / "long.db", "x" * 5000)
    with pytest.raises(NotADatabaseError, match="is not an SQLite database"):
        open_db(long_text)
    with pytest.raises(NotADatabaseError, match="is a directory"):
        open_db(tmp_path)


def test_skip_bad_imports_good_rows_and_writes_a_report(db, tmp_path):
    path = _write(tmp_path / "mixed.csv", "premise,hypothesis,label\nA,B,1\n,B,0\nC,D,maybe\nE,F,0\n")
    report = import_file(db, path, skip_bad=True, report_path=tmp_path / "rejected.jsonl")
    assert report.examples_added == 2
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejected] == [3, 4]
    assert "empty premise" in rejected[0]["reason"] and rejected[1]["raw"] == "C,D,maybe"
    assert all(r["fix"] for r in rejected)


# --- the parser process used for large files gives the same results --------------------------------

@pytest.fixture
def always_parallel(monkeypatch):
    from pipeline.importing import core

    monkeypatch.setattr(core, "PARALLEL_MIN_BYTES", 0)


def test_parallel_parser_imports_the_same_rows(tmp_path, shared_data, always_parallel):
    serial_path, parallel_path = tmp_path / "serial.db", tmp_path / "parallel.db"
    from pipeline.importing import core

    data = shared_data / "external" / "rte_train.csv"
    parallel = open_db(parallel_path)
    assert import_file(parallel, data).examples_added == 2490
    core.PARALLEL_MIN_BYTES = 1 << 40
    serial = open_db(serial_path)
    import_file(serial, data)
    cols = "dataset, split, source_id, premise, hypothesis, gold_label, content_hash"
    rows = lambda db: db.execute(f"SELECT {cols} FROM examples ORDER BY id").fetchall()
    assert rows(parallel) == rows(serial)
    assert search_ids(parallel, "Reeve") == search_ids(serial, "Reeve") != []


def test_a_parser_process_that_dies_midway_fails_the_import_and_writes_nothing(db, tmp_path, always_parallel,
                                                                              monkeypatch):
    from pipeline.importing import parallel

    # One whole batch, then half a message, then exit code 3.
    batch = pickle.dumps(("rows", stage_rows([example_row(NewExample(2, "a", "train", "0", "P", "H", 1))])))
    script = ("import struct, sys; sys.stdin.buffer.read(); out = sys.stdout.buffer; "
              f"out.write(struct.pack('<Q', {len(batch)}) + {batch!r}); "
              "out.write(struct.pack('<Q', 100) + b'abc'); out.flush(); sys.exit(3)")
    monkeypatch.setattr(parallel, "_WORKER", [sys.executable, "-c", script])
    path = _write(tmp_path / "a_train.csv", "premise,hypothesis,label\nP,H,1\nQ,R,0\n")
    with pytest.raises(ImportFailed, match="parser process stopped unexpectedly \\(exit code 3\\)"):
        import_file(db, path)
    assert _counts(db)[0] == 0
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def search_ids(db, text):
    from db.search import search

    return search(db, text)


def test_parallel_parser_reports_bad_rows_and_header_errors(db, tmp_path, always_parallel):
    path = _write(tmp_path / "mixed.csv", "premise,hypothesis,label\nA,B,1\n,B,0\nC,D,maybe\nE,F,0\n")
    with pytest.raises(ImportFailed, match=r"mixed\.csv:3: empty premise"):
        import_file(db, path)
    assert _counts(db)[0] == 0
    report = import_file(db, path, skip_bad=True, report_path=tmp_path / "rejected.jsonl")
    assert report.examples_added == 2 and [b.line for b in report.rejected] == [3, 4]
    with pytest.raises(ImportFailed, match=r"bad\.csv:1: the header lacks label"):
        import_file(db, _write(tmp_path / "bad.csv", "premise,hypothesis\nA,B\n"))
    with pytest.raises(ImportFailed, match=r"latin\.csv:2: not valid UTF-8"):
        import_file(db, _write(tmp_path / "latin.csv", "premise,hypothesis,label\nCaf\xe9,B,0\n".encode("latin-1")))
