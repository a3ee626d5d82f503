"""Where an export may write: never the store or an input, an existing target only with --overwrite, and the
exports it replaces listed as superseded, with files that changed or went missing said so."""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import open_db
from db.runs import list_runs
from exports import ExportTargetError, SftOptions, list_exports, write_to
from pipeline.cli import app

runner = CliRunner()


def _examples(db_path: Path) -> int:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT count(*) FROM examples").fetchone()[0]
    finally:
        conn.close()


def _sft(db: Path, *args: str) -> object:
    return runner.invoke(app, ["export", "sft", "--db", str(db), *args])


@pytest.mark.parametrize("target", ["{db}", "{db}-wal", "{db}-shm", "{db}-journal"])
def test_an_output_that_is_the_store_is_refused_before_any_work(demo_db_path, target):
    """`export sft --db s.db --out s.db` used to replace the database with JSON Lines (exit 0)."""
    out = target.format(db=demo_db_path)
    before = _examples(demo_db_path)
    result = _sft(demo_db_path, "--out", out)
    assert result.exit_code == 2, result.output
    assert "would overwrite the database" in result.output and "--out" in result.output
    assert "Traceback" not in result.output
    assert _examples(demo_db_path) == before == 45  # still the store, whole
    db = open_db(demo_db_path)
    assert list_runs(db, "export") == [] and list_exports(db) == []  # refused before any work: no run
    db.conn.close()


def test_the_manifest_beside_an_output_may_not_be_the_store_either(tmp_path):
    from pipeline.demo import build_demo

    store = build_demo(tmp_path / "train.jsonl.manifest.json")  # a store named like the manifest of train.jsonl
    result = _sft(store, "--out", str(tmp_path / "train.jsonl"))
    assert result.exit_code == 2 and "the manifest of --out" in result.output
    assert _examples(store) == 45 and not (tmp_path / "train.jsonl").exists()


def test_an_input_of_the_export_is_never_its_output(demo_db_path, tmp_path):
    from pipeline.tiny_model import build_tokenizer

    tokenizer = tmp_path / "tok"
    build_tokenizer().save_pretrained(tokenizer)
    result = _sft(demo_db_path, "--tokenizer", str(tokenizer), "--hf", str(tokenizer))
    assert result.exit_code == 2 and "is the input file" in result.output
    assert (tokenizer / "tokenizer.json").exists()


def test_the_core_refuses_the_store_too_so_the_app_is_protected(demo_db_path):
    """The review app's export screen calls write_to: the check is in the core, not only in the CLI."""
    db = open_db(demo_db_path)
    with pytest.raises(ExportTargetError, match="would overwrite the database"):
        write_to(db, SftOptions(), out=demo_db_path)
    assert list_runs(db, "export") == [] and _examples(demo_db_path) == 45
    db.conn.close()


def test_an_existing_file_is_refused_unless_overwrite(demo_db_path, tmp_path):
    """An existing --out (any file, the input CSV) used to be overwritten without a word."""
    csv = tmp_path / "pairs.csv"
    csv.write_text("premise,hypothesis,label\na,b,1\n")
    result = _sft(demo_db_path, "--out", str(csv))
    assert result.exit_code == 2 and "already exists" in result.output and "--overwrite" in result.output
    assert csv.read_text() == "premise,hypothesis,label\na,b,1\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_overwrite_supersedes_the_listed_export_and_exports_says_so(demo_db_path, tmp_path):
    out = tmp_path / "train.jsonl"
    first = json.loads(_sft(demo_db_path, "--out", str(out), "--json").stdout)
    again = _sft(demo_db_path, "--out", str(out), "--ablation", "correct-only")
    assert again.exit_code == 2 and f"export #{first['export_id']} of this store" in again.output
    assert json.loads(Path(first["manifest"]).read_text())["export_id"] == first["export_id"]
    second = json.loads(_sft(demo_db_path, "--out", str(out), "--ablation", "correct-only", "--overwrite",
                             "--json").stdout)
    assert second["rule"] == "correct-only" and json.loads(Path(second["manifest"]).read_text()) == second
    listed = {r["id"]: r for r in json.loads(runner.invoke(app, ["exports", "--db", str(demo_db_path), "--json"]).stdout)}
    assert listed[first["export_id"]]["superseded_by"] == second["export_id"]
    assert listed[second["export_id"]]["superseded_by"] is None and listed[second["export_id"]]["state"] == "ok"
    table = runner.invoke(app, ["exports", "--db", str(demo_db_path)]).output
    assert f"superseded by #{second['export_id']}" in table
    assert not list(tmp_path.glob(".*.tmp"))


