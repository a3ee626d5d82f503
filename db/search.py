"""Full-text search over premise, hypothesis and generated text (FTS5)."""
from __future__ import annotations

import re

from sqlite_utils import Database

_WORD = re.compile(r"\w+")


def fts_query(text: str) -> str:
    """Turn what a user typed into a safe FTS5 query: every word must appear, the last as a prefix.

    Words are split as the index tokenizer splits them, so each quoted term is a single token
    (the index keeps no positions, so multi-token phrases are not available).
    """
    words = _WORD.findall(text)
    if not words:
        return ""
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def matching_examples_sql(text: str) -> tuple[str, list[str]]:
    """SQL selecting the ids of examples whose pair or any generation matches, with its parameters."""
    query = fts_query(text)
    sql = (
        "SELECT rowid AS id FROM examples_fts WHERE examples_fts MATCH ? "
        "UNION SELECT g.example_id AS id FROM generations g "
        "WHERE g.id IN (SELECT rowid FROM generations_fts WHERE generations_fts MATCH ?)"
    )
    return sql, [query, query]


def search(db: Database, text: str, limit: int = 100) -> list[int]:
    """Example ids matching text, smallest id first."""
    if not fts_query(text):
        return []
    sql, args = matching_examples_sql(text)
    return [r[0] for r in db.execute(f"SELECT id FROM ({sql}) ORDER BY id LIMIT ?", [*args, limit])]
