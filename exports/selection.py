"""Selecting an export: every example of its scope read in one snapshot, selected in blocks, merged in id order.

An export reads its examples in one snapshot of the database and selects them in blocks of
consecutive ids (exports.fast.block): in this process for small exports, in worker processes that
read the same snapshot for large ones (exports.fast.pool). Either way the blocks are merged in id
order by one Tally, which decides duplicates and counts, so both paths write the same bytes and
the same counts, and a plan computes exactly what a write writes.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from sqlite_utils import Database

from db.export_reads import count_in_scope, outside_scope, read_snapshot, scopes_of
from db.reviews import log_position
from db.scope import Scope
from exports.fast import block, pool
from exports.fast.block import Block, chunks
from exports.length import LengthCheck
from exports.rules import SourceRow
from exports.source import Source
from exports.tally import ExportPlan, Tally

Progress = Callable[[int, int], None]  # (examples considered so far, examples in scope)
OnWait = Callable[[], None]  # told each time a write (or the workers' snapshot) waits for another process's lock


class Options(Protocol):
    """What selecting reads of SftOptions and DpoOptions."""

    @property
    def splits(self) -> tuple[str, ...]: ...
    @property
    def datasets(self) -> tuple[str, ...]: ...
    @property
    def scope(self) -> Scope: ...
    @property
    def shuffle_seed(self) -> int | None: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def tokenizer(self) -> str | None: ...

    def as_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Selector:
    """One kind of export: what it reads, how it makes a Block of a run of its rows, and how it is written.

    exports.kinds.selector_for builds one from the options, here and in worker processes alike.
    """

    kind: str  # sft | dpo
    rule: str  # the ablation, or the DPO pairing rule
    source: Source
    build: Callable[[Database, LengthCheck, list[SourceRow]], Block]
    fmt: str  # the layout written: inst | messages | dpo
    rule_text: str  # the rule and the options in words (exports.sft.describe, exports.dpo.describe)


def _blocks_here(db: Database, selector: Selector, length: LengthCheck) -> Iterator[Block]:
    for rows in chunks(selector.source.rows(db), block.BLOCK_EXAMPLES):
        yield selector.build(db, length, rows)


def _finish(db: Database, tally: Tally, options: Options, length: LengthCheck, position: int) -> ExportPlan:
    """Resolve cross-split copies (inside the snapshot) and return the counts."""
    outside = outside_scope(db, options.scope, tally.first_copy)
    ids = [i for pair in tally.later_copies for i in pair] + [tally.first_copy[row[3]] for row in outside]
    tally.find_cross_split(scopes_of(db, ids), outside)
    return tally.plan(length_measure=length.name, max_tokens=length.max_tokens, review_log_position=position)


def select(db: Database, options: Options, selector: Selector, length: LengthCheck, progress: Progress | None,
           write: Callable[[bytes], None] | None, on_wait: OnWait | None = None) -> ExportPlan:
    """Select every block in one snapshot, merging them in order; write gets each block's lines (None: plan)."""
    workers = pool.workers_for(db, options)
    with contextlib.ExitStack() as stack:
        workers_pool = stack.enter_context(pool.Pool(db, workers, on_wait)) if workers else None  # holds writers off
        stack.enter_context(read_snapshot(db))
        position = log_position(db)  # the first read fixes the snapshot
        total = count_in_scope(db, options.scope)
        tally = Tally(selector.kind, selector.rule)
        blocks = workers_pool.blocks(selector, options, total) if workers_pool else _blocks_here(db, selector, length)
        for selected in blocks:
            data = tally.merge(selected)
            if write is not None:
                write(data)
            if progress is not None:
                progress(tally.considered, total)
        return _finish(db, tally, options, length, position)
