"""Where each reviewer left off: the queue and filter, the example shown, and whether it was just decided."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database


@dataclass(frozen=True)
class Position:
    """A reviewer's place: the filter's fields, the example, and whether they had decided it (then the
    app reopens on the example after it)."""

    filter: dict[str, Any]
    example_id: int | None
    decided: bool


def save(db: Database, reviewer: str, filter_fields: dict[str, Any], example_id: int | None, *, decided: bool,
         at: str) -> None:
    """Record the reviewer's place as of time `at` (a later place already stored is kept)."""
    db.execute(
        "INSERT INTO review_positions (reviewer, filter, example_id, decided, saved_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (reviewer) DO UPDATE SET filter = excluded.filter, example_id = excluded.example_id, "
        "decided = excluded.decided, saved_at = excluded.saved_at WHERE excluded.saved_at >= saved_at",
        [reviewer, json.dumps(filter_fields, ensure_ascii=False, sort_keys=True), example_id, int(decided), at],
    )


def load(db: Database, reviewer: str) -> Position | None:
    """The reviewer's last place, or None when they have none."""
    row = db.execute("SELECT filter, example_id, decided FROM review_positions WHERE reviewer = ?",
                     [reviewer]).fetchone()
    if row is None:
        return None
    try:
        fields = json.loads(row[0])
    except ValueError:
        fields = {}
    return Position(fields if isinstance(fields, dict) else {}, row[1], bool(row[2]))
