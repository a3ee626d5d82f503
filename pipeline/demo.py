"""The built-in demo database: hand-written examples, thoughts and reflections shipped in the package."""
from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sqlite_utils import Database

from db.connection import open_db, open_elsewhere
from db.paths import store_files
from db.tallies import added_work, count_examples, examples_outside
from db.tx import write_tx
from pipeline.errors import PipelineError
from pipeline.importing import import_file

DEMO_DATASET = "demo"
DEMO_THOUGHT_MODEL = "demo/thought-writer"
DEMO_REFLECTION_MODEL = "demo/reflection-writer"


class DemoError(PipelineError):
    """The demo database cannot be opened or rebuilt at the given path."""


@dataclass(frozen=True)
class DemoStore:
    """What `nlistral demo` did: built the store, or found it; and what a rebuild deleted."""

    path: Path
    built: bool
    work: dict[str, int] = field(default_factory=dict)  # beyond the demo data: db.tallies.added_work
    deleted: bool = False  # a rebuild (fresh) deleted that work
    guide: Path | None = None  # the demo's review guidelines, written beside the store where none was


def demo_guide() -> Path:
    """The packaged demo guidelines (Markdown)."""
    return Path(str(resources.files("pipeline") / "demo_data" / "GUIDE.md"))


def place_guide(store: Path) -> Path | None:
    """Copy the demo guidelines beside the demo store, where the review app looks (G), unless a GUIDE.md is
    there already (never overwritten); the path written, or None."""
    target = store.resolve().parent / "GUIDE.md"
    if target.exists():
        return None
    try:
        shutil.copyfile(demo_guide(), target)
    except OSError:  # a read-only folder: the app says where a guide would go
        return None
    return target


def demo_files() -> dict[str, Path]:
    """The packaged demo files: examples, thoughts, reflections."""
    root = resources.files("pipeline") / "demo_data"
    return {name: Path(str(root / f"{name}{ext}")) for name, ext in
            (("examples", ".csv"), ("thoughts", ".jsonl"), ("reflections", ".jsonl"))}


def open_demo(path: Path, fresh: bool = False) -> DemoStore:
    """Build the demo database at path if it is missing or empty; else leave it as it is (the review kept).

    fresh=True rebuilds it, deleting the review decisions, exports records, runs and generations
    added since (counted in the result). A store holding other data is never touched, nor is one
    another process has open when a rebuild would delete it under that process. The demo guidelines are
    put beside it (place_guide).
    """
    opened = _open_demo(path, fresh)
    return dataclasses.replace(opened, guide=place_guide(path))


def _open_demo(path: Path, fresh: bool) -> DemoStore:
    if not path.exists():
        return DemoStore(build_demo(path), built=True)
    db = open_db(path, create=False)
    try:
        other = examples_outside(db, DEMO_DATASET)
        if other:
            raise DemoError(f"{path} holds {other} examples that are not demo data, so it is not a demo database; "
                            f"refusing to {'replace' if fresh else 'use'} it. Open it with `nlistral tui --db "
                            f"{path}`, or pass another --db for the demo.")
        empty = not count_examples(db)
        work = added_work(db)
        if empty or not fresh:
            if empty:  # created but never filled (an interrupted build writes nothing: one transaction)
                _fill(db)
            return DemoStore(path, built=empty, work=work)
    finally:
        db.conn.close()
    if open_elsewhere(path):  # its decisions would go into a deleted file
        raise DemoError(f"{path} is open in another nlistral (the review app?); close it first, "
                        "or pass another --db for a second demo.")
    for part in store_files(path):
        if part.is_dir():
            shutil.rmtree(part)
        else:
            part.unlink(missing_ok=True)
    return DemoStore(build_demo(path), built=True, work=work, deleted=True)


def build_demo(path: Path) -> Path:
    """Build the demo database at path (a new file, or an empty store) in one transaction."""
    db = open_db(path)
    try:
        _fill(db)
    finally:
        db.conn.close()
    return path


def _fill(db: Database) -> None:
    files = demo_files()
    with write_tx(db):  # all or nothing: a killed build leaves an empty store, which the next demo fills
        for name, fmt, model in (("examples", "csv", None), ("thoughts", "seed-thoughts", DEMO_THOUGHT_MODEL),
                                 ("reflections", "seed-reflections", DEMO_REFLECTION_MODEL)):
            import_file(db, files[name], fmt=fmt, model=model, dataset=DEMO_DATASET, split="train")


def describe_work(work: dict[str, int]) -> str:
    """The work counts in words, e.g. '12 review decisions (9 examples decided), 1 export record'; '' if none."""
    def n(key: str, one: str, many: str) -> str:
        return f"{work[key]} {one if work[key] == 1 else many}"

    parts = []
    if work.get("review decisions"):
        parts.append(f"{n('review decisions', 'review decision', 'review decisions')} "
                     f"({n('examples decided', 'example', 'examples')} decided)")
    since = "added since (predictions, re-run reflections, judge scores)"
    for key, one, many in (("export records", "export record", "export records"), ("runs", "run", "runs"),
                           ("generations added", f"generation {since}", f"generations {since}")):
        if work.get(key):
            parts.append(n(key, one, many))
    return ", ".join(parts)
