"""Audit samples (`nlistral sample`): a seeded random sample, or a stratified one with proportional allocation.

Stratified, every stratum (db/samples.py) gets its share of n, rounded by largest remainder, and at least
one example when n is at least the number of non-empty strata.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlite_utils import Database

from db.queues import QueueFilter
from db.samples import STRATA, strata, write_sample
from pipeline.errors import UsageError

Stratum = tuple[tuple[str, ...], int, int]  # the keys' values, examples in it, examples sampled


@dataclass(frozen=True)
class Drawn:
    """A sample as stored: its name, the stratification keys, each stratum, examples an earlier one held."""

    name: str
    keys: tuple[str, ...]
    strata: list[Stratum]
    replaced: int

    @property
    def size(self) -> int:
        """How many examples the sample holds."""
        return sum(n for _, _, n in self.strata)


def allocate(sizes: Sequence[int], n: int) -> list[int]:
    """How many to draw from each stratum: proportional to its size, largest remainders first, at least one
    from each non-empty stratum when n allows, never more than it holds (all of them when n covers all)."""
    total = sum(sizes)
    if n >= total:
        return list(sizes)
    quota = [n * s / total for s in sizes]
    least = 1 if n >= sum(1 for s in sizes if s) else 0
    alloc = [min(s, max(least if s else 0, math.floor(q))) for s, q in zip(sizes, quota, strict=True)]
    while sum(alloc) > n:  # the minimum of one overshot: take back from the most over-allocated
        i = max((i for i, a in enumerate(alloc) if a > least), key=lambda i: alloc[i] - quota[i])
        alloc[i] -= 1
    while sum(alloc) < n:
        i = max((i for i, s in enumerate(sizes) if alloc[i] < s), key=lambda i: quota[i] - alloc[i])
        alloc[i] += 1
    return alloc


def parse_keys(text: str) -> tuple[str, ...]:
    """The stratification keys of --stratify ('gold,queue'); UsageError for an unknown or repeated one."""
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in keys if k not in STRATA]
    if unknown or len(set(keys)) != len(keys):
        raise UsageError(f"--stratify {text!r}: name each of {', '.join(STRATA)} at most once, comma-separated, "
                         "e.g. --stratify gold,queue.")
    return keys


def take_sample(db: Database, name: str, f: QueueFilter, n: int, keys: Sequence[str] = (), *, seed: int = 0,
                replace: bool = False) -> Drawn:
    """Draw n examples of the filter (stratified over keys, if any) and store them as the sample `name`."""
    if n < 1:
        raise UsageError(f"--n {n}: a sample holds at least one example.")
    if not name.strip():
        raise UsageError("The sample's name is empty: name it, e.g. --name audit.")
    groups: dict[tuple[str, ...], list[int]] = {}
    for example_id, values in strata(db, f, keys):
        groups.setdefault(values, []).append(example_id)
    if not groups:
        raise UsageError(f"No examples match {f.describe()}: nothing to sample; widen the filter.")
    order = sorted(groups)
    rng = random.Random(seed)
    chosen: list[int] = []
    drawn: list[Stratum] = []
    for values, k in zip(order, allocate([len(groups[v]) for v in order], n), strict=True):
        chosen.extend(rng.sample(groups[values], k))
        drawn.append((values, len(groups[values]), k))
    replaced = write_sample(db, name, chosen, replace=replace)
    return Drawn(name, tuple(keys), drawn, replaced)
