"""The built-in demo database: hand-written examples, thoughts and reflections shipped in the package."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from db.connection import open_db, open_elsewhere
from pipeline.importing import import_file

DEMO_DATASET = "demo"
DEMO_THOUGHT_MODEL = "demo/thought-writer"
DEMO_REFLECTION_MODEL = "demo/reflection-writer"
DEFAULT_DEMO_DB = Path("nlistral-demo.db")


class DemoError(Exception):
    """The demo database cannot be (re)built at the given path."""


def demo_files() -> dict[str, Path]:
    """The packaged demo files: examples, thoughts, reflections."""
    root = resources.files("pipeline") / "demo_data"
    return {name: Path(str(root / f"{name}{ext}")) for name, ext in
            (("examples", ".csv"), ("thoughts", ".jsonl"), ("reflections", ".jsonl"))}


def build_demo(path: Path) -> Path:
    """Build a fresh demo database at path, replacing an earlier demo database there."""
    if path.exists():
        db = open_db(path)
        other = db.execute("SELECT count(*) FROM examples WHERE dataset != ?", [DEMO_DATASET]).fetchone()[0]
        db.conn.close()
        if other:
            raise DemoError(f"{path} holds {other} examples that are not demo data; refusing to replace it. "
                            "Pass another --db for the demo.")
        if open_elsewhere(path):  # its decisions would go into a deleted file
            raise DemoError(f"{path} is open in another nlistral (the review app?); close it first, "
                            "or pass another --db for a second demo.")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = open_db(path)
    files = demo_files()
    common = {"dataset": DEMO_DATASET, "split": "train"}
    import_file(db, files["examples"], fmt="csv", **common)
    import_file(db, files["thoughts"], fmt="seed-thoughts", model=DEMO_THOUGHT_MODEL, **common)
    import_file(db, files["reflections"], fmt="seed-reflections", model=DEMO_REFLECTION_MODEL, **common)
    db.conn.close()
    return path