def test_exports_tells_a_changed_or_missing_file_cheaply_and_verify_hashes(demo_db_path, tmp_path):
    out = tmp_path / "train.jsonl"
    assert _sft(demo_db_path, "--out", str(out)).exit_code == 0

    def state(*flags: str) -> str:
        (record,) = json.loads(runner.invoke(app, ["exports", "--db", str(demo_db_path), "--json", *flags]).stdout)
        return record["state"]

    assert state() == "ok" and state("--verify") == "verified"
    stat = out.stat()
    data = out.read_bytes()
    out.write_bytes(data.replace(b"Premise", b"premise", 1))  # same size, other content
    os.utime(out, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the old time: only hashing can tell
    assert state() == "ok" and state("--verify") == "changed"
    out.write_bytes(data + b"{}\n")
    assert state() == "changed"
    assert "changed since export" in runner.invoke(app, ["exports", "--db", str(demo_db_path)]).output
    out.unlink()
    assert state() == "missing"


def test_a_datasets_folder_is_swapped_only_with_overwrite_and_a_foreign_folder_never(demo_db_path, tmp_path):
    from datasets import load_from_disk

    folder = tmp_path / "ds"
    assert _sft(demo_db_path, "--hf", str(folder)).exit_code == 0
    rows = load_from_disk(str(folder)).to_list()
    assert list(rows[0])[:3] == ["id", "dataset", "source_id"] and rows[0]["dataset"] == "demo"
    refused = _sft(demo_db_path, "--hf", str(folder), "--ablation", "correct-only")
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    assert _sft(demo_db_path, "--hf", str(folder), "--ablation", "correct-only", "--overwrite").exit_code == 0
    assert len(load_from_disk(str(folder))) < len(rows)
    assert not list(tmp_path.glob(".*.tmp"))
    db = open_db(demo_db_path)
    old, new = sorted(list_exports(db), key=lambda r: r.id)
    assert old.superseded_by == new.id and new.state("verify") == "verified"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ExportTargetError, match="not a datasets folder"):
        write_to(db, SftOptions(), hf_dir=mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    db.conn.close()


@pytest.mark.parametrize("swap", [True, False])
def test_a_replaced_datasets_folder_leaves_nothing_behind_with_or_without_an_atomic_swap(demo_db_path, tmp_path,
                                                                                         monkeypatch, swap):
    from datasets import load_from_disk

    from exports import sink

    if not swap:  # a system without renameat2: the old folder is moved aside first, then removed
        monkeypatch.setattr(sink, "_exchange", lambda a, b: False)
    db = open_db(demo_db_path)
    folder = tmp_path / "ds"
    first = write_to(db, SftOptions(), hf_dir=folder)
    second = write_to(db, SftOptions(ablation="correct-only"), hf_dir=folder, overwrite=True)
    assert len(load_from_disk(str(folder))) == second.rows < first.rows
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("ds", ".ds"))) == ["ds", "ds.manifest.json"]
    db.conn.close()


def test_the_run_names_every_temporary_before_creating_it(demo_db_path, tmp_path):
    """The sweep of interrupted runs deletes what a run's config lists under "temporaries"."""
    from exports import TargetExistsError

    out = tmp_path / "train.jsonl"
    db = open_db(demo_db_path)
    seen: list[list[str]] = []

    def progress(done: int, total: int) -> None:
        (run,) = list_runs(db, "export")
        temporaries = run.config["temporaries"]
        on_disk = [str(p) for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert on_disk and set(on_disk) <= set(temporaries)
        seen.append(temporaries)

    write_to(db, SftOptions(), out=out, progress=progress)
    assert seen and all(Path(p).is_absolute() and Path(p).parent == tmp_path and Path(p).name.startswith(".")
                        and p.endswith(".tmp") for p in seen[0])
    assert len(seen[0]) == 2 and not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(TargetExistsError):
        write_to(db, SftOptions(), out=out)
    db.conn.close()
