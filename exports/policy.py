"""Exports under several reviewers: the standing decisions of a block's examples, a contested one settled by policy.

An export reads every reviewer's standing decision (db.team) once per block of examples
(db.export_reads.standing_decisions, a range of review_decisions' key). A contested example (review_state's
conflict: the reviewers disagree and no one adjudicated) is settled by the export's policy, whose rule is
db.curation's; adjudicated and unanimous examples keep review_state as it is. The decisions also give the
manifest its counts by reason (exports.tally) and a DPO pair its provenance (exports.dpo).
"""
from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any, NamedTuple

from sqlite_utils import Database

from db import curation
from db.export_reads import standing_decisions
from exports.rules import SourceRow


class Decision(NamedTuple):
    """One reviewer's standing decision on an example (the columns of db.export_reads.standing_decisions)."""

    example_id: int
    reviewer: str
    decision: str  # accept | reject | edit | flag
    reason: str | None
    comment: str | None
    adjudication: int
    event_id: int
    edited_thought: str | None  # edits only
    edited_label: int | None


def block_decisions(db: Database, rows: Sequence[SourceRow]) -> dict[int, list[Decision]]:
    """example id -> its standing decisions, oldest first, for the reviewed examples among rows (in id order)."""
    reviewed = [row.id for row in rows if row.status is not None]
    if not reviewed:
        return {}
    out: dict[int, list[Decision]] = {}
    for found in standing_decisions(db, reviewed[0], reviewed[-1]):
        decision = Decision._make(found)
        out.setdefault(decision.example_id, []).append(decision)
    return out


def settle(row: SourceRow, policy: str, decisions: Sequence[Decision]) -> SourceRow | str:
    """The row as the policy exports it (db.curation's module docstring), or curation.CONTESTED to leave it out."""
    if not row.conflict or policy == "latest":
        return row
    choice = curation.majority(d.decision for d in decisions) if policy == "majority" else None
    if choice is None:
        return curation.CONTESTED
    status = curation.TEAM_STATUS[choice]
    if choice == "edit":  # the latest edit among those who agree on editing
        edit = max((d for d in decisions if d.decision == "edit"), key=lambda d: d.event_id)
        return row._replace(status=status, edited_thought=edit.edited_thought, edited_label=edit.edited_label,
                            bias_category=None)
    return row._replace(status=status, bias_category=(row.bias_category or "flag") if choice == "flag" else None)


def reasons_of(decisions: Sequence[Decision] | None) -> tuple[str, ...]:
    """The reasons the standing decisions give (one per decision that has one)."""
    return tuple(d.reason for d in decisions or () if d.reason is not None)


def block_reasons(team: dict[int, list[Decision]], rows: Sequence[SourceRow]) -> dict[int, tuple[str, ...]]:
    """example id -> the reasons of its standing decisions, for the examples of rows that have any (team:
    block_decisions of rows)."""
    if not team:
        return {}
    ids = set(map(attrgetter("id"), rows))  # the range read may hold examples of other splits
    return {example_id: reasons for example_id, decisions in team.items()
            if example_id in ids and (reasons := reasons_of(decisions))}


def provenance_of(decisions: Sequence[Decision] | None) -> list[dict[str, Any]]:
    """Who decided what about an example, and why: its standing decisions as a DPO pair's provenance carries them."""
    return [{"reviewer": d.reviewer, "decision": d.decision, "reason": d.reason, "comment": d.comment,
             "adjudication": bool(d.adjudication)} for d in decisions or ()]
