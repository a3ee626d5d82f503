"""Review queues without a terminal: membership, keyset paging, counts, positions, search, facets."""
from __future__ import annotations

import pytest

from db import open_db
from db import queue_pages as queues_module
from db.generations import add_generation
from db.queue_counts import count, counts, decided_count, position
from db.queue_pages import contains, last_page, page_after, page_before, rows_by_id, window_around
from db.queues import QUEUES, QueueFilter, UnknownQueueError, facets, high_water, ids
from db.reviews import record, undo
from db.runs import start_run
from db.search import search


@pytest.fixture
def store(demo_db_path):
    db = open_db(demo_db_path)
    yield db
    db.conn.close()


def _expected(db, queue: str, run_id: int | None = None) -> list[int]:
    """Each queue's definition written independently, in Python over plain rows."""
    ex = {r["id"]: r for r in db.query("SELECT * FROM examples")}
    state = {r["example_id"]: r for r in db.query("SELECT * FROM review_state")}
    status = {i: (state[i]["status"] if i in state else "pending") for i in ex}
    disagree = {i for i, r in ex.items() if r["thought_label"] is not None and r["gold_label"] is not None
                and r["thought_label"] != r["gold_label"]}
    latest: dict[int, dict] = {}
    for g in db.query("SELECT * FROM generations WHERE kind = 'prediction' ORDER BY id"):
        if run_id is None or g["run_id"] == run_id:
            latest[g["example_id"]] = g
    chosen = {
        "all": set(ex),
        "disagreements": disagree,
        "needs_reflection": {i for i in disagree if ex[i]["reflection_id"] is None},
        "pending": {i for i in ex if status[i] == "pending"},
        "accepted": {i for i in ex if status[i] == "accepted"},
        "rejected": {i for i in ex if status[i] == "rejected"},
        "edited": {i for i in ex if status[i] == "edited"},
        "bias_flagged": {i for i in ex if i in state and state[i]["bias_category"] is not None},
        "parse_failures": {i for i, r in ex.items() if r["parse_failed"]},
        "model_errors": {i for i, g in latest.items() if g["parse_status"] == "failed" or g["predicted_label"] is None
                         or (ex[i]["gold_label"] is not None and g["predicted_label"] != ex[i]["gold_label"])},
    }[queue]
    return sorted(chosen)


@pytest.fixture
def reviewed(store):
    """The demo store with decisions, a bias flag, an undone step, a relabel, and an evaluate run."""
    dis = [r[0] for r in store.execute("SELECT id FROM examples WHERE thought_label != gold_label ORDER BY id")]
    record(store, "accept", [dis[0]], reviewer="t", seconds_spent=3)
    record(store, "reject", [dis[1]], reviewer="t")
    record(store, "edit", [dis[2]], reviewer="t", payload={"thought": "Step 1: better.", "label": 1})
    record(store, "flag_bias", [dis[3], 1], reviewer="t", payload={"category": "gold_wrong"})
    record(store, "accept", [dis[4]], reviewer="t")
    undo(store, reviewer="t")  # dis[4] is pending again
    record(store, "relabel", [5], reviewer="t", payload={"label": 0})
    store.execute("UPDATE examples SET reflection_id = NULL WHERE id = ?", [dis[5]])  # a disagreement left unreflected
    store.conn.commit()
    run1, run2 = start_run(store, "evaluate", {}), start_run(store, "evaluate", {})
    gold = dict(store.execute("SELECT id, gold_label FROM examples").fetchall())
    for eid, label, run in ((1, 1 - gold[1], run1), (2, gold[2], run1), (3, None, run1), (1, gold[1], run2),
                            (4, 1 - gold[4], run2)):
        add_generation(store, example_id=eid, kind="prediction", model="m", backend="local", predicted_label=label,
                       parse_status="failed" if label is None else "ok", run_id=run, dedupe_key=f"p{eid}-{run}")
    return store, dis, (run1, run2)


@pytest.mark.parametrize("queue", QUEUES)
def test_each_queue_selects_what_it_says(reviewed, queue):
    store, _, _ = reviewed
    f = QueueFilter(queue=queue)
    expected = _expected(store, queue)
    assert ids(store, f) == expected
    assert count(store, f) == len(expected)
    assert [r.id for r in page_after(store, f, None, 100)] == expected


def test_queues_are_not_empty_where_the_fixture_put_something(reviewed):
    store, dis, _ = reviewed
    c = counts(store, QueueFilter())
    assert c["accepted"] == 1 and c["rejected"] == 1 and c["edited"] == 1 and c["bias_flagged"] == 2
    assert c["parse_failures"] >= 1 and c["needs_reflection"] == 1 and c["model_errors"] == 2
    assert c["pending"] == c["all"] - 3
    assert dis[4] in ids(store, QueueFilter(queue="pending"))  # the undone accept


def test_model_errors_per_run(reviewed):
    store, _, (run1, run2) = reviewed
    assert ids(store, QueueFilter(queue="model_errors", run_id=run1)) == [1, 3] == _expected(store, "model_errors", run1)
    assert ids(store, QueueFilter(queue="model_errors", run_id=run2)) == [4] == _expected(store, "model_errors", run2)
    # Without a run: the latest prediction counts, and example 1 was right in the latest run.
    assert ids(store, QueueFilter(queue="model_errors")) == [3, 4]


