"""Which store a command uses (--db before or after the command, NLISTRAL_DB), that read-only commands
never create one, and clear messages for a store that cannot be written."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.demo import build_demo

runner = CliRunner()


def _examples(result) -> int:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["examples"]


def test_db_before_the_command_is_honoured_and_the_one_after_wins(tmp_path, monkeypatch):
    demo = build_demo(tmp_path / "demo.db")
    other = tmp_path / "other.db"
    monkeypatch.chdir(tmp_path)  # ./nlistral.db would be the default: it must never appear
    monkeypatch.setenv("NLISTRAL_DB", str(tmp_path / "from-env.db"))
    assert _examples(runner.invoke(app, ["--db", str(demo), "stats", "--json"])) == 45  # before wins over env
    listed = runner.invoke(app, ["--db", str(demo), "exports", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    both = runner.invoke(app, ["--db", str(other), "stats", "--json", "--db", str(demo)])
    assert _examples(both) == 45
    assert f"note: using --db {demo} (given after the command); --db {other} before the command is ignored." \
        in " ".join(both.stderr.split())
    same = runner.invoke(app, ["--db", str(demo), "stats", "--json", "--db", str(demo)])
    assert _examples(same) == 45 and "note:" not in same.stderr
    monkeypatch.setenv("NLISTRAL_DB", str(demo))
    assert _examples(runner.invoke(app, ["stats", "--json"])) == 45  # env when no --db is given
    assert {p.name for p in tmp_path.iterdir()} <= {"demo.db", "demo.db-wal", "demo.db-shm"}


def test_db_before_demo_and_export_subcommands(tmp_path):
    demo = tmp_path / "mine-demo.db"
    built = runner.invoke(app, ["--db", str(demo), "demo", "--no-tui"])
    assert built.exit_code == 0 and f"at {demo}" in built.output and demo.exists()
    plan = runner.invoke(app, ["--db", str(demo), "export", "sft", "--dry-run", "--json"])
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)["considered"] == 45


READ_ONLY_COMMANDS = [
    ["stats"], ["stats", "--json"], ["tui"], [], ["exports"], ["export", "sft", "--dry-run"],
    ["export", "sft", "--out", "OUT/x.jsonl"], ["export", "dpo", "--out", "OUT/x.jsonl"],
    ["evaluate", "--base", "some-model"], ["compare", "1", "2"], ["generate", "--dry-run"],
]


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=lambda c: " ".join(c) or "(bare nlistral)")
@pytest.mark.parametrize("where", ["after", "before"])
def test_read_only_commands_never_create_a_store(tmp_path, monkeypatch, command, where):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "sub" / "store.db"
    command = [part.replace("OUT", str(tmp_path)) for part in command]
    args = ["--db", str(missing), *command] if where == "before" or not command else [*command, "--db", str(missing)]
    if command in ([], ["tui"]):  # in a process of its own: code that opened the app anyway would hang here
        try:
            done = subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", *args],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("the review app started on a missing store")
        result = SimpleNamespace(exit_code=done.returncode, stderr=done.stderr, output=done.stdout + done.stderr)
    else:
        result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.split())
    assert f"no database at {missing}" in said and f"nlistral import FILE --db {missing}" in said, said
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # no store, -wal, -shm, nor even its folder


def test_a_read_only_command_in_a_real_process_creates_nothing(tmp_path):
    missing = tmp_path / "store.db"
    done = subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", "--db", str(missing),
                           "stats"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and f"no database at {missing}" in " ".join(done.stderr.split())
    assert list(tmp_path.iterdir()) == []


# --- read-only stores ------------------------------------------------------------------------------

def _unprivileged(tmp_path: Path) -> list[str]:
    """A command prefix under which file modes are enforced: nothing for a normal user; for root, drop
    the capabilities that let it write any file (setpriv), or skip when that is not possible."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, where chmod does not stop writes, and setpriv is not installed to drop "
                    "the capabilities that let root write anyway")
    caps = "-dac_override,-dac_read_search,-fowner"
    prefix = ["setpriv", "--bounding-set", caps, "--inh-caps", caps, "--"]
    probe = tmp_path / "probe"
    probe.write_text("")
    probe.chmod(0o444)
    tried = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe)!r}, 'w')"], capture_output=True)
    probe.unlink()
    if tried.returncode == 0:
        pytest.skip("running as root and setpriv could not drop the capabilities that let root write a 444 file")
    return prefix


def _nlistral(prefix: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-c", "from pipeline.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def locked_down(tmp_path):
    """A demo store in its own folder, closed (no -wal / -shm); modes restored afterwards for cleanup."""
    folder = tmp_path / "store"
    folder.mkdir()
    store = build_demo(folder / "demo.db")
    assert sorted(p.name for p in folder.iterdir()) == ["demo.db"]
    yield store
    os.chmod(folder, 0o755)
    os.chmod(store, 0o644)


def test_a_store_file_without_write_permission(locked_down, tmp_path):
    prefix = _unprivileged(tmp_path)
    store = locked_down
    os.chmod(store, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # 444
    data = tmp_path / "pairs.csv"
    data.write_text("premise,hypothesis,label\nA man sleeps.,Someone rests.,1\n")
    read = _nlistral(prefix, "stats", "--json", "--db", str(store), cwd=tmp_path)
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["examples"] == 45  # reading works as it is
    for args in (["import", str(data)], ["export", "sft", "--out", str(tmp_path / "x.jsonl")], ["tui"],
                 ["evaluate", "--base", "some-model"], ["train", "--config", "smoke", "--set", "data=x.jsonl"]):
        result = _nlistral(prefix, *args, "--db", str(store), cwd=tmp_path)
        said = " ".join(result.stderr.split())
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and "OperationalError" not in result.stderr
        # A reader leaves -wal and -shm behind with the store's own mode: they need the same fix.
        assert f"{store} is read-only for you, and this command writes to the store. Not writable: demo.db; " \
               f"demo.db-wal; demo.db-shm. Make them writable (chmod u+w {store} {store}-wal {store}-shm)" in said
        assert "`nlistral stats`" in said
    assert not (tmp_path / "x.jsonl").exists()


def test_a_store_whose_folder_is_not_writable(locked_down, tmp_path):
    prefix = _unprivileged(tmp_path)
    store = locked_down
    os.chmod(store.parent, 0o555)  # SQLite cannot create demo.db-wal / demo.db-shm there
    data = tmp_path / "pairs.csv"
    data.write_text("premise,hypothesis,label\nA,B,1\n")
    read = _nlistral(prefix, "stats", "--db", str(store), cwd=tmp_path)
    said = " ".join(read.stderr.split())
    assert read.returncode == 2 and "Traceback" not in read.stderr
    assert f"SQLite must create demo.db-wal and demo.db-shm beside a WAL database even to read it, and the " \
           f"folder {store.parent} is not writable for you" in said, said
    assert f"chmod u+w {store.parent}" in said
    write = _nlistral(prefix, "import", str(data), "--db", str(store), cwd=tmp_path)
    said = " ".join(write.stderr.split())
    assert write.returncode == 2 and "Traceback" not in write.stderr
    assert f"Not writable: the folder {store.parent}, where SQLite creates demo.db-wal and demo.db-shm. Make it " \
           f"writable (chmod u+w {store.parent})" in said, said
    assert sorted(p.name for p in store.parent.iterdir()) == ["demo.db"]
