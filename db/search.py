"""Full-text search over premise, hypothesis and generated text: one FTS5 index, read in example-id order.

The index (`search_fts`, db/schema.py m004) holds one document per pair, one per generation and one per
review decision that gives a reason or a comment, with rowid = (example id << 16) + k: k = 0 for the pair
(premise, hypothesis), 1 .. MAX_GENERATIONS the generation's ordinal among its example's generations
(thought_process, error_analysis), and from REVIEW_TEXTS the example's reasons and comments in log order.
FTS5 returns matches in rowid order, hence in example-id order, so a page of results needs only the first
few matches.
Contentless (examples are immutable and generations append-only: nothing is ever deleted from it).
"""
from __future__ import annotations

import re
import sqlite3
import unicodedata

from sqlite_utils import Database

from db.errors import StoreError

SHIFT = 16  # rowid = (example id << SHIFT) + k
REVIEW_TEXTS = 0xC000  # k of an example's first reason or comment; the last quarter of its range holds them
MAX_GENERATIONS = REVIEW_TEXTS - 1  # per example: k = 1 .. MAX_GENERATIONS
_ROWID_END = (1 << 63) - 1  # SQLite's largest integer: the exclusive upper bound of "no bound"
# A word as the index tokenizer (unicode61) sees one: letters and digits; "_" and punctuation split.
_WORD = re.compile(r"[^\W_]+")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")
# A prefix that starts more index terms than this is left to FTS5 (see match_query).
MAX_PREFIX_TERMS = 2048


class SearchIndexFullError(StoreError):
    """An example would have more generations than the search index can tell apart."""


def fts_query(text: str) -> str:
    """Turn what a user typed into a safe FTS5 query: every word must appear, the last as a prefix.

    Words are split as the index tokenizer splits them, so each quoted term is a single token
    (the index keeps no positions, so multi-token phrases are not available). A pair or one
    generation must hold every word to match.
    """
    words = _WORD.findall(text)
    return _all_of(words[:-1], f'"{words[-1]}"*') if words else ""


def hit_spans(text: str, search_text: str) -> list[tuple[int, int]]:
    """Where the words of a search occur in text, as (start, end) offsets: the words the index matched, i.e.
    whole words, the last typed word as a prefix, case and diacritics ignored (as the tokenizer folds them)."""
    words = [_fold(w) for w in _WORD.findall(search_text)]
    if not words:
        return []
    whole, prefix = set(words[:-1]), words[-1]
    return [(m.start(), m.end()) for m in _WORD.finditer(text)
            if (token := _fold(m.group())) in whole or token.startswith(prefix)]


def _fold(word: str) -> str:
    """A word as the index compares it: lower case, without diacritics."""
    return "".join(c for c in unicodedata.normalize("NFKD", word.casefold()) if not unicodedata.combining(c))


def match_query(db: Database, text: str) -> str:
    """fts_query(text), with the last word's prefix spelled out as the index terms that start with it.

    Same matches, but FTS5 can then stream them in rowid order: for a prefix term it merges the
    whole document list of every term with that prefix before returning the first match. For
    reading a page; whole-set reads (counts) keep fts_query, whose one merge beats a long OR there.
    A non-ASCII last word (whose folding only the tokenizer knows) stays a prefix term.
    """
    words = _WORD.findall(text)
    if not words or not _ASCII_WORD.fullmatch(words[-1]):
        return fts_query(text)
    terms = prefix_terms(db, words[-1].lower())  # unicode61 folds ASCII to lower case, nothing more
    if terms is None:
        return fts_query(text)
    return _all_of(words[:-1], "(" + " OR ".join(f'"{t}"' for t in terms) + ")")


def _all_of(words: list[str], last: str) -> str:
    return " AND ".join([*(f'"{w}"' for w in words), last])


def prefix_terms(db: Database, token: str) -> list[str] | None:
    """The token and every index term that extends it, or None when MAX_PREFIX_TERMS or more extend it.

    Walks the index vocabulary one term at a time, a seek each: FTS5 reads past the pages of each
    term's document list on the way but does not decode them (a very common word is still a few MB).
    """
    upper = token[:-1] + chr(ord(token[-1]) + 1)
    terms, at = [token], token + "\x01"  # the least string above the token and below its extensions
    while len(terms) <= MAX_PREFIX_TERMS:
        row = db.execute("SELECT term FROM search_terms WHERE term >= ? AND term < ? LIMIT 1", [at, upper]).fetchone()
        if row is None:
            return terms
        terms.append(row[0])
        at = row[0] + "\x01"
    return None


def rowid_range(after_id: int | None = None, before_id: int | None = None) -> tuple[int, int]:
    """Index rowids [low, high) of the examples with after_id < id < before_id (either bound optional)."""
    low = 0 if after_id is None else min((max(after_id, -1) + 1) << SHIFT, _ROWID_END)
    high = _ROWID_END if before_id is None else min(max(before_id, 0) << SHIFT, _ROWID_END)
    return low, high


