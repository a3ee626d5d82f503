"""Lineage of every export: the manifest beside the file, the row in the `exports` table, and their checks.

How an export is put in place (exports.run drives the steps), so that whatever moment a crash or
kill -9 strikes, a manifest on disk always describes the data beside it and names a recorded export:

1. The data is complete under its temporary name, fsynced, its sha256 known (exports.sink).
2. One write transaction (record_export): the `exports` row and the rows it supersedes (same
   resolved path); the manifest written under its temporary name; the old manifest (if any)
   removed; the data renamed (a folder swapped) into place. Then COMMIT.
3. The manifest renamed into place (place_manifest); then the run is marked completed (a
   transaction of its own).

Killed before the COMMIT, the store is as before; the data may already be new and the old manifest
already gone, so the replaced export reads "changed" in `nlistral exports` (below), never as a file
with a manifest that describes other data. Killed after the COMMIT, the export is recorded and its
file in place, and until 3 is done `nlistral exports` says its manifest is missing. Either way the
run is still `running`; the temporaries left behind are named in its config ("temporaries"), so
the sweep of interrupted runs (db.runs.mark_interrupted) removes them when it marks the run.

Checking an export (ExportRecord.state) is cheap by default: the size, file count and modification
time of the data are recorded at export (options["written"]) and compared with the file's now;
hashing every file against the recorded sha256 happens only when asked (`nlistral exports --verify`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from db.clock import now
from db.exports_log import export_rows, insert_export, supersede
from db.paths import store_path
from db.tx import when_unlocked, write_tx
from exports.errors import ManifestPlaceError
from exports.sink import HfSink, JsonlSink, export_sha256, file_stamp
from exports.tally import ExportPlan
from exports.target import Target, manifest_path

# What ExportRecord.state says of an export's data.
STATES = {
    "ok": "the file has the size and time recorded at export",
    "verified": "the file's sha256 equals the recorded one (--verify)",
    "changed": "the file is not what was exported (size, time or, with --verify, sha256 differ)",
    "missing": "the file is gone",
    "unchecked": "no size and time were recorded (an older export); --verify checks its sha256",
}


@dataclass(frozen=True)
class Manifest:
    """What an export holds and where it came from: enough to trace a trained adapter to review decisions."""

    export_id: int
    run_id: int
    kind: str  # sft | dpo
    rule: str
    rule_text: str
    format: str  # inst | messages | dpo
    storage: str  # jsonl | hf
    path: str
    manifest: str
    rows: int
    sha256: str  # of the file (jsonl), or over the folder's files (hf; exports.sink.dir_sha256)
    content_sha256: str  # of the JSON Lines text, whichever the storage: equal exports have equal values
    review_log_position: int
    database: str
    created_at: str
    options: dict[str, Any]
    plan: ExportPlan  # the counts, typed

    @property
    def counts(self) -> dict[str, Any]:
        """The counts as JSON-ready data (ExportPlan.as_dict)."""
        return self.plan.as_dict()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the manifest file holds): the fields in order, the plan as `counts`."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "plan"}
        return {**data, "counts": self.counts}


@dataclass(frozen=True)
class ExportRecord:
    """One row of the `exports` table, JSON fields decoded."""

    id: int
    kind: str
    path: str
    format: str
    rule: str
    options: dict[str, Any]
    counts: dict[str, Any]
    sha256: str
    review_log_position: int
    created_at: str
    superseded_by: int | None = None  # the export that later replaced this one at the same path

    @property
    def rows(self) -> int:
        """The rows (SFT) or pairs (DPO) written."""
        return int(self.counts.get("rows", 0))

    @property
    def manifest(self) -> Path:
        """The manifest file beside the export."""
        return manifest_path(Path(self.path))

    @property
    def present(self) -> bool:
        """Whether the exported file (or folder) is still there."""
        return Path(self.path).exists()

    @property
    def manifest_present(self) -> bool:
        """Whether the manifest beside the export is still there."""
        return self.manifest.is_file()

    def state(self, verify: bool = False) -> str:
        """A key of STATES: whether the file is still what was exported (module docstring)."""
        path = Path(self.path)
        if not path.exists():
            return "missing"
        if verify:
            return "verified" if export_sha256(path) == self.sha256 else "changed"
        written = self.options.get("written")
        if not isinstance(written, dict):
            return "unchecked"
        return "ok" if file_stamp(path) == written else "changed"


def listed_at(db: Database, path: Path) -> list[ExportRecord]:
    """The current (not superseded) exports of the store recorded at path, newest first."""
    return current_at(list_exports(db), path)


def current_at(records: list[ExportRecord], path: Path) -> list[ExportRecord]:
    """Those of records that are current (not superseded) and at path, compared as resolved paths."""
    real = os.path.realpath(Path(path).expanduser())
    return [r for r in records if r.superseded_by is None and os.path.realpath(r.path) == real]


def _write_manifest(manifest: Manifest, temporary: Path) -> None:
    with temporary.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest.as_dict(), ensure_ascii=False, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def record_export(db: Database, *, sink: JsonlSink | HfSink, plan: ExportPlan, fmt: str, rule_text: str,
                  options: dict[str, Any], run_id: int, on_wait: Callable[[], None] | None = None) -> Manifest:
    """Record the finished sink and put its data in place, its manifest under a temporary name (step 2 of the
    module docstring). Waits while another process holds the write lock (on_wait is told each time); an
    error leaves the store as it was and removes the temporary manifest."""
    target = sink.target
    stamp, written = now(), file_stamp(target.data_tmp)  # a rename keeps size and times

    def write() -> Manifest:
        with write_tx(db):
            export_id = insert_export(
                db, kind=plan.kind, path=str(target.path), fmt=fmt, rule=plan.rule,
                options={**options, "storage": sink.storage, "written": written}, counts=plan.as_dict(),
                sha256=sink.sha256, review_log_position=plan.review_log_position, created_at=stamp)
            supersede(db, export_id, [r.id for r in listed_at(db, target.path) if r.id != export_id])
            manifest = Manifest(
                export_id=export_id, run_id=run_id, kind=plan.kind, rule=plan.rule, rule_text=rule_text,
                format=fmt, storage=sink.storage, path=str(target.path), manifest=str(target.manifest),
                rows=plan.rows, sha256=sink.sha256, content_sha256=sink.content_sha256,
                review_log_position=plan.review_log_position, database=str(store_path(db) or ""), created_at=stamp,
                options=options, plan=plan,
            )
            _write_manifest(manifest, target.manifest_tmp)
            target.manifest.unlink(missing_ok=True)  # never a manifest beside data it does not describe
            sink.commit()
        return manifest

    try:
        manifest = when_unlocked(write, on_wait=on_wait)
    except BaseException:
        target.manifest_tmp.unlink(missing_ok=True)
        raise
    sink.cleanup()
    return manifest


def place_manifest(manifest: Manifest, target: Target) -> ManifestPlaceError | None:
    """Rename the recorded export's manifest into place (step 3); the error to raise once its run is completed."""
    try:
        os.replace(target.manifest_tmp, target.manifest)
    except OSError as exc:
        return ManifestPlaceError(
            f"Export {manifest.export_id} was written to {target.path} and recorded, but its manifest could not be "
            f"moved into place ({exc.strerror or exc}): it is at {target.manifest_tmp}; rename it to "
            f"{target.manifest}.")
    return None


def list_exports(db: Database, kind: str | None = None) -> list[ExportRecord]:
    """The recorded exports, newest first (optionally of one kind)."""
    return [ExportRecord(**row) for row in export_rows(db, kind)]