def test_keyset_paging_walks_the_queue_both_ways(reviewed):
    store, _, _ = reviewed
    f = QueueFilter()
    every, after = [], None
    while page := page_after(store, f, after, 7):
        every += [r.id for r in page]
        after = page[-1].id
    assert every == ids(store, f) and len(every) == 45
    back, before = [], 1 << 40
    while page := page_before(store, f, before, 6):
        back = [r.id for r in page] + back
        before = page[0].id
    assert back == every
    assert [r.id for r in last_page(store, f, 3)] == every[-3:]
    around = [r.id for r in window_around(store, f, every[20], before=4, after=5)]
    assert around == every[16:26]


def test_counts_positions_and_facets_agree_with_ids(reviewed):
    store, _, _ = reviewed
    for f in (QueueFilter(queue="disagreements", gold=1), QueueFilter(queue="pending", gold=0),
              QueueFilter(dataset="demo", split="train"), QueueFilter(model="demo/thought-writer"),
              QueueFilter(dataset="nope")):
        members = ids(store, f)
        assert count(store, f) == len(members)
        for i, eid in enumerate(members):
            assert position(store, f, eid) == i
            assert contains(store, f, eid)
        assert decided_count(store, f) == sum(1 for e in members if rows_by_id(store, [e])[e].status != "pending")
    assert not contains(store, QueueFilter(queue="accepted"), 1)


def test_search_reads_pairs_and_generated_text(reviewed):
    store, _, _ = reviewed
    markup = ids(store, QueueFilter(search="BBCode"))
    assert markup and "[bold]" in store.execute("SELECT premise FROM examples WHERE id = ?", markup).fetchone()[0]
    # Words of a thought only (not of the pair): found through the generations index.
    thought_only = ids(store, QueueFilter(search="arithmetic"))
    assert thought_only and count(store, QueueFilter(search="arithmetic")) == len(thought_only)
    assert ids(store, QueueFilter(search="   ")) == ids(store, QueueFilter())
    assert ids(store, QueueFilter(search='"[link=')) == ids(store, QueueFilter(search="link"))
    narrowed = ids(store, QueueFilter(queue="disagreements", search="the"))
    assert set(narrowed) <= set(ids(store, QueueFilter(queue="disagreements")))


@pytest.mark.parametrize("route", ["walk the matches", "then test queue members"])
@pytest.mark.parametrize("queue", QUEUES)
def test_a_search_within_each_queue_pages_counts_and_positions(reviewed, queue, route, monkeypatch):
    store, _, (run1, _) = reviewed
    monkeypatch.setattr(queues_module, "_FIRST_CHUNK", 1)  # chunks of 2, 8, 32 ids: several per page
    if route != "walk the matches":  # switch after the first chunk, however dense the queue
        monkeypatch.setattr(queues_module, "_SWITCH", 1)
        monkeypatch.setattr(queues_module, "_SPARSER", 0)
    run_id = run1 if queue == "model_errors" else None
    for text in ("the", "was", "before", "a man", "Zoë", "nothing-matches-this"):
        f = QueueFilter(queue=queue, search=text, run_id=run_id)
        expected = sorted(set(_expected(store, queue, run_id)) & set(search(store, text, limit=1000)))
        assert ids(store, f) == expected and count(store, f) == len(expected)
        assert counts(store, f)[queue] == len(expected)
        forward, after = [], None
        while page := page_after(store, f, after, 1 if queue == "all" else 2):
            forward += [r.id for r in page]
            after = page[-1].id
        backward, before = [], 1 << 62
        while page := page_before(store, f, before, 3):
            backward = [r.id for r in page] + backward
            before = page[0].id
        assert forward == backward == expected
        assert [r.id for r in last_page(store, f, 2)] == expected[-2:]
        for i, eid in enumerate(expected):
            assert position(store, f, eid) == i and contains(store, f, eid)
        assert not any(contains(store, f, eid) for eid in set(_expected(store, "all")) - set(expected))


def test_rows_carry_what_the_pane_shows(reviewed):
    store, dis, _ = reviewed
    rows = rows_by_id(store, [dis[0], dis[3], 5])
    assert rows[dis[0]].status == "accepted" and rows[dis[0]].thought_label != rows[dis[0]].gold_label
    assert rows[dis[3]].flagged and rows[5].suggested_label == 0
    assert all(len(r.snippet) <= 120 for r in rows.values())


def test_facets_and_high_water(reviewed):
    store, _, (run1, run2) = reviewed
    fac = facets(store)
    assert fac.datasets == ("demo",) and fac.splits == ("train",)
    assert "demo/thought-writer" in fac.models and fac.evaluate_runs == (run2, run1)
    before = high_water(store)
    record(store, "skip", [1], reviewer="t")
    assert high_water(store)[2] > before[2] and high_water(store)[:2] == before[:2]


def test_filters_validate_and_describe():
    with pytest.raises(UnknownQueueError, match="unknown queue 'todo'"):
        QueueFilter(queue="todo")
    with pytest.raises(ValueError):
        QueueFilter(gold=2)
    f = QueueFilter(queue="disagreements", dataset="rte", gold=1, search="bus")
    assert f.describe() == 'disagreements · rte/* · gold 1 · "bus"'
    assert f.replace(queue="all").queue == "all" and f.queue == "disagreements"


def test_an_empty_store_has_empty_queues(db):
    for q in QUEUES:
        f = QueueFilter(queue=q)
        assert page_after(db, f) == [] and count(db, f) == 0 and position(db, f, 10) == 0
    assert high_water(db) == (0, 0, 0)
