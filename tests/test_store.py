"""The store itself: migrations, WAL, concurrent readers, derived pointers, search."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
import unicodedata
from pathlib import Path

import pytest

from db import open_db, write_tx
from db import search as search_module
from db.examples import NewExample, example_row, insert_examples
from db.generations import add_generations, refresh_derived
from db.schema import migrations
from db.search import SearchIndexFullError, fts_query, match_query, matching_ids, search
from db.staging import stage_rows


def test_migrations_are_recorded_and_idempotent(db_path):
    db = open_db(db_path)
    assert not migrations.pending(db)
    applied = [m.name for m in migrations.applied(db)]
    db.conn.close()
    db = open_db(db_path)
    assert [m.name for m in migrations.applied(db)] == applied
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_derived_pointers_match_a_rebuild(demo_db_path):
    db = open_db(demo_db_path)
    cols = "id, thought_id, thought_label, thought_model, reflection_id, reflection_label, parse_failed"
    before = db.execute(f"SELECT {cols} FROM examples ORDER BY id").fetchall()
    db.execute("UPDATE examples SET thought_id = NULL, thought_label = NULL, reflection_id = NULL, parse_failed = 0")
    refresh_derived(db)
    assert db.execute(f"SELECT {cols} FROM examples ORDER BY id").fetchall() == before
    assert sum(r[6] for r in before) == 1  # the one malformed thought


def test_search_finds_pairs_and_generated_text_and_is_safe(demo_db_path):
    db = open_db(demo_db_path)
    assert search(db, "Zoë")
    assert search(db, "[bold]") == search(db, "bold")
    assert search(db, 'he said "no -- AND OR NOT (') == []  # user text never breaks FTS syntax
    assert fts_query("  ") == ""
    assert search(db, "step")  # found in thoughts only
    thought_hits = set(search(db, "therefore", limit=1000))
    assert thought_hits and thought_hits <= {r[0] for r in db.execute("SELECT id FROM examples")}


def _words(text: str) -> list[str]:
    """The words of a text as the unicode61 tokenizer folds them (lower case, accents dropped)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))
    return re.findall(r"[^\W_]+", plain)


def _expected_matches(db, text: str) -> list[int]:
    """Search written independently: an example matches when its pair, or one of its generations,
    holds every word of text (the last one as a prefix)."""
    words = _words(text)
    docs = [(i, f"{p} {h}") for i, p, h in db.execute("SELECT id, premise, hypothesis FROM examples")]
    docs += [(i, f"{t or ''} {a or ''}") for i, t, a in
             db.execute("SELECT example_id, thought_process, error_analysis FROM generations")]
    found = set()
    for example_id, doc in docs:
        have = set(_words(doc))
        if all(w in have for w in words[:-1]) and any(h.startswith(words[-1]) for h in have):
            found.add(example_id)
    return sorted(found)


def _pairs(db, *pairs: tuple[str, str]) -> list[int]:
    rows = [example_row(NewExample(i, "t", "train", str(i), p, h, 1)) for i, (p, h) in enumerate(pairs)]
    with write_tx(db):
        first = insert_examples(db, [stage_rows(rows)]).first_new_id
    return list(range(first, first + len(pairs)))


def _thought(example_id: int, text: str, analysis: str | None = None, key: str | None = None) -> dict:
    return {"example_id": example_id, "kind": "reflection" if analysis else "thought", "model": "m",
            "backend": "import", "thought_process": text, "error_analysis": analysis, "predicted_label": 1,
            "parse_status": "ok", "dedupe_key": key or f"{example_id}:{text}:{analysis}"}


@pytest.mark.parametrize("text", ["step", "the", "t", "a man", "Zoë", "zoe", "therefore the", "BBCode", "bold",
                                  "water toma", "1648", "goggles", "x", "label entail"])
def test_search_matches_what_an_independent_reading_finds(demo_db_path, text):
    db = open_db(demo_db_path)
    expected = _expected_matches(db, text)
    assert search(db, text, limit=10_000) == expected
    # The page query (prefix spelled out as index terms) and the whole-set query agree.
    assert matching_ids(db, fts_query(text), limit=10_000) == expected


