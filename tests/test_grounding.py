"""The grounding check (db/grounding.py): flags on crafted thoughts, set when stored or imported, recomputed for
old rows by the migration, counted by stats, listed by a queue and a filter, marked in the detail pane."""
from __future__ import annotations

import json

import pytest

from db import open_db, write_tx
from db.examples import NewExample, example_row, insert_examples
from db.generations import add_generation
from db.grounding import NUMBER, QUOTE, findings, flags
from db.queue_pages import page_after
from db.queues import QueueFilter, ids
from db.staging import stage_rows
from pipeline.stats import collect_stats

PREMISE = "A Man is sleeping on a bench, near two dogs."
HYPOTHESIS = "Somebody rests outside in 2019."


@pytest.mark.parametrize(("thought", "expected"), [
    ('The premise says "a man is SLEEPING on a bench", so he rests.', []),  # another case: grounded
    ("The premise says 'a   man, is sleeping' outside.", []),  # whitespace and punctuation tolerated
    ('It says "a woman is sleeping", which is not the premise.', [QUOTE]),
    ("It mentions ‘a cat’ nowhere.", [QUOTE]),
    ("There are three dogs near the bench.", []),  # a number word is not checked in the thought
    ("There are 2 dogs, and the year 2019 matches.", []),  # "two" in the premise, 2019 in the hypothesis
    ("There are 3 dogs near the bench.", [NUMBER]),
    ("It was 2,019 or 1.5 hours ago.", [NUMBER]),  # 2,019 is 2019; 1.5 is nowhere
    ("step 1: the man sleeps. step 2: he rests. 3. so the label is 1.", []),  # structure, not claims
    ("The man's dog isn't 'resting'. Don't guess.", [QUOTE]),  # apostrophes are no quotes; 'resting' is one
    ('Quoted "a man is sleeping" and 7 cats.', [NUMBER]),
    ("Rock 'n' roll: one letter in single quotes is no quote.", []),

])
def test_grounding_flags_on_crafted_thoughts(thought, expected):
    assert flags(thought, PREMISE, HYPOTHESIS) == sorted(expected)


def test_a_number_written_as_words_in_the_pair_grounds_its_digits():
    assert flags("The ride took 4.5 hours, 180 km.", "It took four and a half hours over 180 kilometres.", "") == []
    assert flags("The ride took 4.5 hours.", "It took four hours.", "") == [NUMBER]


def test_findings_point_at_the_offending_spans():
    text = 'He saw "a red car" and 12 birds; "two dogs" are there.'
    found = findings(text, PREMISE, HYPOTHESIS)
    assert [(f.flag, text[f.start:f.end]) for f in found] == [(QUOTE, '"a red car"'), (NUMBER, "12")]


def _store(path):
    db = open_db(path)
    with write_tx(db):
        insert_examples(db, [stage_rows([example_row(NewExample(i, "d", "train", str(i), PREMISE, HYPOTHESIS, 1))
                                         for i in range(3)])])
    return db


def _thought(db, example_id, text, **extra):
    return add_generation(db, example_id=example_id, kind="thought", model="m", backend="import",
                          thought_process=text, predicted_label=1, parse_status="ok", **extra)


def test_a_stored_thought_gets_its_flags_and_keeps_the_others(tmp_path):
    db = _store(tmp_path / "s.db")
    g = _thought(db, 1, 'It says "a woman" and 5 dogs.', flags=["label_inconsistent"])
    assert g is not None and g.flags == ("label_inconsistent", NUMBER, QUOTE)
    assert _thought(db, 2, "A man sleeps on a bench.").flags == ()
    reflection = add_generation(db, example_id=3, kind="reflection", model="m", backend="import",
                                thought_process="9 men sleep.", error_analysis='It said "nine cats", wrongly.',
                                predicted_label=1, parse_status="ok")
    assert reflection is not None and reflection.flags == (NUMBER,)  # the error analysis is not checked


def test_import_sets_the_flags(tmp_path):
    from pipeline.importing import import_file

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"premise,hypothesis,label\n\"{PREMISE}\",\"{HYPOTHESIS}\",1\n", encoding="utf-8")
    thoughts = tmp_path / "thoughts.jsonl"
    thoughts.write_text(json.dumps({"premise": PREMISE, "hypothesis": HYPOTHESIS, "predicted_label": 1, "true_label": 1,
                                    "thought_process": "step 1: there are 4 dogs. step 2: so 'a man rests'."})
                        + "\n", encoding="utf-8")
    db = open_db(tmp_path / "s.db")
    import_file(db, pairs)
    import_file(db, thoughts, model="m")
    assert json.loads(db.execute("SELECT flags FROM generations").fetchone()[0]) == [NUMBER, QUOTE]


def test_the_migration_flags_rows_stored_before_it(tmp_path):
    path = tmp_path / "s.db"
    db = _store(path)
    db.executescript("""
        INSERT INTO generations (example_id, kind, model, backend, thought_process, parse_status, flags, created_at)
            VALUES (1, 'thought', 'm', 'import', 'It says "a woman".', 'ok', '["label_not_gold"]', 'now'),
                   (2, 'thought', 'm', 'import', 'A man sleeps.', 'ok', '[]', 'now'),
                   (3, 'prediction', 'm', 'local', 'It says "a woman".', 'ok', '[]', 'now');
        DELETE FROM _sqlite_migrations WHERE name = 'm014_grounding_flags';
    """)
    db.conn.close()
    db = open_db(path)
    assert [json.loads(r[0]) for r in db.execute("SELECT flags FROM generations ORDER BY id")] == [
        ["label_not_gold", QUOTE], [], []]  # predictions are not training targets: not checked


def test_stats_queue_and_filter_count_examples_by_their_current_generation(tmp_path):
    db = _store(tmp_path / "s.db")
    _thought(db, 1, 'It says "a woman".')
    _thought(db, 2, "There are 5 dogs.")
    _thought(db, 2, "There are two dogs.")  # example 2's current thought is grounded now
    _thought(db, 3, 'It says "a cat" and 8 dogs.')
    assert collect_stats(db)["flags"] == {NUMBER: 1, QUOTE: 2}
    assert ids(db, QueueFilter(queue=QUOTE)) == [1, 3]
    assert [r.id for r in page_after(db, QueueFilter(queue=QUOTE))] == [1, 3]
    assert ids(db, QueueFilter(queue=NUMBER)) == [3]
    assert ids(db, QueueFilter(flag=NUMBER)) == [3]


def test_the_detail_pane_marks_the_spans_literally(tmp_path):
    from db.detail import load_details
    from nlistral_tui.widgets.detail_text import UNGROUNDED, left_column

    db = _store(tmp_path / "s.db")
    _thought(db, 1, 'It says "[bold]a woman[/bold]" and 5 dogs.')
    content = left_column(load_details(db, [1])[1])
    assert '"[bold]a woman[/bold]"' in content.plain  # markup-like text stays text
    marked = {content.plain[s.start:s.end] for s in content.spans if str(s.style) == UNGROUNDED}
    assert marked == {'"[bold]a woman[/bold]"', "5"}
