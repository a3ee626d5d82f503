"""Real NLI layouts (SNLI, MultiNLI, ANLI, --columns, .tsv), long records and fields, duplicate columns,
lone surrogates, and the dataset and split chosen from a file name (issue 12, items 15-18)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.importing import ImportFailed, choose_names, default_names, import_file
from pipeline.labels import parse_label_map

runner = CliRunner()


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(db, dataset: str | None = None) -> list[tuple]:
    where, args = ("WHERE dataset = ?", [dataset]) if dataset else ("", [])
    return db.execute(f"SELECT split, source_id, premise, hypothesis, gold_label FROM examples {where} ORDER BY id",
                      args).fetchall()


@pytest.fixture(params=[False, True], ids=["serial", "parallel"])
def parallel(request, monkeypatch):
    """Both parsers: in this process, and the parser process used for large files."""
    from pipeline.importing import core

    monkeypatch.setattr(core, "PARALLEL_MIN_BYTES", 0 if request.param else 1 << 40)
    return request.param


# --- item 17: real NLI layouts ----------------------------------------------------------------------

# Records as SNLI 1.0 and MultiNLI 1.0 ship them (field names and values of the real .jsonl files).
SNLI = [
    {"annotator_labels": ["neutral"], "captionID": "3416050480.jpg#4", "gold_label": "neutral",
     "pairID": "3416050480.jpg#4r1n", "sentence1": "A person on a horse jumps over a broken down airplane.",
     "sentence1_binary_parse": "( ( ( A person ) ( on ( a horse ) ) ) ( ( jumps ( over ( a ( broken ( down "
     "airplane ) ) ) ) ) . ) )", "sentence1_parse": "(ROOT (S (NP (NP (DT A) (NN person)))))",
     "sentence2": "A person is training his horse for a competition.",
     "sentence2_binary_parse": "( ( A person ) ( ( is ( ( training ( his horse ) ) ) ) . ) )",
     "sentence2_parse": "(ROOT (S (NP (DT A) (NN person))))"},
    {"annotator_labels": ["contradiction"], "captionID": "3416050480.jpg#4", "gold_label": "contradiction",
     "pairID": "3416050480.jpg#4r1c", "sentence1": "A person on a horse jumps over a broken down airplane.",
     "sentence2": "A person is at a diner, ordering an omelette."},
    {"annotator_labels": ["neutral", "contradiction", "entailment", "neutral", "contradiction"],
     "captionID": "2677109430.jpg#1", "gold_label": "-", "pairID": "2677109430.jpg#1r1n",
     "sentence1": "This church choir sings to the masses as they sing joyous songs.",
     "sentence2": "The church is filled with song."},
    {"annotator_labels": ["entailment"], "captionID": "3416050480.jpg#4", "gold_label": "entailment",
     "pairID": "3416050480.jpg#4r1e", "sentence1": "A person on a horse jumps over a broken down airplane.",
     "sentence2": "A person is outdoors, on a horse."},
]
MNLI = [
    {"annotator_labels": ["neutral", "entailment", "neutral", "neutral", "neutral"], "genre": "slate",
     "gold_label": "neutral", "pairID": "63735n", "promptID": "63735",
     "sentence1": "The new rights are nice enough", "sentence2": "Everyone really likes the newest benefits "},
    {"annotator_labels": ["contradiction", "neutral", "entailment", "neutral", "contradiction"],
     "genre": "government", "gold_label": "-", "pairID": "91383c", "promptID": "91383",
     "sentence1": "This site includes a list of all award winners.",
     "sentence2": "The Government Executive articles housed on the website are not able to be searched."},
    {"annotator_labels": ["entailment", "entailment", "entailment", "entailment", "entailment"],
     "genre": "telephone", "gold_label": "entailment", "pairID": "13765e", "promptID": "13765",
     "sentence1": "uh i don't know i i have mixed emotions about him", "sentence2": "I like him for the most part"},
]


def test_snli_jsonl_is_recognised_labels_mapped_and_no_consensus_rows_counted(db, tmp_path, parallel):
    report = import_file(db, _jsonl(tmp_path / "snli_1.0_dev.jsonl", SNLI))
    assert (report.examples_added, report.no_consensus, report.rejected) == (3, 1, [])
    assert report.layout.startswith("SNLI/MultiNLI (recognised): premise=sentence1, hypothesis=sentence2, "
                                    "label=gold_label, id=pairID")
    assert "no --label-map needed" in report.layout
    assert _rows(db) == [("dev", r["pairID"], r["sentence1"], r["sentence2"],
                          {"neutral": 0, "contradiction": 0, "entailment": 1}[r["gold_label"]])
                         for r in SNLI if r["gold_label"] != "-"]
    metrics = json.loads(db.execute("SELECT metrics FROM runs WHERE id = ?", [report.run_id]).fetchone()[0])
    assert metrics["no_consensus_skipped"] == 1


def test_multinli_jsonl_keeps_text_exactly_and_skips_the_dash(db, tmp_path):
    report = import_file(db, _jsonl(tmp_path / "multinli_1.0_dev_matched.jsonl", MNLI))
    assert (report.dataset, report.split, report.examples_added, report.no_consensus) == (
        "multinli_1.0_matched", "dev", 2, 1)
    assert _rows(db) == [("dev", "63735n", "The new rights are nice enough",
                          "Everyone really likes the newest benefits ", 0),
                         ("dev", "13765e", "uh i don't know i i have mixed emotions about him",
                          "I like him for the most part", 1)]


def test_snli_txt_is_tab_separated_with_quotes_as_text(db, tmp_path, parallel):
    # The layout of snli_1.0_dev.txt: a header, tabs, no quoting (sentences hold raw quotes).
    header = ["gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
              "sentence2_parse", "sentence1", "sentence2", "captionID", "pairID", "label1", "label2"]
    rows = [["entailment", "( A b )", "( C d )", "(ROOT)", "(ROOT)", 'A man says "hi, there".',
             "A man speaks.", "1.jpg#0", "1.jpg#0r1e", "entailment", "entailment"],
            ["-", "( A b )", "( C d )", "(ROOT)", "(ROOT)", "Two dogs run.", "Two cats run.", "2.jpg#0",
             "2.jpg#0r1c", "contradiction", "neutral"],
            ["contradiction", "( A b )", "( C d )", "(ROOT)", "(ROOT)", '"Quoted at the start',
             "Nobody speaks.", "1.jpg#0", "1.jpg#0r1c", "contradiction", "contradiction"]]
    path = tmp_path / "snli_1.0_test.txt"
    path.write_text("".join("\t".join(r) + "\n" for r in [header, *rows]), encoding="utf-8")
    report = import_file(db, path)
    assert (report.format, report.split, report.examples_added, report.no_consensus) == ("tsv", "test", 2, 1)
    assert _rows(db) == [("test", "1.jpg#0r1e", 'A man says "hi, there".', "A man speaks.", 1),
                         ("test", "1.jpg#0r1c", '"Quoted at the start', "Nobody speaks.", 0)]


def test_a_tsv_file_is_read_as_tab_separated(db, tmp_path):
    path = tmp_path / "pairs_train.tsv"
    path.write_text('premise\thypothesis\tlabel\nA "quoted", comma.\tB\t1\nC\tD\t0\n', encoding="utf-8")
    report = import_file(db, path)
    assert (report.format, report.examples_added) == ("tsv", 2)
    assert _rows(db)[0][2] == 'A "quoted", comma.'
    bad = tmp_path / "ragged.tsv"
    bad.write_text("premise\thypothesis\tlabel\nA\tB\textra\t1\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"ragged\.tsv:2: the row has 4 fields.*remove the tab"):
        import_file(db, bad)


# ANLI v1.0 as released (facebookresearch/anli): the premise is `context`, labels e/n/c, id `uid`.
ANLI = [
    {"uid": "0fd0abfb-659e-4453-b196-c3a64d2d8267", "context": "The Parma trolleybus system forms part of the "
     "public transport network of the city and comune of Parma.", "hypothesis": "The trolleybus system has over 2 "
     "urban routes", "label": "e", "model_label": "n", "emturk": False, "genre": "", "reason": "", "tag": ""},
    {"uid": "7ed72ff4-40b7-4f8a-b1b9-6c612aa62c84", "context": "Alexandra Lendon Bastedo was a British actress.",
     "hypothesis": "Sharon Stone was in the film Casino Royale.", "label": "n", "model_label": "c",
     "emturk": False, "genre": "", "reason": "", "tag": ""},
    {"uid": "5d2930a3-62ac-485d-94d7-4e36cbbcd7b5", "context": "Alexandra Lendon Bastedo was a British actress.",
     "hypothesis": "Bastedo was American.", "label": "c", "model_label": "c", "emturk": False, "genre": "",
     "reason": "", "tag": ""},
]


def test_anli_is_recognised_by_uid_with_context_or_premise(db, tmp_path, parallel):
    report = import_file(db, _jsonl(tmp_path / "anli_r1_dev.jsonl", ANLI))
    assert report.examples_added == 3 and report.layout.startswith("ANLI (recognised): premise=context")
    assert _rows(db) == [("dev", r["uid"], r["context"], r["hypothesis"], int(r["label"] == "e")) for r in ANLI]
    renamed = [{"uid": r["uid"], "premise": r["context"], "hypothesis": r["hypothesis"], "label": r["label"]}
               for r in ANLI]
    report = import_file(db, _jsonl(tmp_path / "anli_r2_dev.jsonl", renamed))
    assert report.examples_added == 3 and report.layout.startswith("ANLI (recognised): premise, hypothesis")


def test_numbered_labels_in_a_recognised_layout_are_refused_not_guessed(db, tmp_path):
    # Hugging Face's anli numbers entailment 0: read as our 0/1 it would flip every label.
    rows = [{"uid": "u1", "premise": "A", "hypothesis": "B", "label": 0},
            {"uid": "u2", "premise": "C", "hypothesis": "D", "label": 2}]
    path = _jsonl(tmp_path / "anli_hf_train.jsonl", rows)
    with pytest.raises(ImportFailed, match=r":1: label 0 is not one of the ANLI labels.*numbered labels are ambiguous"):
        import_file(db, path)
    assert _rows(db) == []


def test_columns_names_any_other_layout(db, tmp_path, parallel):
    path = tmp_path / "glue_rte_train.csv"
    path.write_text("guid,text_a,text_b,verdict\nr-1,A man sleeps.,Someone rests.,entailment\n"
                    "r-2,A dog barks.,A cat meows.,not_entailment\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"header lacks premise, hypothesis, label.*--columns premise=COL"):
        import_file(db, path)
    report = import_file(db, path, columns="premise=text_a, hypothesis=text_b, label=verdict, id=guid",
                         label_map=parse_label_map("nli"))
    assert report.examples_added == 2
    assert report.layout == "from --columns: premise=text_a, hypothesis=text_b, label=verdict, id=guid"
    assert _rows(db) == [("train", "r-1", "A man sleeps.", "Someone rests.", 1),
                         ("train", "r-2", "A dog barks.", "A cat meows.", 0)]
    jsonl = _jsonl(tmp_path / "own_dev.jsonl", [{"p": "A", "h": "B", "y": 1}])
    assert import_file(db, jsonl, columns="premise=p,hypothesis=h,label=y").examples_added == 1


@pytest.mark.parametrize("spec, message", [
    ("premise=text_a,hypothesis=text_b,gold=verdict", "unknown role 'gold'"),
    ("premise=text_a,hypothesis=text_b", "--columns lacks label"),
    ("premise=text_a,hypothesis=nope,label=verdict,id=missing", "--columns names nope, missing, which the header"),
    ("premise=text_a,premise=text_b,label=verdict", "gives premise twice"),
    ("premise", "is not ROLE=COLUMN"),
])
def test_bad_columns_exit_2_naming_them_and_create_no_store(tmp_path, spec, message):
    path = tmp_path / "rte_train.csv"
    path.write_text("guid,text_a,text_b,verdict\nr-1,A,B,1\n", encoding="utf-8")
    store = tmp_path / "new.db"
    result = runner.invoke(app, ["import", str(path), "--db", str(store), "--columns", spec])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not store.exists()


def test_the_summary_says_layout_label_mapping_and_skipped_rows(tmp_path):
    path = _jsonl(tmp_path / "snli_1.0_dev.jsonl", SNLI)
    result = runner.invoke(app, ["import", str(path), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "layout SNLI/MultiNLI (recognised): premise=sentence1" in out
    assert "(no --label-map needed)" in out
    assert "1 row was skipped: no consensus gold label" in out


# --- item 16: valid files that were refused ----------------------------------------------------------

def test_jsonl_whose_first_record_is_over_64_kib(db, tmp_path, parallel):
    premise = "A long document. " * 8000  # 136,000 characters: more than read_head's 64 KiB
    path = _jsonl(tmp_path / "long_train.jsonl", [{"premise": premise, "hypothesis": "H", "label": 1},
                                                  {"premise": "P", "hypothesis": "H", "label": 0}])
    report = import_file(db, path)
    assert (report.format, report.examples_added) == ("jsonl", 2)
    assert _rows(db)[0][2] == premise


def test_csv_field_over_131072_characters(db, tmp_path, parallel):
    premise = "word, \"quoted\"\nline " * 15_000  # 300,000 characters, commas, quotes and line breaks
    path = tmp_path / "long_train.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("premise", "hypothesis", "label"), (premise, "H", 1), ("P", "H", 0)])
    report = import_file(db, path)
    assert report.examples_added == 2 and not report.rejected
    assert _rows(db)[0][2] == premise


def test_an_unclosed_quote_is_still_an_error_with_the_right_fix(db, tmp_path):
    path = tmp_path / "open_train.csv"
    path.write_text('premise,hypothesis,label\nA,B,1\n"never closed,B,0\nC,D,1\n', encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"open_train\.csv:3: the row has 1 fields but the header has 3 \(it "
                       r"runs on to line 4: a quote never closed\?\)\. Fix: close the quotes of this row"):
        import_file(db, path)


@pytest.mark.parametrize("header, named", [
    ("premise,hypothesis,label,label", "label in columns 3 and 4"),
    ("premise,premise,hypothesis,label", "premise in columns 1 and 2"),
    ("id,premise,hypothesis,label,id", "id in columns 1 and 5"),
])
def test_a_duplicated_header_column_is_refused_naming_it(db, tmp_path, header, named):
    path = tmp_path / "dup_train.csv"
    width = len(header.split(","))
    path.write_text(f"{header}\n" + ",".join(["1", "A", "B", "1", "0"][:width]) + "\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match="names a column twice") as info:
        import_file(db, path)
    assert named in str(info.value) and "rename or remove the other column" in str(info.value)
    assert _rows(db) == []


def test_an_unused_duplicated_column_is_no_problem(db, tmp_path):
    path = tmp_path / "notes_train.csv"
    path.write_text("premise,hypothesis,label,note,note\nA,B,1,x,y\n", encoding="utf-8")
    assert import_file(db, path).examples_added == 1


# --- item 15: a lone surrogate in JSON Lines ---------------------------------------------------------

def test_a_lone_surrogate_is_rejected_naming_line_and_field(db, tmp_path, parallel):
    path = tmp_path / "surrogate_train.jsonl"
    path.write_text('{"premise": "A", "hypothesis": "B", "label": 1}\n'
                    '{"premise": "Broken \\ud800 escape", "hypothesis": "B", "label": 0}\n'
                    '{"premise": "Paired \\ud83d\\ude00 is fine", "hypothesis": "C", "label": 1}\n', encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"surrogate_train\.jsonl:2: field 'premise' holds a lone surrogate"):
        import_file(db, path)
    assert _rows(db) == []
    report = import_file(db, path, skip_bad=True, report_path=tmp_path / "rejected.jsonl")
    assert report.examples_added == 2 and [b.line for b in report.rejected] == [2]
    assert _rows(db)[1][2] == "Paired \U0001F600 is fine"
    rejected = json.loads((tmp_path / "rejected.jsonl").read_text(encoding="utf-8"))
    assert rejected["raw"] == '{"premise": "Broken \\ud800 escape", "hypothesis": "B", "label": 0}'


def test_a_lone_surrogate_through_the_cli_is_a_message_not_a_traceback(tmp_path):
    path = tmp_path / "s_train.jsonl"
    path.write_text('{"premise": "A", "hypothesis": "B", "label": 1, "id": "x\\udfff"}\n', encoding="utf-8")
    result = runner.invoke(app, ["import", str(path), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "s_train.jsonl:1: field 'id' holds a lone surrogate" in result.output


# --- item 18: dataset and split from the file name ---------------------------------------------------

@pytest.mark.parametrize("name, dataset, split", [
    ("rte_dev.csv", "rte", "dev"),
    ("wnli_dev_reconstructed.csv", "wnli_reconstructed", "dev"),
    ("mnli_dev_matched_sample.csv", "mnli_matched_sample", "dev"),
    ("sick_trial.csv", "sick", "dev"),
    ("SICK-Validation.tsv", "SICK", "dev"),
    ("snli_1.0_test.jsonl", "snli_1.0", "test"),
    ("test_pairs.csv", "pairs", "test"),
    ("train_test_split.csv", "train_split", "test"),  # a held-out word wins: never train by a guess
    ("contest_entries.csv", "contest_entries", "train"),  # whole words only
    ("interval_data.csv", "interval_data", "train"),
    ("RTE/dev.tsv", "RTE", "dev"),  # GLUE's layout: the folder names the dataset
    ("x/sample_thoughts.json", "sample", "train"),
])
def test_split_words_anywhere_in_the_name(name, dataset, split):
    assert default_names(Path(name)) == (dataset, split)


def test_names_say_where_they_came_from():
    names = choose_names(Path("mnli_dev_matched_sample.csv"))
    assert names.split_from == "from the word 'dev' in the file name; pass --split to change"
    assert names.dataset_from == "from the file name; pass --dataset to change"
    both = choose_names(Path("train_test_split.csv"))
    assert both.split_from.startswith("from the word 'test' in the file name, which also holds 'train'")
    plain = choose_names(Path("pairs.csv"))
    assert plain.split == "train" and plain.split_from.startswith("the default: the file name names no split")
    given = choose_names(Path("sick_trial.csv"), dataset="sick", split="trial")
    assert (given.split, given.split_from, given.dataset_from) == ("trial", "from --split", "from --dataset")


def test_held_out_files_stay_out_of_train_and_the_summary_says_so(tmp_path):
    store = tmp_path / "s.db"
    for name in ("wnli_dev_reconstructed.csv", "mnli_dev_matched_sample.csv", "sick_trial.csv"):
        path = tmp_path / name
        path.write_text("premise,hypothesis,label\nA man sleeps.,Someone rests.,1\n", encoding="utf-8")
        result = runner.invoke(app, ["import", str(path), "--db", str(store)])
        assert result.exit_code == 0, result.output
        out = " ".join(result.output.split())
        assert "split dev (from the word" in out and "pass --split to change" in out
        assert "(from the file name; pass --dataset to change)" in out
    from db import open_db

    assert {s for (s,) in open_db(store).execute("SELECT DISTINCT split FROM examples")} == {"dev"}
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("premise,hypothesis,label\nA,B,1\n", encoding="utf-8")
    out = " ".join(runner.invoke(app, ["import", str(pairs), "--db", str(store)]).output.split())
    assert ("dataset pairs (from the file name; pass --dataset to change), split train (the default: the file "
            "name names no split; pass --split to change)") in out


def test_a_file_name_that_is_not_utf8_is_a_message_not_a_traceback(tmp_path):
    import os

    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9_dev.csv")  # latin-1 bytes in a file name
    with open(raw, "w", encoding="utf-8") as fh:
        fh.write("premise,hypothesis,label\nA,B,1\n")
    store = tmp_path / "s.db"
    result = runner.invoke(app, ["import", os.fsdecode(raw), "--db", str(store)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    assert "is not valid UTF-8 text" in result.output and "pass --dataset NAME" in result.output
    assert not store.exists()
    named = runner.invoke(app, ["import", os.fsdecode(raw), "--db", str(store), "--dataset", "cafe"])
    assert named.exit_code == 0, named.output
