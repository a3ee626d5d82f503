"""The append-only review log, the review state derived from it, and unlimited undo / redo.

Every human decision is an event in `review_events`; one user step (a key press, or a bulk action
over a whole filter) is one group. Undo and redo are events too: they flip a group's `active` flag
in `review_groups`, and `review_state` is re-derived from the active events of the examples
touched, in the same transaction. Nothing is ever updated in place or deleted, so the whole
history survives restarts and can be replayed.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from db.clock import now
from db.errors import NothingToRedoError, NothingToUndoError, UnknownExampleError
from db.generations import refresh_derived
from db.records import ReviewState
from db.search import index_review_texts
from db.team import rederive_team
from db.textdiff import diff_text, edit_size
from db.tx import write_tx

BIAS_CATEGORIES = ("gold_wrong", "ambiguous", "premise_underspecified", "annotation_artifact")
# The review status each decision leads to (an example with no active decision is "pending").
STATUS_AFTER = {"accept": "accepted", "reject": "rejected", "edit": "edited"}
DECISIONS = tuple(STATUS_AFTER)
DECIDED_STATUSES = tuple(STATUS_AFTER.values())
ACTIONS = (*DECISIONS, "flag_bias", "unflag_bias", "relabel", "skip", "note", "choose_reflection")


@dataclass(frozen=True)
class Flip:
    """An undo or redo as stored: the step (group) it flipped, that step's action and examples."""

    redo: bool
    group: int
    action: str
    ids: tuple[int, ...]


def validate_step(action: str, payload: dict[str, Any], example_ids: Sequence[int]) -> None:
    """ValueError unless record() would take this step (checked before a step is journaled)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown review action {action!r}; expected one of {ACTIONS}")
    if action == "edit":
        if not isinstance(payload.get("thought"), str) or not payload["thought"].strip():
            raise ValueError("an edit needs the improved thought text")
        if payload.get("label") not in (0, 1):
            raise ValueError("an edit needs a label, 0 or 1")
    if action == "flag_bias" and payload.get("category") not in BIAS_CATEGORIES:
        raise ValueError(f"bias category must be one of {BIAS_CATEGORIES}")
    if action == "relabel" and payload.get("label") not in (0, 1, None):
        raise ValueError("a relabel takes 0, 1, or None to clear the suggestion")
    if action == "choose_reflection" and not isinstance(payload.get("generation_id"), int):
        raise ValueError("choose_reflection needs the generation_id of a reflection")
    for key in ("reason", "comment"):  # any decision may carry them (db/team.py reads them)
        if key in payload and (not isinstance(payload[key], str) or not payload[key].strip()):
            raise ValueError(f"a {key} is a non-empty text")
    if payload.get("adjudication") not in (None, True) or (payload.get("adjudication") and action not in DECISIONS
                                                            and action != "flag_bias"):
        raise ValueError("an adjudication is a decision (accept, reject, edit or flag_bias) with adjudication true")
    if not example_ids:
        raise ValueError("a review step needs at least one example")


def record(
    db: Database,
    action: str,
    example_ids: Sequence[int],
    *,
    reviewer: str,
    payload: dict[str, Any] | None = None,
    seconds_spent: float | None = None,
) -> int:
    """Append one user step (the same action on each example) and update review_state; returns its group id.

    For an edit, pass payload {"thought", "label"} and optionally "base" (the text it was edited
    from): the word diff and, with a base, the edit's size (edit_words, edit_ratio) are stored with it.
    """
    payload = dict(payload or {})
    validate_step(action, payload, example_ids)
    if action == "edit" and "diff" not in payload:
        payload["diff"] = diff_text(payload.get("base") or "", payload["thought"])
    if action == "edit" and isinstance(payload.get("base"), str) and "edit_ratio" not in payload:
        size = edit_size(payload["base"], payload["thought"])
        payload["edit_words"], payload["edit_ratio"] = size.words, round(size.ratio, 4)
    with write_tx(db):
        if action == "choose_reflection":
            _check_reflection(db, example_ids, payload["generation_id"])
        group = _new_group(db)
        first_event = log_position(db) + 1
        stamp, body = now(), json.dumps(payload, ensure_ascii=False)
        db.conn.executemany(
            "INSERT INTO review_events (example_id, action, payload, group_id, reviewer, seconds_spent, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((int(i), action, body, group, reviewer, seconds_spent, stamp) for i in example_ids),
        )
        last = db.execute("SELECT max(id) FROM review_events").fetchone()[0]
        db.execute("INSERT INTO review_groups (group_id, active, changed_at_event) VALUES (?, 1, ?)", [group, last])
        _rederive(db, group)
        if "reason" in payload or "comment" in payload:
            index_review_texts(db, first_event)
    return group


# A step's decisions carry its reviewer (undo and redo events have no example).
_MADE_BY = ("EXISTS (SELECT 1 FROM review_events e WHERE e.group_id = g.group_id AND e.example_id IS NOT NULL "
            "AND e.reviewer = ?)")


def undo(db: Database, *, reviewer: str) -> Flip:
    """Undo this reviewer's latest active step (never another reviewer's): the step as undone."""
    with write_tx(db):
        row = db.execute(f"SELECT g.group_id FROM review_groups g WHERE g.active = 1 AND {_MADE_BY} "
                         "ORDER BY g.group_id DESC LIMIT 1", [reviewer]).fetchone()
        if row is None:
            if db.execute("SELECT 1 FROM review_groups WHERE active = 1 LIMIT 1").fetchone():
                raise NothingToUndoError(f"Nothing of {reviewer}'s to undo: the steps still active were made by "
                                         "other reviewers (undo takes back only your own).")
            raise NothingToUndoError("Nothing to undo: every decision in the review log is already undone.")
        return _flip(db, row[0], "undo", reviewer, active=0)


def redo(db: Database, *, reviewer: str) -> Flip:
    """Redo this reviewer's most recently undone step, unless they made a new decision since: the step as redone."""
    with write_tx(db):
        last_decision = db.execute(
            "SELECT coalesce(max(id), 0) FROM review_events WHERE action NOT IN ('undo', 'redo') AND reviewer = ?",
            [reviewer],
        ).fetchone()[0]
        row = db.execute(
            f"SELECT g.group_id FROM review_groups g WHERE g.active = 0 AND g.changed_at_event > ? AND {_MADE_BY} "
            "ORDER BY g.changed_at_event DESC LIMIT 1",
            [last_decision, reviewer],
        ).fetchone()
        if row is None:
            raise NothingToRedoError("Nothing to redo: no step was undone since the last decision.")
        return _flip(db, row[0], "redo", reviewer, active=1)


