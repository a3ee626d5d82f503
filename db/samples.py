"""Audit samples (`nlistral sample`): the strata examples fall in, and named samples written and listed.

A stratum is a combination of values of the chosen keys: gold (0, 1 or none), dataset, split, and queue,
an example's primary queue: needs_reflection (its thought's label is not gold and it has no reflection),
else disagreements (not gold, reflected), else all (every other example).
"""
from __future__ import annotations

import json
from collections.abc import Sequence

from sqlite_utils import Database

from db.clock import now
from db.errors import StoreError
from db.queues import QueueFilter, where, where_terms
from db.tx import write_tx

STRATA = ("gold", "queue", "dataset", "split")
PRIMARY_QUEUES = ("needs_reflection", "disagreements")  # checked in this order; neither: "all"


class SampleExistsError(StoreError):
    """A sample was to be written under a name a sample already has."""


def _stratum_sql(key: str) -> str:
    if key == "gold":
        return "coalesce(e.gold_label, 'none')"
    if key == "queue":
        cases = " ".join(f"WHEN {' AND '.join(where_terms(QueueFilter(queue=q))[0])} THEN '{q}'"
                         for q in PRIMARY_QUEUES)  # neither queue's rule takes a parameter
        return f"CASE {cases} ELSE 'all' END"
    if key in ("dataset", "split"):
        return f"e.{key}"
    raise ValueError(f"unknown stratum {key!r}; expected some of {', '.join(STRATA)}")


def strata(db: Database, f: QueueFilter, keys: Sequence[str]) -> list[tuple[int, tuple[str, ...]]]:
    """(example id, its values of the keys, as text) for every example of the filter, in id order."""
    terms, args = where_terms(f)
    columns = "".join(f", {_stratum_sql(k)}" for k in keys)
    return [(row[0], tuple(str(v) for v in row[1:]))
            for row in db.execute(f"SELECT e.id{columns} FROM examples e {where(terms)} ORDER BY e.id", args)]


def write_sample(db: Database, name: str, example_ids: Sequence[int], *, replace: bool = False) -> int:
    """Store a sample under a name in one transaction (SampleExistsError for a taken name unless replace);
    returns how many examples an earlier sample of that name held (0: none)."""
    with write_tx(db):
        before = int(db.execute("SELECT count(*) FROM samples WHERE name = ?", [name]).fetchone()[0])
        if before and not replace:
            raise SampleExistsError(f"A sample named {name!r} already exists ({before} examples): choose another "
                                    "--name, or pass --replace to draw it again.")
        db.execute("DELETE FROM samples WHERE name = ?", [name])
        db.execute("INSERT INTO samples (name, example_id, created_at) SELECT ?, value, ? FROM json_each(?)",
                   [name, now(), json.dumps(sorted(example_ids))])
    return before


def sample_sizes(db: Database) -> dict[str, int]:
    """Every sample's name and its number of examples."""
    return dict(db.execute("SELECT name, count(*) FROM samples GROUP BY name ORDER BY name").fetchall())
