"""Reading a review queue page by page: keyset paging by id, walking search matches in id order.

Paging is by id (`id > ? ORDER BY id LIMIT n`, and `id < ?` descending to go back), so a page costs
the same at row 10 as at row 1,000,000. A ranked queue (suspect gold) pages by its stored rank instead;
callers still name rows by example id, and page_from starts a page at one.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from db import search
from db.queue_signals import RANKED_QUEUES
from db.queue_team import TEAM_QUEUES, mine_ids
from db.queues import QueueFilter, QueueRow, facet_terms, where, where_terms
from db.reviews import DECIDED_STATUSES
from db.scope import by_ids
from db.search import fts_query

# Queues whose members a statement lists first.
_LISTED = (*DECIDED_STATUSES, "bias_flagged", "model_errors", *TEAM_QUEUES)
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


_END = 1 << 62  # a bound past every id: page_before(_END) reads the queue's end


def _rows(db: Database, f: QueueFilter, cmp: str, bound: int, order: str, limit: int) -> list[QueueRow]:
    if f.queue in RANKED_QUEUES:
        return _ranked_rows(db, f, bound, order == "DESC", limit)
    if fts_query(f.search):
        return _search_rows(db, f, bound, order == "DESC", limit)
    if f.queue == "mine" and f.me is not None:  # the reviewer's queue, walked in id order from its indexes
        terms, args = where_terms(f.replace(queue="all"), per_row=True)
        return _walk_rows(db, functools.partial(mine_ids, db, f.me), terms, args, bound, order == "DESC", limit)
    terms, args = where_terms(f)
    return _select_rows(db, terms, args, f"e.id {cmp} ?", [bound], order == "DESC", limit)


def _ranked_rows(db: Database, f: QueueFilter, bound: int, descending: bool, limit: int,
                 inclusive: bool = False) -> list[QueueRow]:
    """Rows of a ranked queue (the stored suspicion ranking) ranked after (before) the example `bound`.

    The bound is an example id as for every queue; -1 is the start and _END the end. An example
    not in the ranking has nothing before it and the whole queue after it.
    """
    if bound < 0 or bound >= _END:
        rank = 0 if bound < 0 else _END
    else:
        found = db.execute("SELECT rank FROM suspicion WHERE example_id = ?", [bound]).fetchone()
        if found is None and descending:
            return []
        rank = 0 if found is None else int(found[0])
    terms, args = facet_terms(f)
    cmp = ("<" if descending else ">") + ("=" if inclusive else "")
    sql = (f"SELECT {_ROW_COLUMNS} FROM suspicion s JOIN examples e ON e.id = s.example_id "
           f"LEFT JOIN review_state r ON r.example_id = e.id {where(terms, f's.rank {cmp} ?')} "
           f"ORDER BY s.rank {'DESC' if descending else 'ASC'} LIMIT ?")
    return _to_rows(db.execute(sql, [*args, rank, limit]).fetchall())


def _search_rows(db: Database, f: QueueFilter, bound: int, descending: bool, limit: int) -> list[QueueRow]:
    """Rows past bound of a filter with search text: walk the matches in id order, chunk by chunk (_walk_rows).

    When many matches gave few rows and the queue is much sparser than the matches, the rest of
    the page walks the queue instead, testing each member against the index.
    """
    query = search.match_query(db, f.search)
    bare = f.replace(search="")
    terms, args = where_terms(bare, per_row=True)
    return _walk_rows(db, functools.partial(search.matching_ids, db, query), terms, args, bound, descending, limit,
                      lambda at, density: _queue_probe(db, bare, query, at, descending, density))


def _walk_rows(db: Database, fetch: Callable[[int | None, int | None, int, bool], list[int]], terms: list[str],
               args: list[Any], bound: int, descending: bool, limit: int,
               switch: Callable[[int, float], tuple[str, list[Any]] | None] | None = None) -> list[QueueRow]:
    """Rows past bound among the ids fetch(after, before, size, descending) lists in id order, narrowed by terms.

    Each chunk of ids (read from an index, which stops after it) is narrowed in one statement; chunks
    grow until the page is full, so a dense queue reads a few hundred ids. After _SWITCH ids,
    switch(bound, ids read per id walked) may give a statement that reads the rest of the page instead.
    """
    rows: list[QueueRow] = []
    first, read, size = None, 0, min(max(2 * limit, _FIRST_CHUNK), _MAX_CHUNK)
    while len(rows) < limit:
        after, before = (None, bound) if descending else (bound, None)
        found = fetch(after, before, size, descending)
        if found:
            rows += _select_rows(db, terms, args, f"e.id IN ({','.join('?' * len(found))})", found, descending,
                                 limit - len(rows))
        if len(found) < size:
            break
        first = found[0] if first is None else first
        bound, read, size = found[-1], read + len(found), min(4 * size, _MAX_CHUNK)
        if switch is not None and len(rows) < limit and read >= _SWITCH:
            probe = switch(bound, read / max(1, abs(bound - first)))
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
           f"{where(terms, extra)} ORDER BY e.id {'DESC' if descending else 'ASC'} LIMIT ?")
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


def page_from(db: Database, f: QueueFilter, example_id: int, limit: int = 50) -> list[QueueRow]:
    """Up to limit rows from example_id on (it first, when it is in the queue), in the queue's order."""
    if f.queue in RANKED_QUEUES:
        return _ranked_rows(db, f, example_id, False, limit, inclusive=True)
    return page_after(db, f, example_id - 1, limit)


def last_page(db: Database, f: QueueFilter, limit: int = 50) -> list[QueueRow]:
    """The last limit rows of the queue, in its order."""
    return page_before(db, f, _END, limit)


def window_around(db: Database, f: QueueFilter, example_id: int, before: int = 20,
                  after: int = 60) -> list[QueueRow]:
    """Rows around example_id: up to `before` rows below it, then it (if in the queue) and `after` more."""
    return page_before(db, f, example_id, before) + page_from(db, f, example_id, after + 1)


def rows_by_id(db: Database, example_ids: list[int]) -> dict[int, QueueRow]:
    """The current rows of these examples, whatever queue they are in (to refresh a window in place)."""
    sql = (f"SELECT {_ROW_COLUMNS} FROM examples e LEFT JOIN review_state r ON r.example_id = e.id "
           "WHERE e.id IN ({ids})")
    return {row.id: row for row in _to_rows(list(by_ids(db, sql, (int(i) for i in example_ids))))}


def contains(db: Database, f: QueueFilter, example_id: int) -> bool:
    """Whether the example is in the queue."""
    if fts_query(f.search) and not search.matching_ids(db, search.match_query(db, f.search), example_id - 1,
                                                         example_id + 1, 1):
        return False
    terms, args = where_terms(f.replace(search=""), per_row=True)
    sql = f"SELECT 1 FROM examples e {where(terms, 'e.id = ?')}"
    return db.execute(sql, [*args, example_id]).fetchone() is not None
