"""Keeping key presses fast, and measuring it: the latency probe that benchmarks/tui_latency.py reads, and
the garbage-collection tuning that keeps collections out of key presses."""
from __future__ import annotations

import gc
import time
from collections import deque

from textual.dom import DOMNode

KINDS = ("next", "filter", "search")  # what a probe times: a move, a new filter, a new search


class LatencyProbe:
    """Times one step at a time, from the step to the end of the refresh that shows its example, in ms."""

    def __init__(self) -> None:
        self.latency: dict[str, deque[float]] = {k: deque(maxlen=100_000) for k in KINDS}
        self._open: tuple[str, float, int | None] | None = None

    def start(self, kind: str, target: int | None = None) -> None:
        """Time from now to the refresh that shows example target (None: whatever shows first)."""
        self._open = (kind, time.perf_counter(), target)

    def shown(self, node: DOMNode, example_id: int | None) -> None:
        """An example is on its way to the screen (None: none is): the open probe, if it waits for this
        one, ends when node's next refresh is out."""
        if self._open is not None and (self._open[2] is None or (example_id is not None
                                                                 and example_id == self._open[2])):
            kind, started, _ = self._open
            self._open = None
            node.call_after_refresh(self._finish, kind, started)

    def _finish(self, kind: str, started: float) -> None:
        self.latency[kind].append((time.perf_counter() - started) * 1000)


def quiet_gc() -> None:
    """Keep garbage collection out of key presses: the objects of startup are never freed, so freezing
    them spares every later full collection from walking them (a 100-300 ms pause on a big store
    otherwise); the review screen collects young objects after each frame (collect_young), so the
    automatic collection (a high threshold, as a safety net) rarely lands inside one."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 1000)


def collect_young() -> None:
    """Collect the young garbage now, while idle, rather than in the middle of the next key's frame."""
    gc.collect(0)
