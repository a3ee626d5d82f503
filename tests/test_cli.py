"""The `nlistral` command line: help everywhere, exit codes, messages, JSON output."""
from __future__ import annotations

import json
import subprocess
import sys

import click
import typer
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


def test_every_command_has_help():
    group = typer.main.get_command(app)
    names = list(_all_commands(group))
    assert {("import",), ("stats",), ("demo",), ("tui",)} <= set(names)
    for name in names:
        result = runner.invoke(app, [*name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        command = group
        for part in name:
            command = command.commands[part]
        assert command.help and command.help.strip(), f"nlistral {' '.join(name)} has no help text"


def test_import_then_stats_json(tmp_path):
    data = tmp_path / "pairs.csv"
    data.write_text("premise,hypothesis,label\nA man sleeps.,Someone rests.,1\nA dog barks.,A cat meows.,0\n")
    db = tmp_path / "x.db"
    result = runner.invoke(app, ["import", str(data), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "2 new examples" in result.output
    again = runner.invoke(app, ["import", str(data), "--db", str(db)])
    assert "0 new examples" in again.output and "2 examples were already there" in again.output
    stats = runner.invoke(app, ["stats", "--json", "--db", str(db)])
    payload = json.loads(stats.output)
    for key in ("examples", "thoughts", "reflections", "mismatches", "thought_accuracy", "thought_precision",
                "thought_recall", "thought_f1"):
        assert key in payload
    assert payload["examples"] == 2 and payload["thought_accuracy"] is None


def test_db_from_environment(tmp_path, monkeypatch):
    data = tmp_path / "pairs.csv"
    data.write_text("premise,hypothesis,label\nA,B,1\n")
    monkeypatch.setenv("NLISTRAL_DB", str(tmp_path / "env.db"))
    assert runner.invoke(app, ["import", str(data)]).exit_code == 0
    assert (tmp_path / "env.db").exists()


def test_bad_input_exits_nonzero_with_location(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text("premise,hypothesis,label\nA,B,yes\n")
    result = runner.invoke(app, ["import", str(data), "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1
    assert f"{data}:2: label 'yes' is not 0 or 1" in result.output
    assert "--skip-bad" in result.output


def test_not_sqlite_database_is_a_usage_error(tmp_path):
    fake = tmp_path / "x.db"
    fake.write_text("hello")
    result = runner.invoke(app, ["stats", "--db", str(fake)])
    assert result.exit_code == 2 and "is not an SQLite database" in result.output


def test_bad_format_and_label_map_options(tmp_path):
    result = runner.invoke(app, ["import", "x.csv", "--format", "xml", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "xml" in result.output
    result = runner.invoke(app, ["import", "x.csv", "--label-map", "yes=2", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "NAME=0|1" in result.output


def test_skip_bad_prints_the_report_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "mixed.csv"
    data.write_text("premise,hypothesis,label\nA,B,1\nC,D,x\n")
    result = runner.invoke(app, ["import", str(data), "--skip-bad", "--db", "x.db"])
    assert result.exit_code == 0
    assert "1 rows rejected" in result.output
    report = tmp_path / "mixed.csv.rejected.jsonl"
    assert report.exists() and str(report) in result.output.replace("\n", "")


def test_demo_no_tui_builds_the_database_once(tmp_path):
    db = tmp_path / "demo.db"
    for _ in range(2):  # a second run opens it as it is, never appends
        result = runner.invoke(app, ["demo", "--no-tui", "--db", str(db)])
        assert result.exit_code == 0, result.output
    stats = json.loads(runner.invoke(app, ["stats", "--json", "--db", str(db)]).output)
    assert stats["examples"] == 45 and stats["thoughts"] == 45


def test_demo_refuses_to_replace_a_real_database(tmp_path):
    data = tmp_path / "mine.csv"
    data.write_text("premise,hypothesis,label\nA,B,1\n")
    db = tmp_path / "real.db"
    runner.invoke(app, ["import", str(data), "--db", str(db)])
    result = runner.invoke(app, ["demo", "--no-tui", "--db", str(db)])
    assert result.exit_code == 1 and "refusing to use it" in result.output
    result = runner.invoke(app, ["demo", "--no-tui", "--fresh", "--db", str(db)])
    assert result.exit_code == 1 and "refusing to replace it" in result.output


def test_demo_refuses_to_replace_a_demo_database_another_process_has_open(tmp_path):
    db = tmp_path / "demo.db"
    assert runner.invoke(app, ["demo", "--no-tui", "--db", str(db)]).exit_code == 0
    # Another process holds the store open, as the review app of an earlier `nlistral demo` does.
    holder = subprocess.Popen([sys.executable, "-c", ("import sys; from db import open_db; d = open_db(sys.argv[1]); "
                               "d.execute('SELECT count(*) FROM examples').fetchone(); print('open', flush=True); "
                               "sys.stdin.read()"), str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        result = runner.invoke(app, ["demo", "--no-tui", "--fresh", "--db", str(db)])
        assert result.exit_code == 1 and "is open in another nlistral" in result.output
        assert (tmp_path / "demo.db-wal").exists()  # nothing was deleted under the other process
        shared = runner.invoke(app, ["demo", "--no-tui", "--db", str(db)])  # opening it as it is: fine
        assert shared.exit_code == 0 and "as it is" in shared.output
    finally:
        holder.communicate("", timeout=60)
    result = runner.invoke(app, ["demo", "--no-tui", "--fresh", "--db", str(db)])  # closed now: rebuilt
    assert result.exit_code == 0, result.output


def test_help_is_fast_and_imports_nothing_heavy():
    code = ("import sys, pipeline.cli, db, exports.formats; "
            "heavy = [m for m in ('textual', 'torch', 'transformers', 'trl', 'peft', 'mistralai', 'datasets') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_upgrading_an_existing_store_says_so_first(tmp_path):
    from db import open_db

    path = tmp_path / "old.db"
    db = open_db(path)  # then made to look like a store from before the last migration
    db.execute("INSERT INTO examples (dataset, split, source_id, premise, hypothesis, gold_label, content_hash) "
               "VALUES ('d', 's', '1', 'A heron stands.', 'A bird waits.', 1, 'h')")
    db.executescript("DROP TABLE search_fts; DROP TABLE search_terms; "
                     "DELETE FROM _sqlite_migrations WHERE name = 'm004_one_search_index';")
    db.conn.close()
    result = runner.invoke(app, ["stats", "--db", str(path)])
    assert result.exit_code == 0, result.output
    assert f"Upgrading {path} (1 example) to the current schema: m004_one_search_index." in " ".join(
        result.stderr.split())
    again = runner.invoke(app, ["stats", "--db", str(path)])
    assert "Upgrading" not in again.stderr
    fresh = runner.invoke(app, ["demo", "--no-tui", "--db", str(tmp_path / "new.db")])  # a new file: silently
    assert fresh.exit_code == 0 and "Upgrading" not in fresh.stderr


def test_ctrl_c_during_a_large_import_writes_nothing_and_says_so(tmp_path):
    import os
    import signal
    import time

    data = tmp_path / "big.csv"
    with data.open("w") as fh:  # large enough for the parser process, and to take a few seconds
        fh.write("premise,hypothesis,label\n")
        for i in range(400_000):
            fh.write(f"A person number {i} walks a dog along the river,Someone is outside {i},{i % 2}\n")
    db = tmp_path / "x.db"
    command = [sys.executable, "-c", "from pipeline.cli import main; main()", "import", str(data), "--db", str(db)]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 30
    while not db.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the whole process group
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Interrupted: nothing from" in out and "Traceback" not in out
    assert not db.exists()  # the import created the store, wrote nothing to it, and removed it
