"""The review app's decision journal: a step is on disk before the app shows it as made.

A review step (a decision, an undo, a redo, where the reviewer stands) is appended to a journal
file beside the store the moment its key is pressed, and written into the review log by the app's
writer thread whenever the store lets it (another process may hold the write lock for minutes: a
large import is one transaction). A step stored in the log gets a row in `journal_applied` in the
same transaction, so applying a journal twice stores each step once.

Each app session writes its own file, STORE.decisions/<reviewer>-<pid>-<token>.jsonl, and holds an
exclusive flock on it while it runs. A file nobody holds belongs to a session that ended (a quit
while the store was locked, a kill -9, a closed terminal): whoever opens the store next applies it
(`replay_orphans`) and deletes it. The append is one write() to the file, so a kill loses nothing
the app showed; an fsync on a thread of its own makes it survive a power cut too.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from db import positions, reviews
from db.clock import now
from db.errors import StoreError
from db.paths import JOURNAL_SUFFIX
from db.tx import write_tx

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; a journal is then never taken for an orphan
    fcntl = None  # type: ignore[assignment]

OPS = ("record", "undo", "redo", "position")


@dataclass(frozen=True)
class Step:
    """One journaled review step; `key` makes applying it idempotent."""

    op: str  # record | undo | redo | position
    reviewer: str
    action: str = ""  # for record: accept, reject, edit, ...
    ids: tuple[int, ...] = ()
    payload: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None
    at: dict[str, Any] | None = None  # where the reviewer stands: {"filter": {...}, "example": id}
    key: str = field(default_factory=lambda: secrets.token_hex(12))
    time: str = field(default_factory=now)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown journal step {self.op!r}; expected one of {OPS}")
        if self.op == "record":
            reviews.validate_step(self.action, self.payload, self.ids)

    def line(self) -> bytes:
        """The step as one JSON line."""
        return (json.dumps({**asdict(self), "ids": list(self.ids)}, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_line(cls, line: bytes) -> Step:
        """A step read back from its line (ValueError if the line is torn or not a step)."""
        data = json.loads(line)
        return cls(**{**data, "ids": tuple(data.get("ids") or ())})


@dataclass(frozen=True)
class Applied:
    """A step as stored: the group it made (record), the group it flipped (undo/redo), or why nothing changed."""

    step: Step
    group: int | None
    message: str = ""
    ids: tuple[int, ...] = ()  # the examples of the group an undo or redo flipped
    action: str = ""  # that group's action


def journal_folder(store: str | Path) -> Path:
    """The folder beside the store that holds its decision journals."""
    return Path(f"{store}{JOURNAL_SUFFIX}")


def apply_step(db: Database, step: Step) -> Applied:
    """Store one step in the review log unless it already is (one transaction with its journal_applied row).

    A step that cannot take effect (nothing to undo, an example gone) is stored as applied with a
    message, so a journal never holds a step that fails on every replay.
    """
    with write_tx(db):
        row = db.execute("SELECT group_id FROM journal_applied WHERE key = ?", [step.key]).fetchone()
        if row is not None:
            return Applied(step, row[0], "already stored")
        try:
            with write_tx(db):
                applied = _apply(db, step)
        except (StoreError, ValueError, sqlite3.IntegrityError) as exc:
            applied = Applied(step, None, str(exc))
        db.execute("INSERT INTO journal_applied (key, group_id, applied_at) VALUES (?, ?, ?)",
                   [step.key, applied.group, now()])
    return applied


def _apply(db: Database, step: Step) -> Applied:
    if step.op == "position":
        _save_position(db, step, decided=False)
        return Applied(step, None)
    if step.op == "record":
        group = reviews.record(db, step.action, step.ids, reviewer=step.reviewer, payload=step.payload,
                               seconds_spent=step.seconds)
        _save_position(db, step, decided=True)
        return Applied(step, group)
    flip = (reviews.redo if step.op == "redo" else reviews.undo)(db, reviewer=step.reviewer)
    return Applied(step, flip.group, ids=flip.ids, action=flip.action)


def _save_position(db: Database, step: Step, *, decided: bool) -> None:
    if step.at is not None:
        positions.save(db, step.reviewer, step.at.get("filter") or {}, step.at.get("example"), decided=decided,
                       at=step.time)


class Journal:
    """This session's journal file: append on the UI thread, sync and mark applied from the writer."""

    def __init__(self, store: str | Path, reviewer: str):
        folder = journal_folder(store)
        folder.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", reviewer)[:40] or "reviewer"
        self.path = folder / f"{name}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        # Locked under another name first: an unlocked *.jsonl is an orphan to whoever opens the store.
        making = self.path.with_suffix(".new")
        self._fd = os.open(making, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644)
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(making, self.path)
        self._lock = threading.Lock()
        self._pending: dict[str, Step] = {}
        self._closing = False
        self._dirty = threading.Event()
        # fsync takes milliseconds (4 ms median here, 10 ms at p90): off the UI thread, batched.
        self._syncer = threading.Thread(target=self._sync_loop, name="nlistral-journal-sync", daemon=True)
        self._syncer.start()

    def append(self, step: Step) -> None:
        """Write the step to the file (one write(): once this returns, a kill of the process loses nothing)."""
        data = step.line()
        with self._lock:
            self._pending[step.key] = step
            written = os.write(self._fd, data)
        self._dirty.set()
        if written != len(data):
            raise OSError(f"the decision journal {self.path} took only {written} of {len(data)} bytes (disk full?)")

    def _sync_loop(self) -> None:
        """Make what was appended survive a power cut too (a kill needs no fsync: the kernel has the bytes)."""
        while True:
            self._dirty.wait()
            if self._closing:
                return
            self._dirty.clear()
            with contextlib.suppress(OSError):
                os.fsync(self._fd)

    def applied(self, key: str) -> None:
        """The step with this key is in the review log."""
        with self._lock:
            self._pending.pop(key, None)

    def pending(self) -> list[Step]:
        """Steps appended but not yet known to be in the review log, oldest first."""
        with self._lock:
            return list(self._pending.values())

    def close(self) -> bool:
        """Close the file, deleting it when every step is stored; True if it was deleted.

        A file kept (steps still pending) is unlocked by the close, so the next process that opens
        the store applies it.
        """
        self._closing = True
        self._dirty.set()
        self._syncer.join()
        with self._lock:
            empty = not self._pending
            if empty:
                self.path.unlink(missing_ok=True)
            else:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
            os.close(self._fd)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # only when no other journal is there
        return empty


