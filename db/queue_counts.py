"""How many examples a review queue holds, and where an example stands in it (slow scans on a big store:
callers run them off the UI thread)."""
from __future__ import annotations

from sqlite_utils import Database

from db import search
from db.queue_signals import RANKED_QUEUES, SIGNAL_QUEUES
from db.queue_team import team_queues
from db.queues import DECIDED_IN, QUEUES, QueueFilter, facet_terms, where, where_terms
from db.reviews import DECIDED_STATUSES
from db.search import fts_query


def count(db: Database, f: QueueFilter) -> int:
    """How many examples the filter selects."""
    if f.queue == "pending":  # the complement of the decided ones: far cheaper than NOT EXISTS per row
        decided = sum(count(db, f.replace(queue=q)) for q in DECIDED_STATUSES)
        return count(db, f.replace(queue="all")) - decided
    terms, args = where_terms(f)
    return int(db.execute(f"SELECT count(*) FROM examples e {where(terms)}", args).fetchone()[0])


def counts(db: Database, f: QueueFilter, me: str | None = None) -> dict[str, int]:
    """The count of every queue under the filter's facets and search text (the team queues the store has:
    db.queue_team.team_queues).

    With search text, the matches are found once (into a temporary table of this connection)
    rather than once per queue.
    """
    shown = QUEUES + team_queues(db) + ((f.queue,) if f.queue in SIGNAL_QUEUES else ())  # a signal queue: shown
    me = me or f.me
    query = fts_query(f.search)
    if not query:
        out = {q: count(db, f.replace(queue=q, me=me if q == "mine" else None)) for q in shown if q != "pending"}
    else:
        db.execute("DROP TABLE IF EXISTS temp.queue_search_hits")
        db.execute("CREATE TEMP TABLE queue_search_hits (id INTEGER PRIMARY KEY)")
        try:
            db.execute("INSERT OR IGNORE INTO temp.queue_search_hits "
                       f"SELECT rowid >> {search.SHIFT} FROM search_fts WHERE search_fts MATCH ?", [query])
            hits = "e.id IN (SELECT id FROM temp.queue_search_hits)"
            out = {}
            for q in shown:
                if q != "pending":
                    terms, args = where_terms(f.replace(queue=q, search="", me=me if q == "mine" else None))
                    sql = (f"SELECT count(*) FROM examples e {where(terms, hits)}" if terms
                           else "SELECT count(*) FROM temp.queue_search_hits")  # no need to visit the rows
                    out[q] = db.execute(sql, args).fetchone()[0]
        finally:
            db.execute("DROP TABLE IF EXISTS temp.queue_search_hits")
    out["pending"] = out["all"] - sum(out[q] for q in DECIDED_STATUSES)
    return {q: out[q] for q in shown}


def decided_count(db: Database, f: QueueFilter) -> int:
    """How many examples of the filter are accepted, rejected or edited (the review progress)."""
    if f.queue == "pending":
        return 0
    if f.queue in DECIDED_STATUSES:
        return count(db, f)
    terms, args = where_terms(f)
    decided = f"e.id IN (SELECT example_id FROM review_state WHERE status {DECIDED_IN})"
    return int(db.execute(f"SELECT count(*) FROM examples e {where(terms, decided)}", args).fetchone()[0])


def position(db: Database, f: QueueFilter, example_id: int) -> int:
    """How many examples of the queue come before example_id (its 0-based index when it is in it)."""
    if f.queue == "pending":
        before = position(db, f.replace(queue="all"), example_id)
        return before - sum(position(db, f.replace(queue=q), example_id) for q in DECIDED_STATUSES)
    if f.queue in RANKED_QUEUES:
        terms, args = facet_terms(f)
        rank = "s.rank < (SELECT rank FROM suspicion WHERE example_id = ?)"
        return int(db.execute(f"SELECT count(*) FROM suspicion s JOIN examples e ON e.id = s.example_id "
                              f"{where(terms, rank)}", [*args, example_id]).fetchone()[0])
    terms, args = where_terms(f)
    # With no condition but the id, count entries of a narrow index rather than the wide table rows.
    source = "examples e INDEXED BY examples_facets" if not terms else "examples e"
    return int(db.execute(f"SELECT count(*) FROM {source} {where(terms, 'e.id < ?')}",
                          [*args, example_id]).fetchone()[0])


def signal_counts(db: Database, f: QueueFilter) -> dict[str, int]:
    """The count of every signal queue (suspect gold, outcome cells, cartography regions) under f's facets and
    search: the review app's triage list."""
    return {q: count(db, f.replace(queue=q)) for q in SIGNAL_QUEUES}
