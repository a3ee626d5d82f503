"""The files that make up a store, and the guard every output path passes before any work starts."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from db.errors import OutputPathError

if TYPE_CHECKING:
    from sqlite_utils import Database

# SQLite's own companions of a database file (WAL mode, and a rollback journal should one appear),
# and the review app's decision journals (db/journal.py).
STORE_SUFFIXES = ("", "-wal", "-shm", "-journal")
JOURNAL_SUFFIX = ".decisions"


def store_files(store: str | Path) -> tuple[Path, ...]:
    """The store file, its SQLite companions and its decision-journal folder."""
    store = Path(store)
    return (*(Path(f"{store}{s}") for s in STORE_SUFFIXES), Path(f"{store}{JOURNAL_SUFFIX}"))


def store_path(db: Database) -> Path | None:
    """The file of the store db is connected to (None for an in-memory database)."""
    row = db.execute("PRAGMA database_list").fetchone()  # main comes first; its file is '' in memory
    return Path(row[2]) if row and row[2] else None


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same resolved path, or (both existing) the same inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return real.startswith(top.rstrip(os.sep) + os.sep)


def refuse_clobber(target: str | Path, *, option: str, store: str | Path | None = None,
                   inputs: Iterable[str | Path] = ()) -> None:
    """OutputPathError if writing target (a file, or a folder that would be replaced) would destroy
    the store (or its -wal, -shm, journal) or an input file of the same command.

    option names the command-line option, so the message says which one to change.
    """
    target = Path(target)
    if store is not None:
        for part in store_files(store):
            if _same(target, part) or (part.exists() and _inside(part, target)):
                raise OutputPathError(
                    f"{option} {target} would overwrite the database {store}"
                    + ("" if part == Path(store) else f" (its file {part.name})")
                    + f". Choose another path for {option}; the database was not touched.")
    for source in inputs:
        source = Path(source)
        if _same(target, source) or (source.exists() and _inside(source, target)):
            raise OutputPathError(f"{option} {target} is the input file {source}; writing it would destroy the "
                                  f"input. Choose another path for {option}.")
