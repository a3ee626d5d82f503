"""Where export lines go: a JSON Lines file or a Hugging Face dataset folder, written under a temporary
name (exports.target chose it), hashed as they are written, and moved into place only when complete (a
crash leaves no half file): a file by rename, a folder by an atomic swap with the one it replaces."""
from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from exports.lines import PROVENANCE_FIELDS
from exports.target import Target

_FLUSH_BYTES = 1 << 22
# Every so many bytes the written part of the file is handed to the kernel to write back and forget:
# an export of a gigabyte does not fill the page cache with data nobody reads soon (allocating those
# pages costs more than the writing itself on some virtual machines), and the final fsync is short.
_DROP_BYTES = 1 << 26
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2); False where the system or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def file_stamp(path: Path) -> dict[str, int]:
    """Size, file count and latest modification time of a file or of the files in a folder: what
    `nlistral exports` compares to tell, without reading it, that an export was changed or replaced."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stats = [f.stat() for f in files]
    return {"bytes": sum(s.st_size for s in stats), "files": len(stats),
            "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}


class JsonlSink:
    """Lines into a temporary file with a running sha256; `commit` renames it into place."""

    storage = "jsonl"

    def __init__(self, target: Target):
        self.target, self.path, self._tmp = target, target.path, target.data_tmp
        self._fh: Any = None
        self._hash = hashlib.sha256()
        self._buffer: list[bytes] = []
        self._size = self._written = self._dropped = 0
        self.sha256 = self.content_sha256 = ""

    def open(self) -> None:
        """Create the temporary file (after the run that names it is recorded)."""
        self._fh = self._tmp.open("wb")

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

    def cleanup(self) -> None:
        """Nothing is left to remove after a file's commit."""

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._fh is not None and not self._fh.closed:
            try:
                self._fh.close()
            except OSError:
                pass  # what was buffered cannot be written (a full disk): the file goes anyway
        self._tmp.unlink(missing_ok=True)


def _features(layout: str) -> Any:
    from datasets import Features, List, Value

    text = Value("string")
    head = {"id": Value("int64"), "dataset": text, "source_id": text}
    if layout == "inst":
        return Features({**head, "text": text})
    if layout == "messages":
        return Features({**head, "messages": List({"role": text, "content": text})})
    provenance = {name: Value(kind) if isinstance(kind, str) else List({k: Value(v) for k, v in kind.items()})
                  for name, kind in PROVENANCE_FIELDS.items()}
    return Features({**head, "prompt": text, "chosen": text, "rejected": text, "provenance": provenance})


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def dir_sha256(folder: Path) -> str:
    """sha256 over `<sha256 of file>  <relative path>` lines of every file in the folder, sorted by path."""
    listing = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        listing.update(f"{file_sha256(file)}  {file.relative_to(folder).as_posix()}\n".encode())
    return listing.hexdigest()


def export_sha256(path: Path) -> str:
    """The sha256 an export of this path is recorded with: of the file (jsonl), or over a datasets folder's files."""
    return dir_sha256(path) if path.is_dir() else file_sha256(path)


class HfSink:
    """The same lines as a Hugging Face `datasets` dataset (save_to_disk) in a folder renamed into place."""

    storage = "hf"

    def __init__(self, target: Target, layout: str):
        self.target, self.path, self._tmp = target, target.path, target.data_tmp
        self._layout = layout
        self._rows: list[dict[str, Any]] = []
        self._hash = hashlib.sha256()
        self.sha256 = self.content_sha256 = ""

    def open(self) -> None:
        """Nothing to create before finish: the rows are kept in memory until then."""

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
        """Move the finished folder into place: swapped with what is there in one step where the system can,
        else that is moved aside first (exports.target checked it may be replaced); cleanup removes it."""
        if not (self.path.exists() or self.path.is_symlink()):
            os.replace(self._tmp, self.path)
        elif not _exchange(self._tmp, self.path):  # now the old one has the temporary name
            aside = self.target.aside_tmp
            assert aside is not None
            os.replace(self.path, aside)
            os.replace(self._tmp, self.path)

    def cleanup(self) -> None:
        """Remove what the folder replaced (under a temporary name since commit)."""
        for old in (self._tmp, self.target.aside_tmp):
            if old is not None:
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop the temporary folder."""
        shutil.rmtree(self._tmp, ignore_errors=True)
