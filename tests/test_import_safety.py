"""`nlistral import` never destroys the store or half-writes it: output paths, unwritable reports, full
disks (real file-size limits), another process's write lock, hostile text (issue 12, items 1, 8, 11, 14, 15)."""
from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from db import open_db
from pipeline.cli import app
from pipeline.importing import ImportFailed, import_file

runner = CliRunner()
GOOD = "premise,hypothesis,label\nA man sleeps.,Someone rests.,1\nA dog barks.,A cat meows.,0\n"
MIXED = "premise,hypothesis,label\nA woman reads.,Someone reads.,1\nA bird sings.,B,maybe\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _count(store: Path) -> int:
    conn = sqlite3.connect(store)
    try:
        return conn.execute("SELECT count(*) FROM examples").fetchone()[0]
    finally:
        conn.close()


def _store_with_two_rows(tmp_path: Path) -> Path:
    store = tmp_path / "s.db"
    db = open_db(store)
    import_file(db, _write(tmp_path / "first.csv", GOOD))
    db.conn.close()
    return store


def _cli(args: list[str], cwd: Path, limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    """`nlistral ARGS` in its own process, optionally under a real file-size limit (RLIMIT_FSIZE).

    SIGXFSZ is ignored as a shell's `ulimit -f` user would see it: writes past the limit fail (EFBIG).
    """
    def limit() -> None:
        if limit_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, preexec_fn=limit)


# --- item 1: an output path that is the store or the input ------------------------------------------

@pytest.mark.parametrize("target", ["s.db", "s.db-wal", "s.db-shm", "bad.csv", "./s.db"])
def test_a_report_path_that_is_the_store_or_the_input_is_refused_before_any_work(tmp_path, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    store = _store_with_two_rows(tmp_path)
    before = store.read_bytes()
    bad = _write(tmp_path / "bad.csv", MIXED)
    result = runner.invoke(app, ["import", "bad.csv", "--db", "s.db", "--skip-bad", "--report", target])
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert f"--report {Path(target)}" in out and "Choose another path for --report" in out
    assert store.read_bytes() == before and _count(store) == 2
    assert bad.read_text(encoding="utf-8") == MIXED


def test_the_default_report_path_passes_the_same_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "bad.csv", MIXED)
    result = runner.invoke(app, ["import", "bad.csv", "--db", "bad.csv.rejected.jsonl", "--skip-bad"])
    assert result.exit_code == 2, result.output
    assert "would overwrite the database bad.csv.rejected.jsonl" in " ".join(result.output.split())
    assert not (tmp_path / "bad.csv.rejected.jsonl").exists()


# --- item 15: a report that cannot be written, a full disk ------------------------------------------