def state(db: Database, example_id: int) -> ReviewState:
    """The current review state of an example (pending when nothing was decided)."""
    rows = list(db.query("SELECT * FROM review_state WHERE example_id = ?", [example_id]))
    return ReviewState.from_row(rows[0]) if rows else ReviewState(example_id=example_id)


def history(db: Database, example_id: int) -> list[dict[str, Any]]:
    """The events of an example, oldest first, each with whether its step is still active."""
    return [
        dict(r, payload=json.loads(r["payload"]), active=bool(r["active"]))
        for r in db.query(
            "SELECT e.*, g.active FROM review_events e JOIN review_groups g USING (group_id) "
            "WHERE e.example_id = ? ORDER BY e.id",
            [example_id],
        )
    ]


def log_position(db: Database) -> int:
    """The id of the last review event (0 for an empty log): what an export reflects."""
    return int(db.execute("SELECT coalesce(max(id), 0) FROM review_events").fetchone()[0])


def rebuild_state(db: Database) -> None:
    """Recompute review_state from the whole log (the incremental path must always agree)."""
    with write_tx(db):
        db.execute("DELETE FROM review_state")
        _rederive(db, None)


def _new_group(db: Database) -> int:
    return int(db.execute("SELECT coalesce(max(group_id), 0) + 1 FROM review_groups").fetchone()[0])


def _check_reflection(db: Database, example_ids: Sequence[int], generation_id: int) -> None:
    row = db.execute("SELECT example_id, kind FROM generations WHERE id = ?", [generation_id]).fetchone()
    if row is None or row[1] != "reflection" or any(int(i) != row[0] for i in example_ids):
        raise UnknownExampleError(f"Generation {generation_id} is not a reflection of this example.")


