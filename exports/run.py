"""The one entry point of an export: plan (the counts only) and write (an ExportRequest), for the CLI and the app.

A write owns its run's whole life: the target checked before anything else (never the store or an
input; an existing one only with overwrite), the `export` run started with every temporary name
recorded before the first is created, the lines selected (exports.selection) into a sink, the
export recorded and put in place with its manifest (exports.lineage), then the run completed; on
any failure or interrupt, the temporaries are removed and the run marked failed or cancelled. Each
write to the store waits out another process's lock (on_wait is told each time).
"""
from __future__ import annotations

import contextlib
import errno
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from db.paths import store_path
from db.runs import finish_run, start_run
from db.tx import when_unlocked
from exports.errors import EmptyExportError, ExportWriteError, ManifestPlaceError
from exports.kinds import selector_for
from exports.length import length_check
from exports.lineage import Manifest, listed_at, place_manifest, record_export
from exports.options import ExportOptions
from exports.selection import OnWait, Progress, select
from exports.sink import HfSink, JsonlSink
from exports.tally import ExportPlan
from exports.target import Target, check_target

# Errors of a full or unwritable disk: said in words, with the fix.
_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


@dataclass(frozen=True)
class ExportRequest:
    """One export to write: what it selects (options) and where it goes (exactly one of out and hf_dir)."""

    options: ExportOptions
    out: Path | None = None  # a JSON Lines file
    hf_dir: Path | None = None  # a Hugging Face datasets folder
    overwrite: bool = False  # replace what is at the path (the export it held is marked superseded)

    def __post_init__(self) -> None:
        if (self.out is None) == (self.hf_dir is None):
            raise ValueError("give exactly one of out (a .jsonl file) and hf_dir (a dataset folder)")

    @property
    def path(self) -> Path:
        """The output path, absolute."""
        path = self.out if self.out is not None else self.hf_dir
        assert path is not None
        return Path(path).expanduser().absolute()


def plan(db: Database, options: ExportOptions, progress: Progress | None = None,
         on_wait: OnWait | None = None) -> ExportPlan:
    """The counts an export with these options would have, without writing anything (with on_wait, a locked
    store is waited for)."""
    return select(db, options, selector_for(options.kind, options), length_check(options), progress, None, on_wait)


def export_target(db: Database, request: ExportRequest) -> Target:
    """The checked output of an export (exports.target.check_target), against this store and the options' inputs."""
    listed = listed_at(db, request.path)
    about = f"export #{listed[0].id} of this store, written {listed[0].created_at[:16].replace('T', ' ')} UTC" \
        if listed else ""
    tokenizer = request.options.tokenizer
    return check_target(request.path, folder=request.hf_dir is not None, overwrite=request.overwrite,
                        store=store_path(db), inputs=[tokenizer] if tokenizer else [], listed=about)


def write(db: Database, request: ExportRequest, progress: Progress | None = None,
          on_wait: OnWait | None = None) -> Manifest:
    """Write the export the request describes, with its manifest, table row and run (module docstring)."""
    options = request.options
    target = export_target(db, request)
    selector = selector_for(options.kind, options)
    length = length_check(options)
    sink: JsonlSink | HfSink = HfSink(target, selector.fmt) if target.folder else JsonlSink(target)
    config = {"kind": selector.kind, "path": str(target.path), "format": selector.fmt, "storage": sink.storage,
              "overwrite": request.overwrite, "temporaries": target.temporaries, **options.as_dict()}
    run_id: int | None = None
    try:
        run_id = when_unlocked(lambda: start_run(db, "export", config), on_wait=on_wait)
        sink.open()
        if options.shuffle_seed is None:
            counts = select(db, options, selector, length, progress, sink.write, on_wait)
        else:
            blocks: list[bytes] = []
            counts = select(db, options, selector, length, progress, blocks.append, on_wait)
            lines = b"".join(blocks).splitlines(keepends=True)
            del blocks
            random.Random(options.shuffle_seed).shuffle(lines)
            sink.write(b"".join(lines))
        if not counts.rows:
            raise EmptyExportError(_nothing_message(counts))
        sink.finish()
        manifest = record_export(db, sink=sink, plan=counts, fmt=selector.fmt, rule_text=selector.rule_text,
                                 options=options.as_dict(), run_id=run_id, on_wait=on_wait)
        _complete(db, run_id, manifest, target, on_wait)
        return manifest
    except ManifestPlaceError:
        raise  # the export is recorded and in place, its run completed
    except BaseException as exc:
        sink.abort()
        if run_id is not None:
            status, done = ("cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"), run_id
            error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(sqlite3.Error):  # a store that cannot be written: the sweep marks it later
                when_unlocked(lambda: finish_run(db, done, status, error=error), on_wait=on_wait)
        explained = _explained(exc, target, run_id)
        if explained is exc:
            raise
        raise explained from None


def _complete(db: Database, run_id: int, manifest: Manifest, target: Target, on_wait: OnWait | None) -> None:
    """Put the recorded export's manifest in place and mark its run completed (ManifestPlaceError, after
    that, when the manifest could not be renamed)."""
    unplaced = place_manifest(manifest, target)
    artifacts = {"path": str(target.path), "manifest": str(target.manifest), "export_id": manifest.export_id}
    metrics = {"rows": manifest.rows, "left_out": manifest.plan.left_out}
    error = None if unplaced is None else str(unplaced)
    when_unlocked(lambda: finish_run(db, run_id, "completed", metrics=metrics, artifacts=artifacts, error=error),
                  on_wait=on_wait)
    if unplaced is not None:
        raise unplaced


def _nothing_message(plan: ExportPlan) -> str:
    if not plan.considered:
        return "Nothing to export: no examples in the chosen splits and datasets. `nlistral stats` lists them."
    reasons = ", ".join(f"{reason}: {n}" for reason, n in plan.left_out.items())
    hint = " Review some examples first (DPO pairs come from accept and edit decisions)." if plan.kind == "dpo" else ""
    return f"Nothing to export: all {plan.considered} examples were left out ({reasons}).{hint}"


def _explained(exc: BaseException, target: Target, run_id: int | None) -> BaseException:
    """A full or unwritable disk (the export's or the store's) as an ExportWriteError that says what to do."""
    if isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_FULL,
                                                                                     sqlite3.SQLITE_IOERR):
        return ExportWriteError(f"The store could not be written ({exc}): its disk may be full. Nothing was exported; "
                                "free some space and export again.")
    if not isinstance(exc, OSError):
        return exc
    folder, option = target.path.parent, "--hf" if target.folder else "--out"
    if exc.errno in _DISK_FULL:
        why = f"the disk holding {folder} is full (or a quota or file-size limit was reached)"
        fix = f"Free some space there (or choose {option} on another disk) and export again."
    else:
        why = f"{folder} cannot be written here"
        fix = f"Choose {option} in a folder you can write to (or fix its permissions) and export again."
    run = f" and export run {run_id} is marked failed" if run_id is not None else ""
    return ExportWriteError(f"Writing {target.path} failed: {exc.strerror or exc}; {why}. Nothing was kept: the "
                            f"temporary file is removed{run}. {fix}")


def write_to(db: Database, options: ExportOptions, out: Path | None = None, hf_dir: Path | None = None,
             progress: Progress | None = None, *, overwrite: bool = False, on_wait: OnWait | None = None) -> Manifest:
    """write, with the request's parts as arguments."""
    return write(db, ExportRequest(options, out, hf_dir, overwrite), progress, on_wait)