def test_search_words_must_share_one_document(db):
    a, b, c = _pairs(db, ("A violinist tunes.", "Someone plays."), ("A cellist rests.", "Nobody plays."),
                     ("An oboist waits.", "Music starts."))
    add_generations(db, [_thought(a, "The violinist is playing music."), _thought(b, "Resting is not playing."),
                         _thought(b, "Second try.", "The cellist was idle."), _thought(c, "Nothing here.")])
    assert search(db, "violinist playing") == [a]  # both words in a's thought
    assert search(db, "cellist playing") == []  # "cellist" in the pair and an analysis, "playing" in a thought
    assert search(db, "cellist idle") == [b]  # thought and error analysis of one generation are one document
    assert search(db, "music") == [a, c]  # a's thought, c's pair: each example once
    assert search(db, "play") == [a, b]  # prefix: plays, playing
    assert search(db, "snake_case or don't") == []  # "_" and "'" split words as the tokenizer does
    assert fts_query("snake_case") == '"snake" AND "case"*'


def test_pages_read_matches_in_example_order_within_bounds(db):
    ids = _pairs(db, *[(f"Premise {i} about rowing.", f"Hypothesis {i}.") for i in range(12)])
    add_generations(db, [_thought(i, f"Thought {n} mentions a kayak.", key=f"{i}-{n}") for i in ids for n in range(3)])
    assert matching_ids(db, match_query(db, "kayak"), limit=5) == ids[:5]  # three matches each, once each
    assert matching_ids(db, match_query(db, "kayak"), after_id=ids[3], limit=3) == ids[4:7]
    assert matching_ids(db, match_query(db, "kay"), before_id=ids[3], limit=10, descending=True) == ids[2::-1]
    assert matching_ids(db, match_query(db, "row"), after_id=ids[2], before_id=ids[6], limit=99) == ids[3:6]
    assert matching_ids(db, fts_query("kayak"), before_id=1 << 62, limit=2, descending=True) == ids[:-3:-1]


def test_a_prefix_with_too_many_terms_is_left_to_fts5(demo_db_path, monkeypatch):
    db = open_db(demo_db_path)
    assert match_query(db, "the st").startswith('"the" AND ("st" OR "')  # spelled out
    assert match_query(db, "Zoë") == fts_query("Zoë")  # non-ASCII: only the tokenizer knows its folding
    monkeypatch.setattr(search_module, "MAX_PREFIX_TERMS", 2)
    assert match_query(db, "the st") == fts_query("the st") == '"the" AND "st"*'
    assert search(db, "the st", limit=1000) == _expected_matches(db, "the st")


def test_an_example_with_too_many_generations_is_refused_whole(db, monkeypatch):
    (a,) = _pairs(db, ("A pair.", "Its hypothesis."))
    monkeypatch.setattr(search_module, "MAX_GENERATIONS", 3)  # the real limit, 49,151, takes long to reach
    add_generations(db, [_thought(a, f"Thought number {n}.") for n in range(2)])
    with pytest.raises(SearchIndexFullError, match=rf"example {a} would have more than 3 generations"):
        add_generations(db, [_thought(a, "One more."), _thought(a, "And another.")])
    assert db.execute("SELECT count(*) FROM generations").fetchone()[0] == 2  # nothing half-written
    assert search(db, "another") == [] and search(db, "number") == [a]


