"""Team review's queues and filters on a real store: mine, conflicts, audit samples; flags, judge score,
reviewer, reason, thought length; named views. Each is checked against its definition written in Python."""
from __future__ import annotations

import pytest

from db import open_db, saved_views
from db.generations import add_generation
from db.queue_counts import count, counts, position
from db.queue_pages import contains, page_after, page_before, window_around
from db.queue_team import team_queues
from db.queues import QUEUES, QueueFilter, facets, filter_from, ids
from db.reviews import record


@pytest.fixture
def store(demo_db_path):
    db = open_db(demo_db_path)
    yield db
    db.conn.close()


def _assign(db, reviewer: str, example_ids) -> None:
    db.conn.executemany("INSERT INTO assignments (reviewer, example_id, assigned_at) VALUES (?, ?, 'now')",
                        [(reviewer, i) for i in example_ids])
    db.conn.commit()


@pytest.fixture
def team(store):
    """ada is assigned 1-10, bob 5-15; both decide some; they disagree on 6 and 9; a sample of 3."""
    _assign(store, "ada", range(1, 11))
    _assign(store, "bob", range(5, 16))
    record(store, "accept", [1, 2, 7], reviewer="ada")
    record(store, "accept", [6], reviewer="ada", payload={"comment": "fine"})
    record(store, "reject", [9], reviewer="ada", payload={"reason": "gold is wrong"})
    record(store, "reject", [5, 6], reviewer="bob", payload={"reason": "ambiguous pair"})
    record(store, "accept", [7], reviewer="bob")
    record(store, "flag_bias", [9], reviewer="bob", payload={"category": "ambiguous", "reason": "ambiguous pair"})
    store.conn.executemany("INSERT INTO samples (name, example_id, created_at) VALUES (?, ?, 'now')",
                           [("audit", 3), ("audit", 30), ("audit", 44), ("other", 12)])
    store.conn.commit()
    return store


def _all(db, f: QueueFilter) -> list[int]:
    """Every id of the queue, read page by page (3 at a time) as the app reads it."""
    out: list[int] = []
    while rows := page_after(db, f, out[-1] if out else None, 3):
        out += [r.id for r in rows]
    return out


