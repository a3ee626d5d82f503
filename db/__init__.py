"""The SQLite store: schema and migrations, typed records, queries and the append-only review log.

Headless: nothing here imports Textual or any model library.
"""
from db import _light_import  # noqa: F401  (first: sqlite-utils without pandas / numpy)
from db.connection import default_db_path, open_db
from db.errors import (
    NotADatabaseError,
    NothingToRedoError,
    NothingToUndoError,
    StoreError,
    UnknownExampleError,
)
from db.records import Example, Generation, ReviewState
from db.tx import write_tx

__all__ = [
    "Example",
    "Generation",
    "NotADatabaseError",
    "NothingToRedoError",
    "NothingToUndoError",
    "ReviewState",
    "StoreError",
    "UnknownExampleError",
    "default_db_path",
    "open_db",
    "write_tx",
]