def matching_ids(db: Database, query: str, after_id: int | None = None, before_id: int | None = None,
                 limit: int = 100, descending: bool = False) -> list[int]:
    """Up to limit example ids matching an FTS5 query, between the bounds, nearest the start first.

    FTS5 walks its document lists in rowid order and stops after limit examples.
    """
    low, high = rowid_range(after_id, before_id)
    order = "DESC" if descending else "ASC"
    sql = (f"SELECT DISTINCT rowid >> {SHIFT} FROM search_fts WHERE search_fts MATCH ? "
           f"AND rowid >= ? AND rowid < ? ORDER BY rowid {order} LIMIT ?")
    return [r[0] for r in db.execute(sql, [query, low, high, limit])]


def search(db: Database, text: str, limit: int = 100) -> list[int]:
    """Example ids matching text, smallest id first."""
    if not fts_query(text):
        return []
    return matching_ids(db, match_query(db, text), limit=limit)


def index_examples(db: Database, after_id: int) -> None:
    """Add the pairs of examples with id above after_id to the index (call in their write transaction).

    Row by row (executemany over a cursor), not INSERT ... SELECT: SQLite opens a savepoint for a
    statement that writes many rows, and at every savepoint FTS5 writes the terms it holds in memory
    out as a new segment. Indexing an import batch by batch that way left ~10 merged segments per
    million pairs (slower searches, ~1.5 s more work); this way the whole import is one segment.
    """
    pairs = db.conn.execute(f"SELECT id << {SHIFT}, premise, hypothesis FROM examples WHERE id > ? ORDER BY id",
                            [after_id])
    db.conn.executemany("INSERT INTO search_fts (rowid, first, second) VALUES (?, ?, ?)", pairs)


_REVIEW_TEXT = ("e.example_id IS NOT NULL AND (json_extract(e.payload, '$.reason') IS NOT NULL "
                "OR json_extract(e.payload, '$.comment') IS NOT NULL)")


def index_review_texts(db: Database, first_event_id: int) -> None:
    """Add the reasons and comments of review events from first_event_id on to the index (call in their write
    transaction). A comment taken back later stays findable: the index, like the log, only grows."""
    earlier = _REVIEW_TEXT.replace("e.", "o.")
    db.execute(
        f"""
        INSERT INTO search_fts (rowid, first, second)
        SELECT (e.example_id << {SHIFT}) + {REVIEW_TEXTS} + n, coalesce(json_extract(e.payload, '$.reason'), ''),
            coalesce(json_extract(e.payload, '$.comment'), '')
        FROM (SELECT e.*, (SELECT count(*) FROM review_events o WHERE o.example_id = e.example_id AND o.id < e.id
                           AND {earlier}) AS n
              FROM review_events e WHERE e.id >= ? AND {_REVIEW_TEXT}) e
        WHERE n < {(1 << SHIFT) - REVIEW_TEXTS} ORDER BY e.id
        """,
        [first_event_id],
    )


def index_generations(db: Database, after_id: int) -> None:
    """Add generations with id above after_id to the index (call in their write transaction).

    Rowids are computed first into a keyed temporary table so the documents go in in rowid order:
    FTS5 flushes its pending terms to a new segment whenever a rowid goes backwards.
    """
    db.execute("DROP TABLE IF EXISTS temp.search_new")
    db.execute("CREATE TEMP TABLE search_new (rowid_ INTEGER PRIMARY KEY, generation_id INTEGER NOT NULL, "
               f"ordinal INTEGER NOT NULL CHECK (ordinal <= {MAX_GENERATIONS}))")
    try:
        db.execute(
            f"""
            INSERT INTO temp.search_new
            SELECT (example_id << {SHIFT}) + n, id, n FROM (
                SELECT g.id, g.example_id, (SELECT count(*) FROM generations o
                                            WHERE o.example_id = g.example_id AND o.id <= g.id) AS n
                FROM generations g WHERE g.id > ?)
            """,
            [after_id],
        )
    except sqlite3.IntegrityError:
        full = db.execute("SELECT example_id FROM generations WHERE id > ? GROUP BY example_id ORDER BY "
                          "(SELECT count(*) FROM generations o WHERE o.example_id = generations.example_id) DESC "
                          "LIMIT 1", [after_id]).fetchone()[0]
        raise SearchIndexFullError(
            f"example {full} would have more than {MAX_GENERATIONS:,} generations, the most the search index "
            "can tell apart, so none of these were stored. That many outputs for one pair usually means a "
            "runaway re-run: check the command that added them."
        ) from None
    db.execute(
        """
        INSERT INTO search_fts (rowid, first, second)
        SELECT n.rowid_, coalesce(g.thought_process, ''), coalesce(g.error_analysis, '')
        FROM temp.search_new n JOIN generations g ON g.id = n.generation_id ORDER BY n.rowid_
        """
    )
    db.execute("DROP TABLE temp.search_new")