def _check(db, f: QueueFilter, expected: list[int]) -> None:
    assert _all(db, f) == expected
    assert ids(db, f) == expected
    assert count(db, f) == len(expected)
    assert [r.id for r in page_before(db, f, 1 << 40, 100)] == expected
    if expected:
        middle = expected[len(expected) // 2]
        assert position(db, f, middle) == expected.index(middle)
        assert contains(db, f, middle) and not contains(db, f, max(expected) + 100)
        assert [r.id for r in window_around(db, f, middle, 1, 1)] == expected[max(0, expected.index(middle) - 1):
                                                                              expected.index(middle) + 2]


def test_mine_is_assigned_to_me_and_not_yet_decided_by_me(team):
    # bob's reject of 5 leaves it in ada's queue: mine is per reviewer.
    _check(team, QueueFilter(queue="mine", me="ada"), [3, 4, 5, 8, 10])
    _check(team, QueueFilter(queue="mine", me="bob"), [8, 10, 11, 12, 13, 14, 15])  # his flag on 9 is a decision
    _check(team, QueueFilter(queue="mine", me="cy"), [])
    assert ids(team, QueueFilter(queue="mine")) == []  # no reviewer: nobody's queue
    record(team, "edit", [3], reviewer="ada", payload={"thought": "Step 1: fixed.", "label": 1})
    assert 3 not in ids(team, QueueFilter(queue="mine", me="ada"))


def test_conflicts_list_disagreements_until_adjudicated(team):
    _check(team, QueueFilter(queue="conflicts"), [6, 9])  # 7: both accepted; 5: bob alone
    record(team, "accept", [6], reviewer="cy", payload={"adjudication": True})
    _check(team, QueueFilter(queue="conflicts"), [9])


def test_audit_sample_queue_per_name_or_all(team):
    _check(team, QueueFilter(queue="sample", sample="audit"), [3, 30, 44])
    _check(team, QueueFilter(queue="sample"), [3, 12, 30, 44])
    _check(team, QueueFilter(queue="sample", sample="nope"), [])


def test_team_queues_are_counted_only_on_a_store_that_has_them(store):
    assert team_queues(store) == ()
    assert set(counts(store, QueueFilter(), me="ada")) == set(QUEUES)  # an unassigned store counts as before
    _assign(store, "ada", [2, 4])
    record(store, "accept", [4], reviewer="ada")
    assert counts(store, QueueFilter(), me="ada")["mine"] == 1
    assert counts(store, QueueFilter(gold=1), me="bob")["mine"] == 0
    record(store, "reject", [4], reviewer="bob")
    assert team_queues(store) == ("mine", "conflicts")
    found = counts(store, QueueFilter(search="the"), me="ada")
    assert found["conflicts"] == len(ids(store, QueueFilter(queue="conflicts", search="the")))


def test_filters_on_reviewer_and_reason(team):
    _check(team, QueueFilter(reviewer="ada"), [1, 2, 6, 7, 9])
    _check(team, QueueFilter(reason="ambiguous pair"), [5, 6, 9])
    _check(team, QueueFilter(reviewer="ada", reason="ambiguous pair"), [])
    _check(team, QueueFilter(queue="conflicts", reviewer="bob", reason="ambiguous pair"), [6, 9])


def test_filters_on_flags(store):
    flagged = {name: sorted(r[0] for r in store.execute(
        "SELECT e.id FROM examples e JOIN generations g ON g.id IN (e.thought_id, e.reflection_id) "
        "WHERE g.flags LIKE ?", [f'%"{name}"%'])) for name in ("label_not_gold", "label_inconsistent")}
    assert flagged["label_not_gold"] and not flagged["label_inconsistent"]  # the demo's one flagged reflection
    add_generation(store, example_id=8, kind="thought", model="m", backend="local", thought_process="Step 1: no.",
                   predicted_label=1, parse_status="ok", flags=["label_inconsistent"], dedupe_key="inconsistent-8")
    _check(store, QueueFilter(flag="label_not_gold"), flagged["label_not_gold"])
    _check(store, QueueFilter(flag="label_inconsistent"), [8])
    with pytest.raises(ValueError, match="unknown flag"):
        QueueFilter(flag="label_wrong")


def test_filters_on_judge_score_and_thought_length(store):
    for eid, scores in ((2, (0.2, 0.9)), (3, (0.5,)), (4, (0.8, 0.1))):
        for n, score in enumerate(scores):
            add_generation(store, example_id=eid, kind="judge", model="j", backend="local", score=score,
                           parse_status="ok", dedupe_key=f"judge-{eid}-{n}")
    _check(store, QueueFilter(judge_min=0.5), [2, 3])  # the latest judgement counts: 4's is 0.1
    _check(store, QueueFilter(judge_max=0.5), [3, 4])
    _check(store, QueueFilter(judge_min=0.4, judge_max=0.6), [3])
    words = {r[0]: r[1].strip().count(" ") + 1 for r in store.execute(
        "SELECT e.id, g.thought_process FROM examples e JOIN generations g ON g.id = e.thought_id")}
    low, high = sorted(words.values())[10], sorted(words.values())[30]
    _check(store, QueueFilter(words_min=low, words_max=high), sorted(i for i, w in words.items() if low <= w <= high))
    _check(store, QueueFilter(queue="disagreements", words_max=high),
           [i for i in ids(store, QueueFilter(queue="disagreements")) if words[i] <= high])
    with pytest.raises(ValueError, match="above its maximum"):
        QueueFilter(words_min=9, words_max=3)


def test_a_search_within_a_team_queue(team):
    everything = set(ids(team, QueueFilter(search="a")))
    _check(team, QueueFilter(queue="mine", me="bob", search="a"),
           [i for i in [8, 10, 11, 12, 13, 14, 15] if i in everything])


def test_facets_list_samples_reviewers_and_reasons(team):
    found = facets(team)
    assert found.samples == ("audit", "other") and found.reviewers == ("ada", "bob")
    assert found.reasons == ("ambiguous pair", "gold is wrong")


def test_named_views_round_trip_per_reviewer(team):
    f = QueueFilter(queue="mine", me="ada", gold=1, reason="ambiguous pair", words_max=80, search="bus")
    saved_views.save(team, "ada", "  my gold ones ", f, "2026-01-01T00:00:00")
    saved_views.save(team, "ada", "later", QueueFilter(), "2026-01-02T00:00:00")
    assert saved_views.names(team, "ada") == ["later", "my gold ones"]
    assert saved_views.names(team, "bob") == []
    assert saved_views.load(team, "ada", "my gold ones") == f
    assert saved_views.load(team, "bob", "my gold ones") is None
    # bob opening a mine view saved by ada would see his own queue
    saved_views.save(team, "bob", "mine", f, "2026-01-03T00:00:00")
    assert saved_views.load(team, "bob", "mine") == f.replace(me="bob")
    saved_views.save(team, "ada", "later", QueueFilter(queue="conflicts"), "2026-01-04T00:00:00")
    assert saved_views.load(team, "ada", "later") == QueueFilter(queue="conflicts")
    assert saved_views.delete(team, "ada", "later") and not saved_views.delete(team, "ada", "later")
    with pytest.raises(saved_views.ViewNameError, match="1 to 60"):
        saved_views.save(team, "ada", "  ", f, "2026-01-05T00:00:00")
    team.execute("UPDATE saved_views SET filter = '{\"queue\": \"gone\"}' WHERE name = 'mine'")
    assert saved_views.load(team, "bob", "mine") is None  # a view another version wrote
    assert filter_from({"queue": "mine", "me": "x"}) == QueueFilter(queue="mine", me="x")


def _plan(db, f: QueueFilter) -> str:
    from db.queue_pages import _select_sql
    from db.queues import where_terms

    terms, args = where_terms(f)
    sql, sql_args = _select_sql(terms, args, "e.id > ?", [0], False)
    return " | ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", [*sql_args, 10]))


