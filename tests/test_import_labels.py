"""Labels in imported files are read as written, never invented (issue 12 items 9, 10, 17, follow-ups):
numbers that only round to 0 or 1, integers over Python's 4,300-digit limit, deep nesting, 3-class files
numbered the Hugging Face way, and the numbered label maps that import them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.importing import ImportFailed, import_file
from pipeline.labels import LabelError, parse_label_map

runner = CliRunner()
ROUNDING = ("0.99999999999999999", "1e-400", "1e0", "0.5e1", "-0.0")
HUGE = "9" * 5000
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(params=[False, True], ids=["serial", "parallel"])
def parallel(request, monkeypatch):
    """Both parsers: in this process, and the parser process used for large files."""
    from pipeline.importing import core

    monkeypatch.setattr(core, "PARALLEL_MIN_BYTES", 0 if request.param else 1 << 40)
    return request.param


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _gold(db, dataset: str) -> list[tuple[str, int | None]]:
    return db.execute("SELECT source_id, gold_label FROM examples WHERE dataset = ? ORDER BY id", [dataset]).fetchall()


def _pair(i: int, label: str, **extra: str) -> str:
    """A JSON Lines record with its label written exactly as given (label is raw JSON text)."""
    more = "".join(f', "{k}": {v}' for k, v in extra.items())
    return f'{{"id": "r{i}", "premise": "Premise {i}.", "hypothesis": "Hypothesis {i}.", "label": {label}{more}}}'


# --- item 1: a label counts only as written --------------------------------------------------------

def test_jsonl_labels_that_only_round_to_0_or_1_are_rejected_naming_line_field_and_value(db, tmp_path, parallel):
    good = ["1", "0", "1.0", "0.000", '"1"', '" 0 "']
    path = _write(tmp_path / "round_train.jsonl", [_pair(i, v) for i, v in enumerate(good + list(ROUNDING))])
    with pytest.raises(ImportFailed) as info:
        import_file(db, path)
    message = str(info.value)
    for i, value in enumerate(ROUNDING, start=len(good) + 1):
        assert f"round_train.jsonl:{i}: label {value} is not 0 or 1 as written. Fix: write the label as the " \
               "integer 0 or 1" in message, value
    assert _gold(db, "round") == []
    report = import_file(db, path, skip_bad=True, report_path=tmp_path / "rejected.jsonl")
    assert [b.line for b in report.rejected] == list(range(len(good) + 1, len(good) + len(ROUNDING) + 1))
    assert _gold(db, "round") == [("r0", 1), ("r1", 0), ("r2", 1), ("r3", 0), ("r4", 1), ("r5", 0)]
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert rejected[0]["raw"] == _pair(len(good), ROUNDING[0])  # the row as written, digits and all


@pytest.mark.parametrize("layout, record, message", [
    ("snli", '{"sentence1": "A", "sentence2": "B", "gold_label": 0.99999999999999999, "pairID": "p"}',
     "gold_label 0.99999999999999999 is not one of the SNLI/MultiNLI labels"),
    ("anli", '{"uid": "u", "context": "A", "hypothesis": "B", "label": 1e-400}', "label 1e-400 is not one of the ANLI"),
    ("columns", '{"p": "A", "h": "B", "y": 0.99999999999999999}', "y 0.99999999999999999 is not 0 or 1 as written"),
    ("numbered", '{"premise": "A", "hypothesis": "B", "label": 1e-400}', "label 1e-400 is not 0 or 1 as written"),
])
def test_every_pair_layout_reads_the_label_as_written(db, tmp_path, parallel, layout, record, message):
    path = _write(tmp_path / f"{layout}_train.jsonl", [record])
    options = {"columns": {"columns": "premise=p,hypothesis=h,label=y"},
               "numbered": {"label_map": parse_label_map("nli-numbered")}}.get(layout, {})
    with pytest.raises(ImportFailed, match=f"{layout}_train.jsonl:1: {message}"):
        import_file(db, path, **options)


def _seed_thought(i: int, true_label: str, predicted: str, thought: str = '"Step 1: look. Step 2: decide."') -> str:
    return (f'{{"id": {i}, "premise": "Premise {i}.", "hypothesis": "Hypothesis {i}.", "true_label": {true_label}, '
            f'"predicted_label": {predicted}, "thought_process": {thought}}}')


def test_seed_files_read_gold_and_predicted_labels_as_written(db, tmp_path):
    thoughts = _write(tmp_path / "s_thoughts.jsonl", [
        _seed_thought(0, "1", "1"),
        _seed_thought(1, "0.99999999999999999", "1"),   # a gold label that only rounds: rejected
        _seed_thought(2, "0", "1e-400"),                 # a model's label that only rounds: a failed thought
        _seed_thought(3, "1", HUGE),
    ])
    with pytest.raises(ImportFailed, match=r"s_thoughts\.jsonl:2: true_label 0\.99999999999999999 is not 0 or 1 "
                                           r"as written\. Fix: write the label as the integer 0 or 1"):
        import_file(db, thoughts)
    report = import_file(db, thoughts, skip_bad=True, report_path=tmp_path / "rejected.jsonl")
    assert [b.line for b in report.rejected] == [2]
    rows = db.execute("SELECT e.source_id, g.parse_status, g.predicted_label, g.params, g.raw_response "
                      "FROM generations g JOIN examples e ON e.id = g.example_id ORDER BY e.id").fetchall()
    assert [r[:3] for r in rows] == [("0", "ok", 1), ("2", "failed", None), ("3", "failed", None)]
    assert "label '1e-400' is not the integer 0 or 1" in json.loads(rows[1][3])["parse_problems"]
    assert rows[1][4] == _seed_thought(2, "0", "1e-400")  # the record kept as written
    # A reflection's own label too: stored as a failed reflection, no label.
    reflection = json.dumps({"id": 0, "premise": "Premise 0.", "hypothesis": "Hypothesis 0.", "true_label": 1,
                             "thought_process": "Step 1: look. Step 2: decide.", "error_analysis": "It erred.",
                             "improved_thought_process": "Better."})[:-1] + ', "predicted_label": 0.99999999999999999}'
    import_file(db, _write(tmp_path / "s_reflections.jsonl", [reflection]))
    assert db.execute("SELECT parse_status, predicted_label FROM generations WHERE kind = 'reflection'"
                      ).fetchall() == [("failed", None)]


# --- item 2: huge integers and deep nesting are rejected rows, never tracebacks --------------------

def test_an_integer_over_4300_digits_is_a_rejected_row(db, tmp_path, parallel):
    path = _write(tmp_path / "huge_train.jsonl", [
        _pair(0, "1"),
        _pair(1, HUGE),                    # the label
        _pair(2, "0", note=HUGE),          # a field the import does not read: the row is fine
        _pair(3, "1").replace('"r3"', HUGE),  # the id
        _pair(4, "0", nested=f"[[{HUGE}]]"),
    ])
    with pytest.raises(ImportFailed) as info:
        import_file(db, path)
    message = str(info.value)
    assert "huge_train.jsonl:2: label 9999999999999999999999999999999999999999... (5,000 characters) is not 0 " \
           "or 1. Fix: use 0 (no entailment) or 1 (entailment)" in message
    assert "huge_train.jsonl:4: id 9999999999999999999999999999999999999999... (5,000 characters) is not a " \
           "number or text that can be stored. Fix: give ids as strings" in message
    report = import_file(db, path, skip_bad=True, report_path=tmp_path / "rejected.jsonl")
    assert [b.line for b in report.rejected] == [2, 4]
    assert _gold(db, "huge") == [("r0", 1), ("r2", 0), ("r4", 0)]


def test_deep_nesting_on_one_line_is_a_rejected_row(db, tmp_path, parallel):
    path = _write(tmp_path / "deep_train.jsonl", [_pair(0, "1"), _pair(1, "0", extra=DEEP), _pair(2, "1")])
    with pytest.raises(ImportFailed, match=r"deep_train\.jsonl:2: the JSON is nested too deeply to read.*Fix: write "
                                           r"each record as a flat JSON object"):
        import_file(db, path)
    report = import_file(db, path, skip_bad=True, report_path=tmp_path / "rejected.jsonl")
    assert [b.line for b in report.rejected] == [2] and _gold(db, "deep") == [("r0", 1), ("r2", 1)]


@pytest.mark.parametrize("first, message", [
    (_pair(0, HUGE), ("first_train.jsonl:1: label 9999999999999999999999999999999999999999... (5,000 characters) "
                     "is not 0 or 1. Fix:")),
    (_pair(0, "1", extra=DEEP), "first_train.jsonl:1: the JSON is nested too deeply to read"),
    ("[" * 100_000, "first_train.jsonl: this looks like one JSON document, not JSON Lines; write one object per line"),
], ids=["huge-label", "deep-record", "deep-list"])
def test_a_first_line_with_a_huge_integer_or_deep_nesting_is_a_message_through_the_cli(tmp_path, first, message):
    """The format is told from the first line: it used to raise there, before any row was read."""
    path = _write(tmp_path / "first_train.jsonl", [first, _pair(1, "1")])
    result = runner.invoke(app, ["import", str(path), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert message in " ".join(result.output.split())


# --- item 4: 3-class files numbered the Hugging Face way --------------------------------------------

HF_CSV = ("premise,hypothesis,label\nA man sleeps.,A man rests.,0\nA dog barks.,A dog is hungry.,1\n"
          "A cat sits.,A cat runs.,2\nTwo men talk.,The men argue.,-1\n")


@pytest.mark.parametrize("skip_bad", [False, True])
def test_a_label_2_says_the_file_looks_3_class_and_imports_nothing_even_with_skip_bad(db, tmp_path, skip_bad):
    path = tmp_path / "snli_hf_train.csv"
    path.write_text(HF_CSV, encoding="utf-8")
    report_path = tmp_path / "rejected.jsonl"
    with pytest.raises(ImportFailed) as info:
        import_file(db, path, skip_bad=skip_bad, report_path=report_path)
    message = str(info.value)
    assert message.startswith(f"{path}:4: label '2' is not 0 or 1 (1 row(s) labelled 2, on line(s) 4): this looks like "
                              "a 3-class NLI file numbered 0 = entailment, 1 = neutral, 2 = contradiction")
    assert "Fix: import it with --label-map nli-numbered" in message
    assert ("even with --skip-bad" in message) is skip_bad
    assert _gold(db, "snli_hf") == [] and not report_path.exists()  # nothing flipped, nothing half-done


def test_the_cli_says_so_too(tmp_path):
    path = tmp_path / "snli_hf_train.csv"
    path.write_text(HF_CSV, encoding="utf-8")
    result = runner.invoke(app, ["import", str(path), "--db", str(tmp_path / "s.db"), "--skip-bad"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    out = " ".join(result.output.split())
    assert "looks like a 3-class NLI file" in out and "--label-map nli-numbered" in out
    assert "nli-numbered" in " ".join(runner.invoke(app, ["import", "--help"]).output.split())


@pytest.mark.parametrize("spec", ["nli-numbered", "0=1,1=0,2=0,-1=-", " 0 = 1 , 1=0, 2=0, -1=- "])
def test_a_numbered_label_map_reads_every_number_through_it(db, tmp_path, parallel, spec):
    path = tmp_path / "snli_hf_train.csv"
    path.write_text(HF_CSV, encoding="utf-8")
    report = import_file(db, path, label_map=parse_label_map(spec))
    assert (report.examples_added, report.no_consensus, report.rejected) == (3, 1, [])
    assert _gold(db, "snli_hf") == [("0", 1), ("1", 0), ("2", 0)]  # 0 is entailment, 1 is not: not themselves
    jsonl = _write(tmp_path / "mnli_hf_dev.jsonl", [_pair(0, "0"), _pair(1, "1"), _pair(2, "2"), _pair(3, "-1"),
                                                    _pair(4, '"2"')])
    report = import_file(db, jsonl, label_map=parse_label_map(spec))
    assert (report.examples_added, report.no_consensus) == (4, 1)
    assert _gold(db, "mnli_hf") == [("r0", 1), ("r1", 0), ("r2", 0), ("r4", 0)]


def test_a_numbered_map_refuses_numbers_it_does_not_name(db, tmp_path, parallel):
    path = tmp_path / "snli_hf_train.csv"
    path.write_text(HF_CSV, encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"snli_hf_train\.csv:5: label '-1' is not in the label map\. Fix: the "
                                           r"label map is 0=1,1=0,2=0; add it to --label-map"):
        import_file(db, path, label_map=parse_label_map("0=1,1=0,2=0"))
    # 0 and 1 as themselves, said explicitly: the rows labelled 2 (and -1) are then only bad rows.
    report = import_file(db, path, label_map=parse_label_map("0=0,1=1"), skip_bad=True,
                         report_path=tmp_path / "rejected.jsonl")
    assert [b.line for b in report.rejected] == [4, 5] and _gold(db, "snli_hf") == [("0", 0), ("1", 1)]


def test_a_recognised_layout_with_numbered_labels_imports_with_the_numbered_map(db, tmp_path):
    rows = [{"uid": "u1", "premise": "A", "hypothesis": "B", "label": 0},
            {"uid": "u2", "premise": "C", "hypothesis": "D", "label": 2}]
    path = _write(tmp_path / "anli_hf_train.jsonl", [json.dumps(r) for r in rows])
    with pytest.raises(ImportFailed, match="or pass --label-map nli-numbered"):
        import_file(db, path)
    assert import_file(db, path, label_map=parse_label_map("nli-numbered")).examples_added == 2
    assert _gold(db, "anli_hf") == [("u1", 1), ("u2", 0)]


@pytest.mark.parametrize("spec, message", [
    ("0=2", "bad --label-map entry '0=2'"),
    ("yes=1,YES=0", "--label-map names 'YES' twice"),
    ("=1", "bad --label-map entry '=1'"),
])
def test_bad_label_maps_say_what_is_wrong(spec, message):
    with pytest.raises(LabelError, match=message) as info:
        parse_label_map(spec)
    assert "0=1,1=0,2=0" in str(info.value) or "twice" in str(info.value)


def test_label_map_entries_and_presets():
    assert parse_label_map("nli-numbered") == {"0": 1, "1": 0, "2": 0, "-1": None}
    assert parse_label_map("Yes=1, no=0, unsure=-") == {"yes": 1, "no": 0, "unsure": None}