@pytest.mark.parametrize("where", ["missing folder", "a folder", "under a file", "proc"])
def test_an_unwritable_report_is_refused_before_the_store_is_touched(tmp_path, where):
    (tmp_path / "a_folder").mkdir()
    _write(tmp_path / "a_file", "x")
    report = {"missing folder": tmp_path / "nowhere" / "r.jsonl", "a folder": tmp_path / "a_folder",
              "under a file": tmp_path / "a_file" / "r.jsonl", "proc": Path("/proc/nlistral-r.jsonl")}[where]
    store = tmp_path / "s.db"
    bad = _write(tmp_path / "bad.csv", MIXED)
    result = runner.invoke(app, ["import", str(bad), "--db", str(store), "--skip-bad", "--report", str(report)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
    assert f"--report {report}" in " ".join(result.output.split())
    assert not store.exists()  # checked before the store was opened: nothing imported, nothing created


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_report_in_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        bad = _write(tmp_path / "bad.csv", MIXED)
        result = runner.invoke(app, ["import", str(bad), "--db", str(tmp_path / "s.db"), "--skip-bad", "--report",
                                     str(folder / "r.jsonl")])
        assert result.exit_code == 2 and "cannot be written" in result.output
    finally:
        folder.chmod(0o755)


def test_a_report_that_fails_while_written_rolls_the_import_back(tmp_path):
    store = _store_with_two_rows(tmp_path)
    # One good row and many long bad ones: the report outgrows the file-size limit, the store does not.
    rows = ["premise,hypothesis,label", "A kid jumps.,Someone moves.,1"]
    rows += [f"Bad row {i} {'x' * 400},H,maybe" for i in range(4000)]
    bad = _write(tmp_path / "big_bad.csv", "\n".join(rows) + "\n")
    report = tmp_path / "r.jsonl"
    result = _cli(["import", str(bad), "--db", str(store), "--skip-bad", "--report", str(report)], tmp_path,
                  limit_bytes=1_000_000)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{report}: cannot write the report of rejected rows" in " ".join(result.stderr.split())
    assert "nothing was imported" in result.stderr
    assert _count(store) == 2
    assert not report.exists() and not Path(f"{report}.tmp").exists()


def _big_csv(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        fh.write("premise,hypothesis,label\n")
        for i in range(rows):
            fh.write(f"A person number {i} walks a dog along the river bank in the light.,Someone {i} is out.,{i % 2}\n")
    return path


def test_a_full_disk_is_a_message_and_leaves_the_store_as_it_was(tmp_path):
    store = _store_with_two_rows(tmp_path)
    data = _big_csv(tmp_path / "big_train.csv", 30_000)  # about 2.5 MB of pairs: more than the limit
    result = _cli(["import", str(data), "--db", str(store)], tmp_path, limit_bytes=1_000_000)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert f"{store}: writing failed: the disk may be full, a file-size limit reached" in message
    assert "nothing was imported (an import is one transaction)" in message
    conn = sqlite3.connect(store)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM examples").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM runs WHERE kind = 'import'").fetchone()[0] == 1  # the first import
    conn.close()
    again = _cli(["import", str(data), "--db", str(store)], tmp_path)  # with room: the same command works
    assert again.returncode == 0, again.stderr
    assert _count(store) == 30_002


def test_sqlite_full_is_a_clear_error_and_the_connection_stays_usable(tmp_path):
    store = _store_with_two_rows(tmp_path)
    db = open_db(store)
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 8}")  # SQLite's own size limit: SQLITE_FULL past it
    data = _big_csv(tmp_path / "big_train.csv", 5_000)
    with pytest.raises(ImportFailed, match=r"the disk is full while importing .*\(database or disk is full\); "
                       "nothing was imported"):
        import_file(db, data)
    assert not db.conn.in_transaction
    assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == 2
    db.execute("PRAGMA max_page_count = 1073741823")
    assert import_file(db, data).examples_added == 5_000


# --- item 11: another process holds the write lock ----------------------------------------------------

def test_import_waits_for_another_writer_says_so_once_then_finishes(tmp_path, monkeypatch):
    import db.connection

    store = _store_with_two_rows(tmp_path)
    data = _write(tmp_path / "more_train.csv", "premise,hypothesis,label\nA cat naps.,An animal rests.,1\n")
    hold_s, busy_ms = 2.5, 400
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(float(sys.argv[2])); "
         "c.execute('COMMIT')"), str(store), str(hold_s)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        monkeypatch.setattr(db.connection, "BUSY_TIMEOUT_MS", busy_ms)
        result = runner.invoke(app, ["import", str(data), "--db", str(store)])
        waited = time.monotonic() - started
    finally:
        holder.wait(30)
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stderr.count("waiting: another process is writing to") == 1, result.stderr
    assert f"waiting: another process is writing to {store}" in " ".join(result.stderr.split())
    assert waited >= hold_s - 0.5  # it did wait for the holder (less the time the holder took to start)
    assert "1 new example" in result.stdout and _count(store) == 3


# --- item 14: escape sequences never reach the terminal -------------------------------------------------

ESC = "\x1b]0;pwned\x07"


def test_escape_sequences_in_a_header_dataset_or_file_name_are_not_sent_raw(tmp_path):
    store = tmp_path / "s.db"
    header = _write(tmp_path / "h.csv", f"premise,hypo{ESC}thesis,label\nA,B,1\n")
    result = runner.invoke(app, ["import", str(header), "--db", str(store)])
    assert result.exit_code == 1 and "the header lacks hypothesis" in result.output
    named = _write(tmp_path / f"evil{ESC}_dev.csv", GOOD)
    dataset = runner.invoke(app, ["import", str(named), "--db", str(store)])
    assert dataset.exit_code == 0, dataset.output
    given = runner.invoke(app, ["import", str(_write(tmp_path / "p.csv", GOOD)), "--db", str(store),
                                "--dataset", f"d{ESC}", "--split", f"s{ESC}"])
    assert given.exit_code == 0, given.output
    label = runner.invoke(app, ["import", str(_write(tmp_path / "l.csv", f"premise,hypothesis,label\nA,B,x{ESC}\n")),
                                "--db", str(store)])
    assert label.exit_code == 1
    for out in (result.output, dataset.output, given.output, label.output):
        assert "\x1b" not in out and "\x07" not in out, repr(out)
    assert "pwned" in dataset.output and "pwned" in given.output  # shown, as visible text


# --- item 8: a failing import creates no database -------------------------------------------------------

@pytest.mark.parametrize("case", ["missing input", "bad format", "bad header", "bad label map", "not a format",
                                  "bad row", "bad JSON label"])
def test_a_failing_import_creates_no_database(tmp_path, case):
    store = tmp_path / "new.db"
    good = _write(tmp_path / "p.csv", GOOD)
    args = {"missing input": [str(tmp_path / "nope.csv")],
            "bad format": [str(good), "--format", "xml"],
            "bad header": [str(_write(tmp_path / "h.csv", "premise,label\nA,1\n"))],
            "bad label map": [str(good), "--label-map", "yes=2"],
            "not a format": [str(_write(tmp_path / "x.bin", "no tabs, no JSON\n"))],
            "bad row": [str(_write(tmp_path / "m.csv", MIXED))],  # found only while importing
            "bad JSON label": [str(_write(tmp_path / "x.jsonl",
                                          '{"premise": "p", "hypothesis": "h", "label": 1e-400}\n'))],
            }[case]
    result = runner.invoke(app, ["import", *args, "--db", str(store)])
    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), result.output
    assert not store.exists() and not Path(f"{store}-wal").exists()
