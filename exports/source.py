"""What an export considers: one SourceRow per example of its scope, in id order, streamed in one read snapshot.

The queries are db.export_reads'; here their tuples become exports.rules' rows and targets.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

from sqlite_utils import Database

from db import export_reads
from db.scope import Scope
from exports.rules import SourceRow, Target


@dataclass(frozen=True)
class Source:
    """What an export reads (db.export_reads.source_rows says what each field costs).

    reflections: 'reviewed', 'latest' or None (not needed); review: the review state; provenance:
    the DPO columns.
    """

    scope: Scope  # which examples are read (the export options' scope)
    reflections: str | None
    review: bool
    provenance: bool = False

    def rows(self, db: Database, id_range: tuple[int, int] | None = None) -> Iterator[SourceRow]:
        """The rows, optionally only those with first <= id < end of id_range=(first, end)."""
        return map(_as_source_row, export_reads.source_rows(  # C all the way: no Python frame per row
            db, self.scope, reflections=self.reflections, review=self.review, provenance=self.provenance,
            id_range=id_range))


_as_source_row = functools.partial(tuple.__new__, SourceRow)  # SourceRow._make without a Python frame per row


def passed_over_versions(db: Database, row: SourceRow) -> list[Target]:
    """Reflections of the current thought other than the one chosen in review (empty when none was chosen)."""
    if row.chosen_reflection_id is None or row.thought_id is None:
        return []
    return [Target(text, label, "reflection_not_chosen", gen_id, model) for gen_id, text, label, model
            in export_reads.passed_over_versions(db, row.id, row.thought_id, row.chosen_reflection_id)]
