"""The signal queues (db/queue_signals.py): suspect gold paged in rank order, its position, the triage counts."""
from __future__ import annotations

import json

import pytest

from db import write_tx
from db.examples import NewExample, example_row, insert_examples
from db.queue_counts import count, counts, position, signal_counts
from db.queue_pages import contains, last_page, page_after, page_before, page_from, window_around
from db.queue_signals import SIGNAL_QUEUES
from db.queues import QueueFilter
from db.staging import stage_rows

# example source id -> rank (1 = most suspect); ids 2, 4 and 9 are not ranked
RANKS = {7: 1, 3: 2, 10: 3, 1: 4, 8: 5, 5: 6, 6: 7}
SUSPECT = QueueFilter(queue="suspect_gold")


@pytest.fixture
def ranked(db):
    rows = [NewExample(i, "a" if i <= 6 else "b", "train", str(i), f"premise {i}", f"hypothesis {i}", 1)
            for i in range(1, 11)]
    with write_tx(db):
        insert_examples(db, [stage_rows([example_row(r) for r in rows])])
        ids = {int(s): i for s, i in db.execute("SELECT source_id, id FROM examples")}
        for source, rank in RANKS.items():
            db.execute("INSERT INTO suspicion VALUES (?, ?, ?, ?)",
                       [ids[source], rank, 10.0 - rank, json.dumps([["thought_disagrees", 1.0, 1.0, "x"]])])
    return db, ids


def _order(ids, sources):
    return [ids[s] for s in sources]


def test_pages_follow_the_rank_not_the_id(ranked):
    db, ids = ranked
    in_rank = _order(ids, sorted(RANKS, key=RANKS.get))
    assert [r.id for r in page_after(db, SUSPECT, None, 100)] == in_rank
    assert [r.id for r in page_after(db, SUSPECT, None, 3)] == in_rank[:3]
    assert [r.id for r in page_after(db, SUSPECT, in_rank[2], 2)] == in_rank[3:5]
    assert [r.id for r in page_before(db, SUSPECT, in_rank[4], 2)] == in_rank[2:4]
    assert [r.id for r in page_before(db, SUSPECT, in_rank[0], 5)] == []
    assert [r.id for r in last_page(db, SUSPECT, 3)] == in_rank[-3:]
    assert [r.id for r in page_from(db, SUSPECT, in_rank[3], 2)] == in_rank[3:5]
    assert [r.id for r in window_around(db, SUSPECT, in_rank[3], before=1, after=1)] == in_rank[2:5]


def test_an_example_outside_the_ranking_starts_from_the_top(ranked):
    db, ids = ranked
    in_rank = _order(ids, sorted(RANKS, key=RANKS.get))
    assert [r.id for r in page_from(db, SUSPECT, ids[2], 2)] == in_rank[:2]
    assert page_before(db, SUSPECT, ids[2], 5) == []
    assert not contains(db, SUSPECT, ids[2]) and contains(db, SUSPECT, ids[7])


def test_facets_narrow_the_ranked_queue_and_positions_count_in_rank(ranked):
    db, ids = ranked
    only_b = SUSPECT.replace(dataset="b")
    assert [r.id for r in page_after(db, only_b, None, 100)] == _order(ids, [7, 10, 8])
    assert count(db, SUSPECT) == len(RANKS) and count(db, only_b) == 3
    assert position(db, SUSPECT, ids[1]) == 3
    assert position(db, only_b, ids[8]) == 2
    assert [position(db, SUSPECT, r.id) for r in page_after(db, SUSPECT, None, 100)] == list(range(len(RANKS)))


def test_signal_queues_are_counted_only_when_shown(ranked):
    db, _ = ranked
    plain = counts(db, QueueFilter())
    assert not set(SIGNAL_QUEUES) & set(plain)
    shown = counts(db, SUSPECT)
    assert shown["suspect_gold"] == len(RANKS) and "hard_to_learn" not in shown
    every = signal_counts(db, QueueFilter())
    assert list(every) == list(SIGNAL_QUEUES) and every["suspect_gold"] == len(RANKS)
    assert every["hard_to_learn"] == 0 and every["fixed_by_reflection"] == 0


def test_filters_with_signal_fields_save_and_describe(ranked):
    from db.queues import filter_from

    f = QueueFilter(queue="hard_to_learn", train_run=3, hard_confidence=0.4)
    assert filter_from(f.__dict__) == f
    assert f.describe() == "hard-to-learn · train run 3"


def test_region_queues_read_the_latest_train_run_with_the_filter_edges(ranked):
    from db.cartography import Edges, region_counts
    from db.runs import start_run

    db, ids = ranked
    old, new = start_run(db, "train", {}), start_run(db, "train", {})
    rows = {1: (0.1, 0.05), 2: (0.45, 0.1), 3: (0.9, 0.05), 4: (0.5, 0.3)}  # source id: (confidence, variability)
    with write_tx(db):
        for source, (confidence, variability) in rows.items():
            db.execute("INSERT INTO training_dynamics VALUES (?, ?, 1, '[0.5, 0.5]', ?, ?, 0.0)",
                       [new, ids[source], confidence, variability])
        db.execute("INSERT INTO training_dynamics VALUES (?, ?, 1, '[0.5, 0.5]', 0.1, 0.0, 0.0)", [old, ids[5]])
    members = {q: [r.id for r in page_after(db, QueueFilter(queue=q), None, 100)]
               for q in ("hard_to_learn", "ambiguous", "easy")}
    assert members == {"hard_to_learn": _order(ids, [1, 2]), "ambiguous": _order(ids, [4]), "easy": _order(ids, [3])}
    assert {q: len(v) for q, v in members.items()} == region_counts(db, new, Edges())
    stricter = QueueFilter(queue="hard_to_learn", hard_confidence=0.3)
    assert [r.id for r in page_after(db, stricter, None, 100)] == _order(ids, [1])
    assert [r.id for r in page_after(db, QueueFilter(queue="hard_to_learn", train_run=old), None, 100)] == [ids[5]]
