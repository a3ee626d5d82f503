"""The store itself: migrations, WAL, concurrent readers, derived pointers, search."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from db import open_db
from db.generations import refresh_derived
from db.schema import migrations
from db.search import fts_query, search


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