def test_team_queues_read_through_their_indexes(team):
    assert "review_state_conflict" in _plan(team, QueueFilter(queue="conflicts"))
    statements: list[str] = []
    team.conn.set_trace_callback(statements.append)
    page_after(team, QueueFilter(queue="mine", me="ada"), None, 2)
    team.conn.set_trace_callback(None)
    walk = " | ".join(r[3] for r in team.execute(f"EXPLAIN QUERY PLAN {statements[0]}"))
    assert walk.startswith("MERGE (EXCEPT)") and "SCAN" not in walk, walk  # two index walks, in id order
    assert "USING PRIMARY KEY (reviewer=? AND example_id>? AND example_id<?)" in walk
    assert "COVERING INDEX review_decisions_reviewer" in walk
    assert "review_decisions_reason" in _plan(team, QueueFilter(reason="gold is wrong"))
    assert "review_decisions_reviewer" in _plan(team, QueueFilter(reviewer="ada"))
    assert "generations_flagged" in _plan(team, QueueFilter(flag="label_not_gold"))  # its few members, not a scan
    assert "generations_judged" in _plan(team, QueueFilter(judge_min=0.5))


def test_mine_pages_walk_the_assignments_chunk_by_chunk(store, monkeypatch):
    """ada decided the first 30 of her 45 examples in order; her queue under a gold filter, read in chunks
    of 2 ids (so the walk crosses many chunks), forwards, backwards and around an example."""
    import db.queue_pages as pages

    monkeypatch.setattr(pages, "_FIRST_CHUNK", 2)
    _assign(store, "ada", range(1, 46))
    record(store, "accept", list(range(1, 31)), reviewer="ada")
    record(store, "reject", [33], reviewer="bob")
    gold = dict(store.execute("SELECT id, gold_label FROM examples").fetchall())
    _check(store, QueueFilter(queue="mine", me="ada"), list(range(31, 46)))
    _check(store, QueueFilter(queue="mine", me="ada", gold=1), [i for i in range(31, 46) if gold[i] == 1])
    assert [r.id for r in page_before(store, QueueFilter(queue="mine", me="ada"), 40, 4)] == [36, 37, 38, 39]
