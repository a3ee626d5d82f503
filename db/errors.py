"""The project's exception root, and the store's errors. Each message says what was wrong and how to fix it."""
from __future__ import annotations

from typing import ClassVar


class NlistralError(Exception):
    """Root of every error the project raises on purpose: str() is the message a user is shown.

    Each package has one root under it (StoreError here, ExportError, PipelineError); the command line
    and the review app show any NlistralError as a message, never as a traceback. exit_code is the
    command line's status for it: 1, or 2 when the fix is in what the command was given (an option,
    a config, the store path), as for a bad option.
    """

    exit_code: ClassVar[int] = 1


class StoreError(NlistralError):
    """Base class for errors raised by the store (exit 2: the fix is in the store given, or in --db)."""

    exit_code: ClassVar[int] = 2


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
