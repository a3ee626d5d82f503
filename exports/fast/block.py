"""A block: what selecting one run of examples yields, in a form that travels between processes.

An export selects its examples in blocks of consecutive ids (in one process, or in worker
processes: exports.fast.pool). A block holds the encoded lines of the examples it takes, with the
few facts the count needs per example (id, content hash, what each line is counted under), and
the examples it leaves out and why. Duplicates are not decided here: whether a pair was written
before depends on the blocks before it, so exports.tally decides that as it merges blocks in order.
"""
from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

MAX_IDS_PER_REASON = 1000  # example ids kept per left-out reason (the counts are always complete)
BLOCK_EXAMPLES = 10_000  # examples per block: one progress report, one tokenizer call, one worker message

Key = tuple[int, str, str, str, str]  # what a written line is counted under: (label, source, model, dataset, split)
T = TypeVar("T")


def chunks(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to size items from rows (the runs of examples blocks are made of)."""
    items = iter(rows)
    while chunk := list(itertools.islice(items, size)):
        yield chunk


@dataclass
class LeftOut:
    """Examples left out, by reason: complete counts and the first MAX_IDS_PER_REASON ids (in id order)."""

    counts: Counter[str] = field(default_factory=Counter)
    ids: dict[str, list[int]] = field(default_factory=dict)

    def add(self, example_id: int, reason: str, n: int = 1) -> None:
        """Count an example (or n pairs of it) left out for a reason."""
        self.counts[reason] += n
        ids = self.ids.setdefault(reason, [])
        if len(ids) < MAX_IDS_PER_REASON and (not ids or ids[-1] != example_id):
            ids.append(example_id)

    def merge(self, later: LeftOut) -> None:
        """Add the left-outs of examples that come after these (as if each had been added here in turn)."""
        self.counts.update(later.counts)
        for reason, ids in later.ids.items():
            mine = self.ids.setdefault(reason, [])
            for example_id in ids:
                if len(mine) >= MAX_IDS_PER_REASON:
                    break
                if not mine or mine[-1] != example_id:
                    mine.append(example_id)


@dataclass
class Block:
    """The selection of a run of consecutive examples (module docstring)."""

    considered: int  # examples in the run
    lines: list[bytes]  # the lines of the examples taken, UTF-8, in id order, each ending in "\n" (or them joined)
    ids: list[int]  # the examples taken, one entry each
    hashes: list[str]  # their content hashes
    lines_per_example: list[int] | None  # None: one line each (SFT)
    keys: list[int]  # per line: its index in key_table
    key_table: list[Key]
    left_out: LeftOut
    # (example id, outcome, the reasons of its standing decisions) of the examples whose decisions give reasons;
    # outcome: "written" or the left-out reason (exports.tally counts them, turning a duplicate's "written")
    reasons: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)

    @property
    def data(self) -> bytes:
        """The lines in one piece."""
        return b"".join(self.lines)


class BlockBuilder:
    """Collects a block example by example (in id order)."""

    def __init__(self, reasons: dict[int, tuple[str, ...]] | None = None) -> None:
        """reasons: example id -> the reasons of its standing decisions, for the examples that have any."""
        self.left_out = LeftOut()
        self._reasons = reasons or {}
        self._left_as: dict[int, str] = {}  # the left-out reason of the examples of _reasons
        # Without reasons (most blocks), leaving out is the counter's own method: no Python frame per example.
        self.leave_out = self._leave_out_noted if self._reasons else self.left_out.add
        self._lines: list[bytes] = []
        self._ids: list[int] = []
        self._hashes: list[str] = []
        self._per_example: list[int] = []
        self._keys: list[Key] = []

    def _leave_out_noted(self, example_id: int, reason: str, n: int = 1) -> None:
        self.left_out.add(example_id, reason, n)
        if example_id in self._reasons:
            self._left_as.setdefault(example_id, reason)

    def take(self, row: Any, line: bytes, label: int, source: str, model: str) -> None:
        """Add one example's line (row: an exports.rules.SourceRow)."""
        self._lines.append(line)
        self._ids.append(row.id)
        self._hashes.append(row.content_hash)
        self._keys.append((label, source, model, row.dataset, row.split))

    def take_lines(self, row: Any, lines: list[bytes], keys: list[tuple[int, str, str]]) -> None:
        """Add one example's lines, each with its (label, source, model)."""
        self._lines.extend(lines)
        self._ids.append(row.id)
        self._hashes.append(row.content_hash)
        self._per_example.append(len(lines))
        self._keys.extend((label, source, model, row.dataset, row.split) for label, source, model in keys)

    def finish(self, considered: int) -> Block:
        """The block of the examples added so far; considered: how many the run held."""
        index: dict[Key, int] = {}
        keys = [index.setdefault(key, len(index)) for key in self._keys]
        several = any(n != 1 for n in self._per_example)
        taken = set(self._ids) if self._reasons else set()
        reasons = [(example_id, "written" if example_id in taken else self._left_as[example_id], given)
                   for example_id, given in self._reasons.items()]
        return Block(considered, self._lines, self._ids, self._hashes,
                     self._per_example if several else None, keys, list(index), self.left_out, reasons)
