"""Named views: a reviewer's saved queues and filters, reopened by name (each reviewer has their own)."""
from __future__ import annotations

import dataclasses
import json

from sqlite_utils import Database

from db.errors import StoreError
from db.queues import QueueFilter, filter_from
from db.tx import write_tx

MAX_NAME = 60  # characters


class ViewNameError(StoreError, ValueError):
    """A view was to be saved under an empty or overlong name."""


def check_name(name: str) -> str:
    """The name, trimmed, when it can name a view (ViewNameError otherwise)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ViewNameError(f"a view name is 1 to {MAX_NAME} printable characters (got {name!r}); "
                            "type a short name such as 'rte conflicts'")
    return name


def save(db: Database, reviewer: str, name: str, f: QueueFilter, at: str) -> None:
    """Save the reviewer's queue and filter under name (replacing a view of that name), in one transaction."""
    fields = dataclasses.asdict(f.replace(me=None))
    with write_tx(db):
        db.execute("INSERT INTO saved_views (reviewer, name, filter, saved_at) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (reviewer, name) DO UPDATE SET filter = excluded.filter, saved_at = excluded.saved_at",
                   [reviewer, check_name(name), json.dumps(fields, ensure_ascii=False, sort_keys=True), at])


def names(db: Database, reviewer: str) -> list[str]:
    """The reviewer's view names, most recently saved first."""
    return [r[0] for r in db.execute("SELECT name FROM saved_views WHERE reviewer = ? ORDER BY saved_at DESC, name",
                                     [reviewer])]


def load(db: Database, reviewer: str, name: str) -> QueueFilter | None:
    """The reviewer's view of that name, as they see it (None when there is none, or when it was saved by a
    version of the app whose filters this one cannot read)."""
    row = db.execute("SELECT filter FROM saved_views WHERE reviewer = ? AND name = ?", [reviewer, name]).fetchone()
    if row is None:
        return None
    try:
        fields = json.loads(row[0])
    except ValueError:
        return None
    f = filter_from(fields)
    return None if f is None else f.for_reviewer(reviewer)


def delete(db: Database, reviewer: str, name: str) -> bool:
    """Remove a view; False when the reviewer has none of that name."""
    with write_tx(db):
        return db.execute("DELETE FROM saved_views WHERE reviewer = ? AND name = ?", [reviewer, name]).rowcount > 0
