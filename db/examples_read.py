"""Examples as evaluation reads them: the labelled ones in a Scope, and the content hashes of given ids."""
from __future__ import annotations

from collections.abc import Iterable

from sqlite_utils import Database

from db.records import Example
from db.scope import Scope, by_ids


def labelled_examples(db: Database, scope: Scope) -> tuple[list[Example], int]:
    """The labelled examples in scope, by id (at most scope.limit); and how many unlabelled ones it left out."""
    where, args = scope.where("e")
    unlabelled = db.execute(f"SELECT count(*) FROM examples e WHERE {where} AND e.gold_label IS NULL",
                            args).fetchone()[0]
    limit, limit_args = scope.limit_sql()
    rows = db.query(f"SELECT e.* FROM examples e WHERE {where} AND e.gold_label IS NOT NULL ORDER BY e.id{limit}",
                    [*args, *limit_args])
    return [Example.from_row(r) for r in rows], int(unlabelled)


def content_hashes(db: Database, ids: Iterable[int]) -> set[str]:
    """The content hashes of the examples with these ids (ids not in the store are skipped)."""
    return {str(row[0]) for row in by_ids(db, "SELECT content_hash FROM examples WHERE id IN ({ids})", ids)}