def _flip(db: Database, group: int, action: str, reviewer: str, *, active: int) -> Flip:
    db.execute(
        "INSERT INTO review_events (example_id, action, payload, group_id, reviewer, created_at) "
        "VALUES (NULL, ?, ?, ?, ?, ?)",
        [action, json.dumps({"group": group}), group, reviewer, now()],
    )
    event = db.execute("SELECT max(id) FROM review_events").fetchone()[0]
    db.execute("UPDATE review_groups SET active = ?, changed_at_event = ? WHERE group_id = ?", [active, event, group])
    _rederive(db, group)
    rows = db.execute("SELECT example_id, action FROM review_events WHERE group_id = ? AND example_id IS NOT NULL "
                      "ORDER BY id", [group]).fetchall()
    return Flip(action == "redo", group, rows[0][1] if rows else "", tuple(r[0] for r in rows))


def _latest(expr: str, actions: Sequence[str], adjudicated: Sequence[str] = ()) -> str:
    """SQL for expr over the latest active event of review_state's example among these actions, or among
    the adjudicated ones of `adjudicated` (an adjudication, db/team.py, outranks every later event)."""
    names = ", ".join(f"'{a}'" for a in actions)
    among = f"e.action IN ({names})"
    if adjudicated:
        among = (f"({among} OR (e.action IN ({', '.join(repr(a) for a in adjudicated)}) "
                 "AND json_extract(e.payload, '$.adjudication') = 1))")
    return (
        f"(SELECT {expr} FROM review_events e JOIN review_groups g ON g.group_id = e.group_id "
        f"WHERE e.example_id = review_state.example_id AND g.active = 1 AND {among} "
        "ORDER BY coalesce(json_extract(e.payload, '$.adjudication'), 0) DESC, e.id DESC LIMIT 1)"
    )


_STATUS_SQL = "CASE e.action " + " ".join(f"WHEN '{a}' THEN '{s}'" for a, s in STATUS_AFTER.items()) + " END"
_ACTIVE_ALL = (
    "FROM review_events e JOIN review_groups g ON g.group_id = e.group_id "
    "WHERE e.example_id = review_state.example_id AND g.active = 1"
)
_DERIVE = f"""
UPDATE review_state SET
    status = coalesce({_latest(_STATUS_SQL, DECISIONS)}, 'pending'),
    edited_thought = {_latest("json_extract(e.payload, '$.thought')", ["edit"])},
    edited_label = {_latest("json_extract(e.payload, '$.label')", ["edit"])},
    edit_diff = {_latest("json_extract(e.payload, '$.diff')", ["edit"])},
    suggested_label = {_latest("json_extract(e.payload, '$.label')", ["relabel"])},
    bias_category = {_latest("CASE e.action WHEN 'flag_bias' THEN json_extract(e.payload, '$.category') END",
                             ["flag_bias", "unflag_bias"], DECISIONS)},
    bias_note = {_latest("CASE e.action WHEN 'flag_bias' THEN json_extract(e.payload, '$.note') END",
                         ["flag_bias", "unflag_bias"], DECISIONS)},
    note = {_latest("json_extract(e.payload, '$.text')", ["note"])},
    chosen_reflection_id = {_latest("json_extract(e.payload, '$.generation_id')", ["choose_reflection"])},
    skipped = coalesce({_latest("e.action = 'skip'", ACTIONS)}, 0),
    reviewer = {_latest("e.reviewer", ACTIONS)},
    seconds_spent = (SELECT coalesce(sum(e.seconds_spent), 0) {_ACTIVE_ALL}),
    last_event_id = (SELECT max(e.id) {_ACTIVE_ALL})
"""


def _rederive(db: Database, group: int | None) -> None:
    """Re-derive review_state (and the chosen-reflection pointer) for the examples of a group (all when None)."""
    touched = (  # undo / redo events carry their target's group id and no example
        f"SELECT DISTINCT example_id FROM review_events WHERE group_id = {int(group)} AND example_id IS NOT NULL"
        if group is not None
        else "SELECT DISTINCT example_id FROM review_events WHERE example_id IS NOT NULL"
    )
    db.execute(f"INSERT INTO review_state (example_id) {touched} ON CONFLICT (example_id) DO NOTHING")
    db.execute(f"{_DERIVE} WHERE example_id IN ({touched})")
    db.execute(f"DELETE FROM review_state WHERE last_event_id IS NULL AND example_id IN ({touched})")
    rederive_team(db, touched)
    chose = "SELECT 1 FROM review_events WHERE action = 'choose_reflection'" + (
        f" AND group_id = {int(group)}" if group is not None else ""
    )
    if db.execute(chose).fetchone():
        refresh_derived(db, touched)
