"""Lookups among an example's stored thoughts (the generations of kind 'thought')."""
from __future__ import annotations

from sqlite_utils import Database


def thought_with_text(db: Database, example_id: int, text: object) -> int | None:
    """The id of the example's latest thought whose text is exactly `text` (None when there is none)."""
    found = db.execute(
        "SELECT max(id) FROM generations WHERE example_id = ? AND kind = 'thought' AND thought_process = ?",
        [example_id, text],
    ).fetchone()[0]
    return None if found is None else int(found)
