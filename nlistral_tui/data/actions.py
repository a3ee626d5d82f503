"""What the app reloads after the writer stored a review step: the details of the examples it touched."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlite_utils import Database

from db.detail import ExampleDetail, load_details
from db.journal import Applied


@dataclass(frozen=True)
class Recorded:
    """A step as stored (or why it changed nothing), with the reloaded details of the examples asked for."""

    applied: Applied
    details: dict[int, ExampleDetail]


def reload_after(reload: Sequence[int], run_id: int | None) -> Callable[[Database, Applied], Recorded]:
    """The writer's follow-up to a stored step: reload the details of `reload`."""
    ids = list(reload)
    return lambda db, applied: Recorded(applied, load_details(db, ids, run_id))
