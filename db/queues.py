"""Review queues: a filter over examples, keyset paging, counts and positions (headless; the TUI is thin over it).

Paging is by id (`id > ? ORDER BY id LIMIT n`, and `id < ?` descending to go back), so a page costs
the same at row 10 as at row 1,000,000. Counts can take a while on a big store: callers run them
off the UI thread.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from db import search
from db.errors import StoreError
from db.search import fts_query

QUEUES = (
    "all", "disagreements", "needs_reflection", "pending", "accepted", "rejected", "edited",
    "bias_flagged", "parse_failures", "model_errors",
)
QUEUE_TITLES = {
    "all": "all",
    "disagreements": "disagreements",
    "needs_reflection": "needs reflection",
    "pending": "pending review",
    "accepted": "accepted",
    "rejected": "rejected",
    "edited": "edited",
    "bias_flagged": "bias-flagged",
    "parse_failures": "parse failures",
    "model_errors": "model errors",
}
DECIDED = ("accepted", "rejected", "edited")
_LISTED = (*DECIDED, "bias_flagged", "model_errors")  # queues whose members a statement lists first
_DISAGREE = "e.thought_label != e.gold_label"
# Examples whose latest prediction (of one evaluate run when the filter names it) failed to parse or
# differs from gold. Not correlated with the outer row, so SQLite builds the id list once. The latest
# prediction per example comes from one pass over the small partial index generations_predictions
# (GROUP BY; a correlated max() per prediction read the large generations_example instead: 0.7 s of
# a 1.7 s first page read cold, on 1M examples with 10,000 predictions).
_PREDICTION_WRONG = (
    "e.id IN (SELECT p.example_id FROM (SELECT max(id) AS id FROM generations INDEXED BY generations_predictions "
    "WHERE kind = 'prediction'{run} GROUP BY example_id) latest "
    "JOIN generations p ON p.id = latest.id JOIN examples x ON x.id = p.example_id "
    "WHERE p.parse_status = 'failed' OR p.predicted_label IS NULL "
    "OR (x.gold_label IS NOT NULL AND p.predicted_label != x.gold_label))"
)
# The same rule tested row by row (for narrowing a given list of ids, e.g. a chunk of search matches).
_PREDICTION_WRONG_ROW = (
    "EXISTS (SELECT 1 FROM generations p WHERE p.id = (SELECT max(id) FROM generations "
    "WHERE example_id = e.id AND kind = 'prediction'{run}) "
    "AND (p.parse_status = 'failed' OR p.predicted_label IS NULL "
    "OR (e.gold_label IS NOT NULL AND p.predicted_label != e.gold_label)))"
)
# Examples matching a search (the pair or one generation holds every word): for whole-set reads
# (counts, positions, bulk ids); pages walk the matches in id order instead (_search_rows).
_SEARCH = f"e.id IN (SELECT rowid >> {search.SHIFT} FROM search_fts WHERE search_fts MATCH ?)"
# A page with search text reads matching ids in chunks: the first of _FIRST_CHUNK (or twice the page),
# each next one 4x larger up to _MAX_CHUNK (narrowed by the queue in one statement: SQLite allows
# 32,766 parameters). After _SWITCH ids, a queue _SPARSER times sparser than the matches is walked
# instead, each member tested against the index (a test costs about as much as reading 16 matches).
_FIRST_CHUNK, _MAX_CHUNK, _SWITCH, _SPARSER = 64, 16_384, 4_096, 16
# Whether the example e holds the search (one seek per term within its rowids).
_PROBE = (f"EXISTS (SELECT 1 FROM search_fts WHERE search_fts MATCH ? AND rowid >= e.id << {search.SHIFT} "
          f"AND rowid < (e.id + 1) << {search.SHIFT})")
_ROW_COLUMNS = (
    "e.id, e.gold_label, e.thought_label, e.reflection_id IS NOT NULL, e.parse_failed, "
    "coalesce(r.status, 'pending'), r.bias_category IS NOT NULL, r.suggested_label, substr(e.hypothesis, 1, 120)"
)


class UnknownQueueError(StoreError, ValueError):
    """A filter named a queue that does not exist."""


@dataclass(frozen=True)
class QueueFilter:
    """Which examples a queue shows: the queue, optional facets, search text, an evaluate run."""

    queue: str = "all"
    dataset: str | None = None
    split: str | None = None
    gold: int | None = None
    model: str | None = None  # the model of the current thought
    search: str = ""
    run_id: int | None = None  # model errors of this evaluate run only

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise UnknownQueueError(f"unknown queue {self.queue!r}; expected one of {', '.join(QUEUES)}")
        if self.gold not in (None, 0, 1):
            raise ValueError("a gold label filter is 0, 1 or None")

    def replace(self, **changes: Any) -> QueueFilter:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """A short human description, e.g. 'disagreements · rte/dev · gold 1 · "bus"'."""
        parts = [QUEUE_TITLES[self.queue]]
        if self.dataset or self.split:
            parts.append(f"{self.dataset or '*'}/{self.split or '*'}")
        if self.gold is not None:
            parts.append(f"gold {self.gold}")
        if self.model:
            parts.append(f"model {self.model}")
        if self.run_id is not None:
            parts.append(f"run {self.run_id}")
        if self.search.strip():
            parts.append(f'"{self.search.strip()}"')
        return " · ".join(parts)


@dataclass(frozen=True)
class QueueRow:
    """One line of the queue pane: enough to show the row without loading the example."""

    id: int
    gold_label: int | None
    thought_label: int | None
    has_reflection: bool
    parse_failed: bool
    status: str  # pending | accepted | rejected | edited
    flagged: bool
    suggested_label: int | None
    snippet: str  # the start of the hypothesis
    unsaved: bool = False  # the app journaled a decision on it that the writer has not stored yet


@dataclass(frozen=True)
class Facets:
    """The values the facet filters can take in this store."""

    datasets: tuple[str, ...]
    splits: tuple[str, ...]
    models: tuple[str, ...]
    evaluate_runs: tuple[int, ...]


def queue_sql(queue: str, run_id: int | None = None, per_row: bool = False) -> tuple[str | None, list[Any]]:
    """The WHERE condition (over `examples e`) that defines a queue (None: every example), with its parameters.

    per_row: written to test given rows (lookups per row) rather than to list the queue's members
    (which a statement builds once, however few rows it then tests).
    """
    if queue == "all":
        return None, []
    if queue == "disagreements":
        return _DISAGREE, []
    if queue == "needs_reflection":
        return f"{_DISAGREE} AND e.reflection_id IS NULL", []
    if queue == "pending":
        return ("NOT EXISTS (SELECT 1 FROM review_state r0 WHERE r0.example_id = e.id "
                "AND r0.status != 'pending')"), []
    if queue in DECIDED:
        if per_row:
            return "EXISTS (SELECT 1 FROM review_state r1 WHERE r1.example_id = e.id AND r1.status = ?)", [queue]
        return "e.id IN (SELECT example_id FROM review_state WHERE status = ?)", [queue]
    if queue == "bias_flagged":
        if per_row:
            return ("EXISTS (SELECT 1 FROM review_state r1 WHERE r1.example_id = e.id "
                    "AND r1.bias_category IS NOT NULL)"), []
        return "e.id IN (SELECT example_id FROM review_state WHERE bias_category IS NOT NULL)", []
    if queue == "parse_failures":
        return "e.parse_failed = 1", []
    if queue == "model_errors":
        rule = _PREDICTION_WRONG_ROW if per_row else _PREDICTION_WRONG
        if run_id is None:
            return rule.format(run=""), []
        return rule.format(run=" AND run_id = ?"), [run_id]
    raise UnknownQueueError(f"unknown queue {queue!r}; expected one of {', '.join(QUEUES)}")


def facet_terms(f: QueueFilter) -> tuple[list[str], list[Any]]:
    """The conditions of the facets and the search text (not the queue), with their parameters."""
    terms: list[str] = []
    args: list[Any] = []
    for column, value in (("dataset", f.dataset), ("split", f.split), ("gold_label", f.gold),
                          ("thought_model", f.model)):
        if value is not None:
            terms.append(f"e.{column} = ?")
            args.append(value)
    query = fts_query(f.search)
    if query:
        terms.append(_SEARCH)
        args.append(query)
    return terms, args


def where_terms(f: QueueFilter, per_row: bool = False) -> tuple[list[str], list[Any]]:
    """Every condition of a filter, over `examples e` (an empty list: every example); per_row as in queue_sql."""
    q_sql, q_args = queue_sql(f.queue, f.run_id, per_row)
    terms, args = facet_terms(f)
    return ([q_sql] if q_sql else []) + terms, [*q_args, *args]


def _where(terms: list[str], *extra: str) -> str:
    parts = [*terms, *extra]
    return f"WHERE {' AND '.join(parts)}" if parts else ""


def _rows(db: Database, f: QueueFilter, cmp: str, bound: int, order: str, limit: int) -> list[QueueRow]:
    if fts_query(f.search):
        return _search_rows(db, f, bound, order == "DESC", limit)
    terms, args = where_terms(f)
    return _select_rows(db, terms, args, f"e.id {cmp} ?", [bound], order == "DESC", limit)


def _search_rows(db: Database, f: QueueFilter, bound: int, descending: bool, limit: int) -> list[QueueRow]:
    """Rows past bound of a filter with search text: walk the matches in id order, chunk by chunk.

    Each chunk of matching ids (read from the index, which stops after it) is narrowed by the queue
    and facets; chunks grow until the page is full, so a dense queue reads a few hundred matches.
    When many matches gave few rows and the queue is much sparser than the matches, the rest of
    the page walks the queue instead, testing each member against the index.
    """
    query = search.match_query(db, f.search)
    bare = f.replace(search="")
    terms, args = where_terms(bare, per_row=True)
    rows: list[QueueRow] = []
    first, read, size = None, 0, min(max(2 * limit, _FIRST_CHUNK), _MAX_CHUNK)
    while len(rows) < limit:
        after, before = (None, bound) if descending else (bound, None)
        found = search.matching_ids(db, query, after, before, size, descending)
        if found:
            rows += _select_rows(db, terms, args, f"e.id IN ({','.join('?' * len(found))})", found, descending,
                                 limit - len(rows))
        if len(found) < size:
            break
        first = found[0] if first is None else first
        bound, read, size = found[-1], read + len(found), min(4 * size, _MAX_CHUNK)
        if len(rows) < limit and read >= _SWITCH:
            probe = _queue_probe(db, bare, query, bound, descending, read / max(1, abs(bound - first)))
            if probe:
                rows += _to_rows(db.execute(probe[0], [*probe[1], limit - len(rows)]).fetchall())
                break
    return rows


def _select_rows(db: Database, terms: list[str], args: list[Any], extra: str, extra_args: list[Any],
                 descending: bool, limit: int) -> list[QueueRow]:
    sql, sql_args = _select_sql(terms, args, extra, extra_args, descending)
    return _to_rows(db.execute(sql, [*sql_args, limit]).fetchall())


def _select_sql(terms: list[str], args: list[Any], extra: str, extra_args: list[Any],
                descending: bool) -> tuple[str, list[Any]]:
    sql = (f"SELECT {_ROW_COLUMNS} FROM examples e LEFT JOIN review_state r ON r.example_id = e.id "
           f"{_where(terms, extra)} ORDER BY e.id {'DESC' if descending else 'ASC'} LIMIT ?")
    return sql, [*args, *extra_args]


def _queue_probe(db: Database, f: QueueFilter, query: str, bound: int, descending: bool,
                 match_density: float) -> tuple[str, list[Any]] | None:
    """The statement that walks the queue past bound testing each member, when that is the cheaper way.

    It is when the queue's next members lie _SPARSER times further apart than the matches (a queue
    listed from review_state or predictions is taken as sparse: its list bounds the walk, and
    listing it twice would cost more than testing it), SQLite can read the queue in id order (so
    LIMIT stops the walk) and no prefix term is left in the query (FTS5 would merge its whole
    document list for every member tested).
    """
    terms, args = where_terms(f)
    if not terms or "*" in query:
        return None
    cmp = "<" if descending else ">"
    if f.queue not in _LISTED:
        ahead_sql, ahead_args = _select_sql(terms, args, f"e.id {cmp} ?", [bound], descending)
        ahead = [r[0] for r in db.execute(ahead_sql, [*ahead_args, 64])]
        if len(ahead) == 64 and 64 / abs(ahead[-1] - bound) * _SPARSER >= match_density:
            return None
    sql, sql_args = _select_sql(terms, args, f"e.id {cmp} ? AND {_PROBE}", [bound, query], descending)
    plan = " ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", [*sql_args, 1]))
    return None if "ORDER BY" in plan else (sql, sql_args)


def _to_rows(raw: list[tuple[Any, ...]]) -> list[QueueRow]:
    return [QueueRow(i, g, t, bool(h), bool(p), s, bool(fl), sl, snip or "")
            for i, g, t, h, p, s, fl, sl, snip in raw]


def page_after(db: Database, f: QueueFilter, after_id: int | None = None, limit: int = 50) -> list[QueueRow]:
    """Up to limit rows with id above after_id (from the start when None), in id order."""
    return _rows(db, f, ">", -1 if after_id is None else after_id, "ASC", limit)


def page_before(db: Database, f: QueueFilter, before_id: int, limit: int = 50) -> list[QueueRow]:
    """Up to limit rows with id below before_id, returned in id order (the nearest last)."""
    return _rows(db, f, "<", before_id, "DESC", limit)[::-1]


def last_page(db: Database, f: QueueFilter, limit: int = 50) -> list[QueueRow]:
    """The last limit rows of the queue, in id order."""
    return page_before(db, f, 1 << 62, limit)


def window_around(db: Database, f: QueueFilter, example_id: int, before: int = 20,
                  after: int = 60) -> list[QueueRow]:
    """Rows around example_id: up to `before` rows below it, then it (if in the queue) and `after` more."""
    return page_before(db, f, example_id, before) + page_after(db, f, example_id - 1, after + 1)


def rows_by_id(db: Database, example_ids: list[int]) -> dict[int, QueueRow]:
    """The current rows of these examples, whatever queue they are in (to refresh a window in place)."""
    found: dict[int, QueueRow] = {}
    for start in range(0, len(example_ids), 500):
        chunk = [int(i) for i in example_ids[start: start + 500]]
        sql = (f"SELECT {_ROW_COLUMNS} FROM examples e LEFT JOIN review_state r ON r.example_id = e.id "
               f"WHERE e.id IN ({','.join('?' * len(chunk))})")
        for row in _to_rows(db.execute(sql, chunk).fetchall()):
            found[row.id] = row
    return found


def contains(db: Database, f: QueueFilter, example_id: int) -> bool:
    """Whether the example is in the queue."""
    if fts_query(f.search) and not search.matching_ids(db, search.match_query(db, f.search), example_id - 1,
                                                         example_id + 1, 1):
        return False
    terms, args = where_terms(f.replace(search=""))
    sql = f"SELECT 1 FROM examples e {_where(terms, 'e.id = ?')}"
    return db.execute(sql, [*args, example_id]).fetchone() is not None


def count(db: Database, f: QueueFilter) -> int:
    """How many examples the filter selects."""
    if f.queue == "pending":  # the complement of the decided ones: far cheaper than NOT EXISTS per row
        decided = sum(count(db, f.replace(queue=q)) for q in DECIDED)
        return count(db, f.replace(queue="all")) - decided
    terms, args = where_terms(f)
    return db.execute(f"SELECT count(*) FROM examples e {_where(terms)}", args).fetchone()[0]


def counts(db: Database, f: QueueFilter) -> dict[str, int]:
    """The count of every queue under the filter's facets and search text.

    With search text, the matches are found once (into a temporary table of this connection)
    rather than once per queue.
    """
    query = fts_query(f.search)
    if not query:
        out = {q: count(db, f.replace(queue=q)) for q in QUEUES if q != "pending"}
    else:
        db.execute("DROP TABLE IF EXISTS temp.queue_search_hits")
        db.execute("CREATE TEMP TABLE queue_search_hits (id INTEGER PRIMARY KEY)")
        try:
            db.execute("INSERT OR IGNORE INTO temp.queue_search_hits "
                       f"SELECT rowid >> {search.SHIFT} FROM search_fts WHERE search_fts MATCH ?", [query])
            hits = "e.id IN (SELECT id FROM temp.queue_search_hits)"
            out = {}
            for q in QUEUES:
                if q != "pending":
                    terms, args = where_terms(f.replace(queue=q, search=""))
                    sql = (f"SELECT count(*) FROM examples e {_where(terms, hits)}" if terms
                           else "SELECT count(*) FROM temp.queue_search_hits")  # no need to visit the rows
                    out[q] = db.execute(sql, args).fetchone()[0]
        finally:
            db.execute("DROP TABLE IF EXISTS temp.queue_search_hits")
    out["pending"] = out["all"] - sum(out[q] for q in DECIDED)
    return {q: out[q] for q in QUEUES}


def decided_count(db: Database, f: QueueFilter) -> int:
    """How many examples of the filter are accepted, rejected or edited (the review progress)."""
    if f.queue == "pending":
        return 0
    if f.queue in DECIDED:
        return count(db, f)
    terms, args = where_terms(f)
    decided = "e.id IN (SELECT example_id FROM review_state WHERE status IN ('accepted', 'rejected', 'edited'))"
    return db.execute(f"SELECT count(*) FROM examples e {_where(terms, decided)}", args).fetchone()[0]


def position(db: Database, f: QueueFilter, example_id: int) -> int:
    """How many examples of the queue come before example_id (its 0-based index when it is in it)."""
    if f.queue == "pending":
        before = position(db, f.replace(queue="all"), example_id)
        return before - sum(position(db, f.replace(queue=q), example_id) for q in DECIDED)
    terms, args = where_terms(f)
    # With no condition but the id, count entries of a narrow index rather than the wide table rows.
    source = "examples e INDEXED BY examples_facets" if not terms else "examples e"
    return db.execute(f"SELECT count(*) FROM {source} {_where(terms, 'e.id < ?')}",
                      [*args, example_id]).fetchone()[0]


def ids(db: Database, f: QueueFilter) -> list[int]:
    """Every example id the filter selects, in order (for bulk actions)."""
    terms, args = where_terms(f)
    return [r[0] for r in db.execute(f"SELECT e.id FROM examples e {_where(terms)} ORDER BY e.id", args)]


def ids_by_decision(db: Database, f: QueueFilter) -> tuple[list[int], list[int]]:
    """The filter's example ids, in order, split into undecided ones and ones already accepted, rejected or
    edited (a bulk action leaves those alone unless the reviewer includes them)."""
    terms, args = where_terms(f)
    statuses = ", ".join(f"'{s}'" for s in DECIDED)
    undecided: list[int] = []
    decided: list[int] = []
    done_sql = f"EXISTS (SELECT 1 FROM review_state r WHERE r.example_id = e.id AND r.status IN ({statuses}))"
    for example_id, done in db.execute(f"SELECT e.id, {done_sql} FROM examples e {_where(terms)} ORDER BY e.id", args):
        (decided if done else undecided).append(example_id)
    return undecided, decided


def facets(db: Database) -> Facets:
    """The datasets, splits, thought models and evaluate runs present in the store."""
    def col(sql: str) -> tuple[Any, ...]:
        return tuple(r[0] for r in db.execute(sql).fetchall())

    return Facets(
        datasets=col("SELECT DISTINCT dataset FROM examples ORDER BY 1"),
        splits=col("SELECT DISTINCT split FROM examples ORDER BY 1"),
        models=col("SELECT DISTINCT thought_model FROM examples WHERE thought_model IS NOT NULL ORDER BY 1"),
        evaluate_runs=col("SELECT id FROM runs WHERE kind = 'evaluate' ORDER BY id DESC"),
    )


def high_water(db: Database) -> tuple[int, int, int]:
    """The largest example, generation and review event ids: a cheap 'has anything changed' check."""
    return tuple(  # type: ignore[return-value]
        db.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0]
        for t in ("examples", "generations", "review_events")
    )
