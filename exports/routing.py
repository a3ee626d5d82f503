"""Edit-aware routing: a small edit is a training target as edited; a large one also teaches through preference.

An edit records its size against the text it replaced (db.textdiff.edit_size: whole words inserted, deleted
or replaced, over the words of that text). With `--route small=R` (default DEFAULT_SMALL):

- `export sft --ablation curated`: every edit is a target as edited; one over R is counted under the source
  `edit_large` instead of `edit`, so the manifest's by_source counts each route.
- `export dpo`: an edit over R gives pairs (chosen: the edit; rejected: the model's text it replaced, and the
  other passed-over generations), counted under `edit_large>...`; an edit up to R gives none and is left out
  as `small_edit` (a polish of the model's words teaches little as a preference).

An edit that did not record what it replaced (and so has no size) counts as large. Edits recorded before
their size was stored have it computed here from the text they replaced.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlite_utils import Database

from db import export_reads
from db.textdiff import edit_size
from exports.errors import ExportOptionError
from exports.rules import SourceRow, Target

DEFAULT_SMALL = 0.2  # share of the replaced text's words an edit may change and still count as small
LARGE_SOURCE = "edit_large"
SMALL_EDIT = "small_edit"  # the DPO left-out reason


def parse_route(text: str) -> float:
    """`small=R` (R >= 0, a share of words: 0.2 is 20 %) as R; ExportOptionError naming the fix otherwise."""
    key, sep, value = text.partition("=")
    try:
        small = float(value) if sep and key.strip() == "small" else -1.0
    except ValueError:
        small = -1.0
    if small < 0:
        raise ExportOptionError(f"--route takes small=R, a share of words >= 0 (e.g. --route small=0.2: edits that "
                                f"change up to 20 % of the words they replaced are small), not {text!r}.")
    return small


Edits = dict[int, list[tuple[str | None, str | None, Any]]]  # db.export_reads.edit_events


def block_edits(db: Database, rows: Sequence[SourceRow]) -> Edits:
    """The active edits of a block's edited rows, and of the contested ones a policy may settle as an edit (one
    read per block)."""
    return export_reads.edit_events(db, (row.id for row in rows if row.status == "edited" or row.conflict))


def edit_ratio(row: SourceRow, edits: Edits) -> float | None:
    """The size ratio of the edit a (settled) row trains on, None when unknown: the edit behind the row's text is
    the first (review_state's order) with that text."""
    found = [e for e in edits.get(row.id, ()) if e[0] == row.edited_thought]
    if not found or row.edited_thought is None:
        return None
    _thought, base, recorded = found[0]
    if recorded is not None:
        return float(recorded)
    return None if base is None else edit_size(base, row.edited_thought).ratio


def is_large(ratio: float | None, small: float) -> bool:
    """Whether an edit of this size ratio goes the large route (an unknown size does)."""
    return ratio is None or ratio > small


def routed(target: Target, ratio: float | None, small: float) -> Target:
    """An edit target under its route's source name (other targets as they are)."""
    if target.source == "edit" and is_large(ratio, small):
        return target._replace(source=LARGE_SOURCE)
    return target