def test_the_migration_builds_one_index_from_existing_rows(db_path):
    db = open_db(db_path)  # fully migrated; then rebuilt as a store from before m004 would be
    db.executescript("""
        DROP TABLE search_fts; DROP TABLE search_terms;
        DELETE FROM _sqlite_migrations WHERE name = 'm004_one_search_index';
        INSERT INTO examples (id, dataset, split, source_id, premise, hypothesis, gold_label, content_hash)
            VALUES (7, 'd', 's', '7', 'A heron stands.', 'A bird waits.', 1, 'h7'),
                   (9, 'd', 's', '9', 'A fox runs.', 'An animal moves.', 1, 'h9');
        INSERT INTO generations (id, example_id, kind, model, backend, thought_process, error_analysis,
                                 parse_status, created_at)
            VALUES (1, 9, 'thought', 'm', 'import', 'The fox is quick.', NULL, 'ok', 'now'),
                   (2, 7, 'thought', 'm', 'import', 'A heron is a bird.', NULL, 'ok', 'now'),
                   (3, 9, 'reflection', 'm', 'import', 'Foxes move.', 'It missed the heron.', 'ok', 'now');
    """)
    db.conn.close()
    db = open_db(db_path)
    assert not migrations.pending(db)
    assert search(db, "heron") == [7, 9] and search(db, "heron bird") == [7] and search(db, "quick fox") == [9]
    assert search(db, "missed heron") == [9] and search(db, "heron runs") == []
    # rowids: the pair is k = 0, generations 1, 2 in id order within their example
    rowids = [r[0] for r in db.execute("SELECT rowid FROM search_fts WHERE search_fts MATCH 'fox* OR heron' "
                                       "ORDER BY rowid")]
    assert rowids == [7 << 16, (7 << 16) + 1, 9 << 16, (9 << 16) + 1, (9 << 16) + 2]
    # Writers go on from there.
    add_generations(db, [_thought(7, "Herons fish.")])
    assert (7 << 16) + 2 in [r[0] for r in db.execute("SELECT rowid FROM search_fts WHERE search_fts MATCH 'fish'")]


def test_a_second_process_reads_while_an_import_writes(tmp_path):
    rows = "\n".join(f"premise number {i} with some words,hypothesis {i},{i % 2}" for i in range(200_000))
    data = tmp_path / "big.csv"
    data.write_text("premise,hypothesis,label\n" + rows + "\n")
    db_path = tmp_path / "shared.db"
    open_db(db_path).conn.close()
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from db import open_db
        from pipeline.stats import collect_stats
        db = open_db({str(db_path)!r})
        reads, seen, end = 0, set(), time.time() + 60
        while time.time() < end:
            n = collect_stats(db)["examples"]
            seen.add(n); reads += 1
            if n == 200000 and reads > 3:
                break
        print(reads, sorted(seen)[0], sorted(seen)[-1], len(seen))
    """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    from pipeline.importing import import_file

    import_file(open_db(db_path), data)
    out, err = reader.communicate(timeout=90)
    assert reader.returncode == 0, err
    reads, low, high, distinct = map(int, out.split())
    assert reads > 3 and (low, high, distinct) == (0, 200_000, 2)  # before and after; never a partial import


def test_opening_a_second_connection_keeps_other_processes_from_deleting_the_wal(db_path):
    """POSIX locks belong to the process and go away when ANY descriptor of the file is closed. The app
    opens a connection per thread; if opening one read the file through Python (to check its header),
    the close dropped the locks of the connections already open, so another process closing its
    connection believed it was the last one, checkpointed and deleted the WAL, and every later commit
    of this process went into a deleted file (https://www.sqlite.org/howtocorrupt.html, 2.2)."""
    from db.runs import list_runs, start_run

    first = open_db(db_path)
    start_run(first, "import", {})
    open_db(db_path)  # a second connection in this process (as a new app thread makes)
    reader = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT count(*) FROM runs').fetchone(); c.close()"
    subprocess.run([sys.executable, "-c", reader, str(db_path)], check=True, timeout=60)
    assert Path(f"{db_path}-wal").exists()  # this process still has the database open
    start_run(first, "export", {})  # committed after the other process came and went
    later = subprocess.run([sys.executable, "-c", ("import sqlite3, sys; print(sqlite3.connect(sys.argv[1])"
                            ".execute('SELECT group_concat(kind) FROM runs').fetchone()[0])"), str(db_path)],
                           capture_output=True, text=True, check=True, timeout=60)
    assert later.stdout.strip() == "import,export"
    assert len(list_runs(first)) == 2


def test_a_row_that_breaks_a_table_rule_is_an_error_not_a_silent_skip(tmp_path):
    from db.errors import StoreError

    db = open_db(tmp_path / "s.db")
    good = example_row(NewExample(2, "t", "train", "0", "P", "H", 1))
    bad = (3, "t", "train", "1", "P2", "H2", 5, "hash")  # gold label 5: the importer's checks would reject it
    with pytest.raises(StoreError, match="line 3 \\(id 1\\) breaks a rule"), write_tx(db):
        insert_examples(db, [stage_rows([good, bad])])
    assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == 0
