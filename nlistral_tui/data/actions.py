"""The review steps the app runs on its writer thread: record, undo / redo, each with what to reload."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from db import reviews
from db.errors import NothingToRedoError, NothingToUndoError
from nlistral_tui.data.detail import ExampleDetail, load_details


@dataclass(frozen=True)
class Recorded:
    """A step written to the review log, with the reloaded details of the examples asked for."""

    group: int
    details: dict[int, ExampleDetail]


@dataclass(frozen=True)
class Flipped:
    """An undo or redo: the step it flipped, that step's action and examples; or why nothing happened."""

    group: int | None
    action: str = ""
    ids: tuple[int, ...] = ()
    message: str = ""


def record_step(db: Database, action: str, ids: Sequence[int], *, reviewer: str,
                payload: dict[str, Any] | None = None, seconds: float | None = None,
                reload: Sequence[int] = (), run_id: int | None = None) -> Recorded:
    """Append one step (the same action on every id) and reload the details of `reload`."""
    group = reviews.record(db, action, list(ids), reviewer=reviewer, payload=payload, seconds_spent=seconds)
    return Recorded(group, load_details(db, reload, run_id))


def flip_step(db: Database, *, redo: bool, reviewer: str) -> Flipped:
    """Undo the latest step (or redo the latest undone one); a Flipped with a message when there is none."""
    try:
        group = (reviews.redo if redo else reviews.undo)(db, reviewer=reviewer)
    except (NothingToUndoError, NothingToRedoError) as exc:
        return Flipped(None, message=str(exc))
    rows = db.execute(
        "SELECT example_id, action FROM review_events WHERE group_id = ? AND example_id IS NOT NULL ORDER BY id",
        [group],
    ).fetchall()
    return Flipped(group, rows[0][1] if rows else "", tuple(r[0] for r in rows))
