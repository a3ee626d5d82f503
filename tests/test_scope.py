"""db.scope: one answer to "which examples", and id batches that never hit SQLite's parameter limit."""
from __future__ import annotations

from sqlite_utils import Database

from db.scope import Scope, by_ids


def _db() -> Database:
    db = Database(memory=True)
    db["examples"].insert_all(
        [{"id": i, "dataset": "rte" if i % 2 else "snli", "split": "dev" if i % 3 else "train"} for i in range(1, 31)],
        pk="id")
    return db


def _ids(db: Database, scope: Scope) -> list[int]:
    where, args = scope.where()
    limit, limit_args = scope.limit_sql()
    return [r[0] for r in db.execute(f"SELECT id FROM examples e WHERE {where} ORDER BY id{limit}", [*args, *limit_args])]


def test_empty_scope_is_every_example() -> None:
    assert _ids(_db(), Scope()) == list(range(1, 31))


def test_datasets_splits_ids_and_limit_combine() -> None:
    db = _db()
    assert _ids(db, Scope(datasets=("rte",), splits=("train",))) == [3, 9, 15, 21, 27]
    assert _ids(db, Scope(datasets=("rte", "snli"), ids=(4, 5, 6, 99))) == [4, 5, 6]
    assert _ids(db, Scope(splits=("dev",), limit=3)) == [1, 2, 4]
    assert _ids(db, Scope(ids=())) == []


def test_by_ids_batches_in_id_order_with_leading_parameters() -> None:
    db = _db()
    rows = list(by_ids(db, "SELECT id FROM examples WHERE dataset = ? AND id IN ({ids}) ORDER BY id",
                       [30, 1, 3, 3, 2, 29], before=["rte"], size=2))
    assert [r[0] for r in rows] == [1, 3, 29]
