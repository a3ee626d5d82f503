"""Domain exceptions of the store. Each message says what was wrong and how to fix it."""
from __future__ import annotations


class StoreError(Exception):
    """Base class for errors raised by the store."""


class NotADatabaseError(StoreError):
    """The file given as the database is not an SQLite database."""


class UnknownExampleError(StoreError):
    """An operation named an example id that is not in the database."""


class NothingToUndoError(StoreError):
    """Undo was asked for but the review log has nothing left to undo."""


class NothingToRedoError(StoreError):
    """Redo was asked for but nothing has been undone since the last decision."""


class OutputPathError(StoreError):
    """An output path names the store, one of its companion files, or an input of the same command."""


class MissingDatabaseError(StoreError):
    """A command that only works on an existing store was pointed at a path with no database."""


class ReadOnlyStoreError(StoreError):
    """The store (or the folder SQLite keeps its -wal and -shm files in) cannot be written."""
