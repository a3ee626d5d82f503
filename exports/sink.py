"""Where export lines go: a JSON Lines file or a Hugging Face dataset folder, written under a temporary
name, hashed as they are written, and renamed into place only when complete (a crash leaves no half file)."""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from exports.errors import ExportTargetError
from exports.lines import PROVENANCE_FIELDS

_FLUSH_BYTES = 1 << 22
# Every so many bytes the written part of the file is handed to the kernel to write back and forget:
# an export of a gigabyte does not fill the page cache with data nobody reads soon (allocating those
# pages costs more than the writing itself on some virtual machines), and the final fsync is short.
_DROP_BYTES = 1 << 26


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def check_target(path: Path, *, folder: bool) -> Path:
    """The absolute output path, or ExportTargetError saying what is in the way and how to fix it."""
    path = Path(path).expanduser().absolute()
    if folder:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ExportTargetError(f"{path} already exists; --hf writes a new dataset folder. Remove it or "
                                    "choose another path.")
    elif path.is_dir():
        raise ExportTargetError(f"{path} is a directory; give --out the path of a .jsonl file.")
    if not path.parent.is_dir():
        raise ExportTargetError(f"The folder {path.parent} does not exist; create it first (mkdir -p).")
    return path


class JsonlSink:
    """Lines into a temporary file with a running sha256; `commit` renames it into place."""

    storage = "jsonl"

    def __init__(self, path: Path):
        self.path = check_target(path, folder=False)
        self._tmp = _temporary(self.path)
        self._fh = self._tmp.open("wb")
        self._hash = hashlib.sha256()
        self._buffer: list[bytes] = []
        self._size = self._written = self._dropped = 0
        self.sha256 = self.content_sha256 = ""

    def write(self, data: bytes) -> None:
        """Add lines (UTF-8, each ending in a newline)."""
        self._buffer.append(data)
        self._size += len(data)
        if self._size > _FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        for data in self._buffer:
            self._hash.update(data)
            self._fh.write(data)
        self._written += self._size
        self._buffer, self._size = [], 0
        if self._written - self._dropped >= _DROP_BYTES and hasattr(os, "posix_fadvise"):
            self._fh.flush()
            os.posix_fadvise(self._fh.fileno(), 0, self._written, os.POSIX_FADV_DONTNEED)
            self._dropped = self._written

    def finish(self) -> None:
        """Write out what is buffered and fix the hashes (the file keeps its temporary name)."""
        self._flush()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self.sha256 = self.content_sha256 = self._hash.hexdigest()

    def commit(self) -> None:
        """Move the finished file into place (atomic on one file system)."""
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file."""
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)


def _features(layout: str) -> Any:
    from datasets import Features, List, Value

    text = Value("string")
    if layout == "inst":
        return Features({"id": Value("int64"), "text": text})
    if layout == "messages":
        return Features({"id": Value("int64"), "messages": List({"role": text, "content": text})})
    provenance = {name: Value(kind) for name, kind in PROVENANCE_FIELDS.items()}
    return Features({"id": Value("int64"), "prompt": text, "chosen": text, "rejected": text,
                     "provenance": provenance})


def dir_sha256(folder: Path) -> str:
    """sha256 over `<sha256 of file>  <relative path>` lines of every file in the folder, sorted by path."""
    listing = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        listing.update(f"{digest}  {file.relative_to(folder).as_posix()}\n".encode())
    return listing.hexdigest()


class HfSink:
    """The same lines as a Hugging Face `datasets` dataset (save_to_disk) in a folder renamed into place."""

    storage = "hf"

    def __init__(self, folder: Path, layout: str):
        self.path = check_target(folder, folder=True)
        self._tmp = _temporary(self.path)
        self._layout = layout
        self._rows: list[dict[str, Any]] = []
        self._hash = hashlib.sha256()
        self.sha256 = self.content_sha256 = ""

    def write(self, data: bytes) -> None:
        """Add lines (UTF-8, each ending in a newline): each dataset row is exactly its line's JSON."""
        self._hash.update(data)
        self._rows.extend(map(json.loads, data.splitlines()))

    def finish(self) -> None:
        """Build and save the dataset under the temporary name; fix the hashes."""
        from datasets import Dataset
        from datasets.utils.logging import (
            disable_progress_bar,
            enable_progress_bar,
            is_progress_bar_enabled,
        )

        shown = is_progress_bar_enabled()
        disable_progress_bar()  # the export draws its own progress
        try:
            Dataset.from_list(self._rows, features=_features(self._layout)).save_to_disk(str(self._tmp))
        finally:
            if shown:
                enable_progress_bar()
        self.sha256, self.content_sha256 = dir_sha256(self._tmp), self._hash.hexdigest()

    def commit(self) -> None:
        """Move the finished folder into place."""
        if self.path.exists():
            self.path.rmdir()  # check_target allowed only an empty folder
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary folder."""
        shutil.rmtree(self._tmp, ignore_errors=True)
