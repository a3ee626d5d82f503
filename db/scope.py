"""Which examples a command covers: one Scope for generate, export, evaluate and the review queues."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlite_utils import Database

ID_BATCH = 500  # ids per `IN (...)` query: far below SQLite's parameter limit, few round trips
Key = TypeVar("Key", int, str)  # example ids, or the source ids of a file


@dataclass(frozen=True)
class Scope:
    """Examples of these datasets and splits (each empty: all), of these ids (None: all), at most `limit`."""

    datasets: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    ids: tuple[int, ...] | None = None
    limit: int | None = None

    def where(self, alias: str = "e") -> tuple[str, list[Any]]:
        """The SQL condition over `examples {alias}` and its positional parameters ("1" when it is all)."""
        terms: list[str] = []
        args: list[Any] = []
        for column, values in (("dataset", self.datasets), ("split", self.splits)):
            if values:
                terms.append(f"{alias}.{column} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        if self.ids is not None:
            terms.append(f"{alias}.id IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(list(self.ids)))
        return (" AND ".join(terms) or "1"), args

    def limit_sql(self) -> tuple[str, list[Any]]:
        """A ` LIMIT ?` clause and its parameter, or nothing when there is no limit."""
        return (" LIMIT ?", [self.limit]) if self.limit is not None else ("", [])


def by_ids(db: Database, sql: str, ids: Iterable[Key], before: Sequence[Any] = (),
           size: int = ID_BATCH) -> Iterator[tuple[Any, ...]]:
    """The rows of `sql` for these ids, in batches: `{ids}` in sql stands for one batch's placeholders.

    `before` are the parameters that come ahead of the ids in the statement. Ids are taken sorted and
    without repeats, so rows come batch by batch in id order when the statement orders by id.
    """
    wanted: list[Key] = sorted(set(ids))
    for start in range(0, len(wanted), size):
        batch: list[Key] = wanted[start:start + size]
        yield from db.execute(sql.format(ids=", ".join("?" * len(batch))), [*before, *batch])