def _age(path: Path) -> float:
    """Oldest session first, so one reviewer's steps of two ended sessions are stored in the order made."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _claim(path: Path) -> int | None:
    """An open descriptor holding the file's flock, or None when a running session holds it (or it is gone)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def read_steps(data: bytes) -> Iterator[Step]:
    """The steps of a journal's bytes in order; a torn last line (a power cut mid-write) is skipped."""
    for line in data.splitlines():
        if line.strip():
            try:
                yield Step.from_line(line)
            except (ValueError, TypeError):
                continue


def replay_orphans(db: Database, store: str | Path) -> int:
    """Store every step of the journals that ended sessions left, then delete those files; returns how
    many review steps (decisions, undos, redos) were newly stored. Each file is held (flock) while it
    is applied. Raises sqlite3.OperationalError (SQLITE_BUSY) when the store stays locked: the file is
    then kept (the steps already stored are skipped next time)."""
    stored = 0
    folder = journal_folder(store)
    if not folder.is_dir():
        return 0
    for path in sorted(folder.glob("*.jsonl"), key=_age):
        fd = _claim(path)
        if fd is None:
            continue
        try:
            with os.fdopen(os.dup(fd), "rb") as fh:
                steps = list(read_steps(fh.read()))
            for step in steps:
                stored += apply_step(db, step).message != "already stored" and step.op != "position"
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    for path in folder.glob("*.new"):  # a session that died while starting its journal: nothing in it yet
        fd = _claim(path)
        if fd is not None:
            path.unlink(missing_ok=True)
            os.close(fd)
    with contextlib.suppress(OSError):
        folder.rmdir()
    return stored
