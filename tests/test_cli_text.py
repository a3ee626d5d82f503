"""Model and dataset text reaches the terminal through the CLI only as text: escape sequences, BEL,
C1 controls and bidi overrides are shown as glyphs (as the review app shows them), never sent raw."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from db import open_db
from pipeline.demo import demo_files
from pipeline.importing import import_file

RETITLE = "\x1b]0;pwned\x07"  # sets the terminal's title; without its BEL it swallows what follows
CLEAR = "\x1b[2J"  # clears the screen
DATASET = f"rte{RETITLE}x"
MODEL = f"model{CLEAR}\x9b31m\u202eevil"  # C1 CSI (a one-byte escape for some terminals), a bidi override
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the colour codes Rich itself writes on a terminal


def _run(*args: str, cwd: Path, terminal: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    env.pop("NO_COLOR", None)
    if terminal:  # Rich writes colours as on a terminal: the output must still hold no other escape
        env["FORCE_COLOR"] = "1"
    else:
        env.pop("FORCE_COLOR", None)
    return subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def _assert_safe(out: str, terminal: bool) -> None:
    rest = SGR.sub("", out) if terminal else out
    assert "\x1b" not in rest and "\x07" not in rest and "\x9b" not in rest and "\u202e" not in rest, repr(out)


@pytest.fixture
def hostile_store(tmp_path: Path) -> Path:
    """A store whose dataset name and thought model name hold terminal escape sequences."""
    path = tmp_path / "hostile.db"
    db = open_db(path)
    files = demo_files()
    import_file(db, files["examples"], fmt="csv", dataset=DATASET, split="train")
    import_file(db, files["thoughts"], fmt="seed-thoughts", model=MODEL, dataset=DATASET, split="train")
    db.conn.close()
    return path


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
def test_stats_shows_escape_sequences_in_names_literally(hostile_store, tmp_path, terminal):
    result = _run("stats", "--db", str(hostile_store), cwd=tmp_path, terminal=terminal)
    assert result.returncode == 0, result.stderr
    _assert_safe(result.stdout, terminal)
    shown = SGR.sub("", result.stdout)
    assert "rte␛]0;pwned␇x" in shown  # shown, BEL included, as the app shows it
    assert "model␛[2J\\x9b31m<U+202E>evil" in shown


def test_stats_json_escapes_them_and_keeps_the_value(hostile_store, tmp_path):
    result = _run("stats", "--json", "--db", str(hostile_store), cwd=tmp_path, terminal=True)
    assert result.returncode == 0, result.stderr
    _assert_safe(result.stdout, terminal=True)
    payload = json.loads(SGR.sub("", result.stdout))
    assert payload["by_dataset"][0]["dataset"] == DATASET  # the same JSON value, written with \u escapes
    assert list(payload["thought_by_model"]) == [MODEL]


def test_fail_shows_hostile_text_literally(tmp_path):
    code = ("import sys; from pipeline.cli.common import fail; "
            f"fail('column {RETITLE}premise{CLEAR} is missing [bold]not markup[/bold]')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "FORCE_COLOR": "1", "COLUMNS": "250"})
    assert result.returncode == 1
    _assert_safe(result.stderr, terminal=True)
    said = SGR.sub("", result.stderr)
    assert "error: column ␛]0;pwned␇premise␛[2J is missing [bold]not markup[/bold]" in said


def test_an_import_error_naming_a_hostile_csv_header_is_safe(tmp_path):
    data = tmp_path / "pairs.csv"
    data.write_text(f"premise,hypo{RETITLE}thesis,label\nA,B,1\n")
    result = _run("import", str(data), "--db", str(tmp_path / "x.db"), cwd=tmp_path, terminal=True)
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr
    _assert_safe(result.stdout + result.stderr, terminal=True)


def test_every_print_path_of_the_console_is_safe():
    """Strings, Text, a table's title, header and cells, and JSON, as Rich renders each."""
    import io

    from rich.table import Table
    from rich.text import Text

    from pipeline.cli.common import SafeConsole

    evil = f"a{RETITLE}b{CLEAR}c\x9bd\u202ee"
    out = io.StringIO()
    console = SafeConsole(file=out, force_terminal=True, width=200)  # highlighting on: the strictest case
    console.print(evil, markup=False)
    console.print(Text(evil))
    table = Table(title=evil)
    table.add_column(evil)
    table.add_row(evil)
    table.add_row(Text(evil))
    console.print(table)
    console.print_json(json.dumps({"k": evil}, ensure_ascii=False))
    _assert_safe(out.getvalue(), terminal=True)
    assert SGR.sub("", out.getvalue()).count("a␛]0;pwned") == 6


def test_rich_own_control_codes_pass_untouched():
    """A progress bar's cursor moves and colours are Rich's, not text: the same bytes as a plain Console."""
    import io

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from pipeline.cli.common import SafeConsole

    def run(kind: type[Console]) -> str:
        out = io.StringIO()
        console = kind(file=out, force_terminal=True, width=80, highlight=False, soft_wrap=True)
        with Progress(TextColumn("importing x.csv"), BarColumn(), console=console, auto_refresh=False,
                      transient=True) as progress:
            task = progress.add_task("x", total=10)
            for done in range(3):
                progress.update(task, completed=done)
                progress.refresh()
                progress.console.print("a note above the bar", markup=False)
        return out.getvalue()

    plain = run(Console)
    assert "\x1b[2K" in plain  # the bar really moved the cursor
    assert run(SafeConsole) == plain
