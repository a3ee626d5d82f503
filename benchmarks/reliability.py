"""Reliability (a script, not a test): decisions lost, stores destroyed, invented labels, with real processes.

Attacks the code as a user's machine would, and the code before issue 12 (commit fe8eec7, checked out
with `git worktree add`) the same way in the same run, as the baseline:

1. app: the review app (`nlistral tui`) on a real pseudo-terminal (tests/app_process.py); 10
   decisions, then (a) the keys and `q` in one burst, (b) `q`, (c) kill -9 or (d) a closed terminal
   while another process holds the store's write lock. The store is then opened (which applies the
   journals) and the decisions counted: lost, stored twice, integrity_check.
2. outputs: `export --out/--hf` and `import --skip-bad --report` aimed at the store, its -wal / -shm
   and the command's own input, an existing CSV, an earlier export; `demo` run twice around review
   decisions. Stores destroyed, inputs destroyed, decisions lost (the store's rows, not its bytes).
3. parser: tests/test_parsing_fuzz.py's generator with another seed, every parser entry point;
   exceptions and invented labels; and the issue's named cases.
4. hostile: hostile files through `nlistral import`: tracebacks, raw escape bytes on the terminal,
   stores a failing import created, invented gold labels stored.
5. locks: `import`, `export` and `generate` (fake Mistral server) while another process holds the
   write lock for 20 s (the busy timeout is 15 s): crashes and the wait.

Prints a markdown summary; --json writes every measurement.

Usage: python benchmarks/reliability.py [--trials 10] [--quick] [--json OUT] [--no-baseline]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
BASE_COMMIT = "fe8eec7"
TEN = b"ararararar"
KEY = "sk-reliability-3f7a1c"
CLI = "from pipeline.cli import main; main()"
ESC_TITLE = "\x1b]0;pwned\x07"

# Run in a subprocess with the code version on PYTHONPATH (both versions have these functions).
BUILD_DEMO = "import sys; from pathlib import Path; from pipeline.demo import build_demo; build_demo(Path(sys.argv[1]))"
DECIDE = ("import sys; from db import open_db; from db.reviews import record; db = open_db(sys.argv[1]); "
          "ids = [r[0] for r in db.execute('SELECT id FROM examples ORDER BY id LIMIT ?', [int(sys.argv[2])])]; "
          "[record(db, ('accept', 'reject')[n % 2], [i], reviewer='reliability') for n, i in enumerate(ids)]; "
          "db.conn.close()")


@dataclass(frozen=True)
class Code:
    """One version of the code: this tree ("new") or the worktree at the baseline commit ("old")."""

    name: str
    root: Path

    @property
    def has_journal(self) -> bool:
        """Whether this version journals review steps beside the store."""
        return (self.root / "db" / "journal.py").exists()

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a child running this version (no API key, no user config, no NLISTRAL_DB)."""
        env = {k: v for k, v in os.environ.items() if k not in ("MISTRAL_API_KEY", "NLISTRAL_DB")}
        env.update(PYTHONPATH=str(self.root), NLISTRAL_REVIEWER="reliability", **extra)
        return env

    def run(self, args: list[str], cwd: Path, timeout: float = 300, **env: str) -> Ran:
        """`python -c ... ARGS` of this version, cwd a scratch folder; stdout and stderr as bytes."""
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, *args], cwd=cwd, env=self.env(**env), capture_output=True,
                                  timeout=timeout, check=False)
            return Ran(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        except subprocess.TimeoutExpired as e:
            return Ran(None, e.stdout or b"", e.stderr or b"", time.monotonic() - started)

    def cli(self, args: list[str], cwd: Path, timeout: float = 300, **env: str) -> Ran:
        """The real CLI of this version."""
        return self.run(["-c", CLI, *args], cwd, timeout, **env)

    def py(self, snippet: str, *args: str, cwd: Path) -> Ran:
        """A snippet against this version's API; raises if it fails (set-up, not a measurement)."""
        ran = self.run(["-c", snippet, *args], cwd)
        if ran.rc != 0:
            raise RuntimeError(f"{self.name}: {snippet[:60]!r} failed: {ran.err[-800:]}")
        return ran


@dataclass(frozen=True)
class Ran:
    """A finished (or timed-out: rc None) child process."""

    rc: int | None
    out: bytes
    errb: bytes
    seconds: float

    @property
    def err(self) -> str:
        """stderr as text."""
        return self.errb.decode(errors="replace")

    @property
    def traceback(self) -> bool:
        """Whether a Python traceback reached the terminal."""
        return b"Traceback" in self.out or b"Traceback" in self.errb

    @property
    def raw_escape(self) -> bool:
        """Whether an ESC or BEL byte reached stdout or stderr (the terminal would act on it)."""
        return any(c in self.out or c in self.errb for c in (b"\x1b", b"\x07"))

    def said(self) -> str:
        """The last non-empty line of output, escaped, for a table."""
        lines = [line for line in (self.out + b"\n" + self.errb).decode(errors="replace").splitlines() if line.strip()]
        return ascii(lines[-1][:110])[1:-1] if lines else ""


# ---------------------------------------------------------------------------------------------
# Stores


def store_state(path: Path) -> dict[str, Any]:
    """What the store holds, read without creating anything: a fingerprint of every table's sorted rows (not
    the file's bytes, which a checkpoint changes), integrity_check, its decisions and examples; readable False
    if it is no longer an SQLite store."""
    if not path.is_file():
        return {"readable": False, "error": "not a file" if path.exists() else "missing"}
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
        try:
            digest = hashlib.sha256()
            tables = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
            for table, sql in tables:  # a virtual table's rows are its shadow tables' (FTS5 cannot be scanned)
                if not (sql or "").upper().startswith("CREATE VIRTUAL"):
                    rows = sorted(repr(r) for r in conn.execute(f'SELECT * FROM "{table}"'))
                    digest.update(f"{table}\n{sql}\n".encode() + "\n".join(rows).encode("utf-8", "surrogatepass"))
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
            decisions = [r[0] for r in conn.execute(
                "SELECT id FROM review_events WHERE action IN ('accept', 'reject') ORDER BY id")]
            examples = conn.execute("SELECT count(*) FROM examples").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as e:
        return {"readable": False, "error": str(e)}
    return {"readable": True, "fingerprint": digest.hexdigest(), "integrity": integrity, "decisions": decisions,
            "examples": examples}


def settle(path: Path) -> None:
    """Open and close the store once, so its WAL is checkpointed into the file and a copy is whole."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def copy_store(src: Path, dst: Path) -> Path:
    """A copy of a settled store (the main file only)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dst}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(src, dst)
    return dst


def sha256(path: Path) -> str | None:
    """A file's sha256, or None if it is not a readable file."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def build_demo(code: Code, where: Path) -> Path:
    """The demo store of this version, built once by its own build_demo, settled for copying."""
    path = where / f"demo-{code.name}.db"
    code.py(BUILD_DEMO, str(path), cwd=where)
    settle(path)
    return path


# ---------------------------------------------------------------------------------------------
# 1. The review app's decisions (real processes on a pseudo-terminal)


APP_SCENARIOS = ("burst then q", "lock held, q", "lock held, kill -9", "lock held, terminal closed")


def _journaled(store: Path) -> int:
    """Decisions in the store's journals (new code only)."""
    from db.journal import journal_folder, read_steps

    return sum(step.op == "record" for path in journal_folder(store).glob("*.jsonl")
               for step in read_steps(path.read_bytes()))


def _stored_decisions(code: Code, store: Path) -> tuple[list[tuple[int, str]], bool, str]:
    """(decisions, replay idempotent, integrity): opened as the next start would (new code: open_db applies
    the journals that ended sessions left; old code has none), then opened again to see nothing doubles."""
    def read() -> list[tuple[int, str]]:
        if code.has_journal:
            from db import open_db

            db = open_db(store)
            try:
                return [tuple(r) for r in db.execute("SELECT example_id, action FROM review_events "
                                                     "WHERE action IN ('accept', 'reject') ORDER BY id").fetchall()]
            finally:
                db.conn.close()
        conn = sqlite3.connect(store)
        try:
            return conn.execute("SELECT example_id, action FROM review_events WHERE action IN ('accept', 'reject') "
                                "ORDER BY id").fetchall()
        finally:
            conn.close()

    first = read()
    again = read()
    conn = sqlite3.connect(store)
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    return first, again == first, integrity


def app_trial(code: Code, demo: Path, scenario: str, work: Path, hang_cap: float) -> dict[str, Any]:
    """One trial: the app of this version on a copy of the demo store, 10 decisions, then the scenario."""
    import app_process
    from app_process import AppProcess, LockHolder

    store = copy_store(demo, work / "app.db")
    shutil.rmtree(work / "app.db.decisions", ignore_errors=True)
    app_process.ROOT = code.root  # AppProcess runs `python -c ...` there: that tree's pipeline is imported
    app = AppProcess(store, reviewer="reliability")
    holder = None
    result: dict[str, Any] = {"code": code.name, "scenario": scenario, "made": 10}
    try:
        app.wait_for_text(b"PREMISE", 60)
        if scenario == "burst then q":
            app.keys(TEN + b"q")
            started = time.monotonic()
        else:
            holder = LockHolder(store)  # a large import, say: one long transaction
            app.keys(TEN)
            waited = time.monotonic()
            if code.has_journal:  # act the moment all ten are shown as made (journaled)
                while _journaled(store) < 10 and time.monotonic() - waited < 30:
                    time.sleep(0.02)
                result["journaled"] = _journaled(store)
            else:  # no journal to watch: give the app 3 s
                time.sleep(3)
            started = time.monotonic()
            if scenario == "lock held, q":
                app.keys(b"q")
            elif scenario == "lock held, kill -9":
                app.kill()
            else:
                app.hang_up()
        try:
            result["exit"] = app.wait(hang_cap)
            result["hung"] = False
        except subprocess.TimeoutExpired:
            result["exit"], result["hung"] = None, True
        result["end_s"] = round(time.monotonic() - started, 3)
    except AssertionError as e:  # the app never showed an example
        result["error"] = str(e)[:300]
    finally:
        app.close()  # kill -9 if still running (a hang past the cap)
        if holder is not None:
            holder.release()
    decided, idempotent, integrity = _stored_decisions(code, store)
    result.update(stored=len(decided), lost=10 - len({i for i, _ in decided}),
                  twice=len(decided) - len(set(decided)), replay_idempotent=idempotent, integrity=integrity,
                  actions_ok=[a for _, a in decided] == ["accept", "reject"] * 5)
    if code.has_journal:
        from db.journal import journal_folder

        result["journal_left"] = journal_folder(store).exists()
    return result


def part_app(codes: list[Code], demos: dict[str, Path], trials: int, work: Path, hang_cap: float,
             log: Any) -> list[dict[str, Any]]:
    """Every scenario, `trials` times, on each code version (the versions alternate within a trial round)."""
    rows = []
    for scenario in APP_SCENARIOS:
        for n in range(trials):
            for code in codes:
                row = app_trial(code, demos[code.name], scenario, work, hang_cap)
                row["trial"] = n
                rows.append(row)
                log(f"app {code.name} {scenario} #{n}: stored {row['stored']}/10, exit {row.get('exit')}, "
                    f"{row.get('end_s')} s{', HUNG' if row.get('hung') else ''}{', ERROR' if 'error' in row else ''}")
    return rows


# ---------------------------------------------------------------------------------------------
# 2. Output paths that could destroy a store or an input


def _write_csv(path: Path, rows: list[tuple[Any, ...]], header: tuple[str, ...] = ("premise", "hypothesis", "label")
               ) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _prepare_outputs(code: Code, demo: Path, where: Path) -> Path:
    """A folder with a store holding data and 6 review decisions, the CSV it imported, and a bad CSV."""
    from fake_mistral import toy_pairs

    where.mkdir(parents=True)
    store = copy_store(demo, where / "store.db")
    _write_csv(where / "pairs.csv", toy_pairs(8))
    _write_csv(where / "bad.csv", [("A good row one.", "Row one.", 1), ("A bad row.", "Bad.", "maybe"),
                                   ("A good row two.", "Row two.", 0), ("Another bad row.", "Bad.", "yes!")])
    ran = code.cli(["import", "pairs.csv", "--db", str(store)], where)
    assert ran.rc == 0, ran.err
    code.py(DECIDE, str(store), "6", cwd=where)
    settle(store)
    return where


OUTPUT_ATTACKS: list[tuple[str, list[str]]] = [
    ("export --out STORE", ["export", "sft", "--db", "{S}", "--out", "{S}"]),
    ("export --out STORE-wal", ["export", "sft", "--db", "{S}", "--out", "{S}-wal"]),
    ("export --out STORE-shm", ["export", "sft", "--db", "{S}", "--out", "{S}-shm"]),
    ("export --hf STORE", ["export", "sft", "--db", "{S}", "--hf", "{S}"]),
    ("export --out an existing CSV (the imported input)", ["export", "sft", "--db", "{S}", "--out", "pairs.csv"]),
    ("export --out an earlier export", ["export", "sft", "--db", "{S}", "--out", "earlier.jsonl"]),
    ("import --skip-bad --report STORE", ["import", "bad.csv", "--db", "{S}", "--skip-bad", "--report", "{S}"]),
    ("import --skip-bad --report STORE-wal", ["import", "bad.csv", "--db", "{S}", "--skip-bad", "--report", "{S}-wal"]),
    ("import --skip-bad --report bad.csv (its input)",
     ["import", "bad.csv", "--db", "{S}", "--skip-bad", "--report", "bad.csv"]),
]


def output_attack(code: Code, prepared: Path, name: str, args: list[str], work: Path) -> dict[str, Any]:
    """One attack on a fresh copy of the prepared folder: the store's rows and the inputs' bytes before/after."""
    where = work / "attack"
    shutil.rmtree(where, ignore_errors=True)
    shutil.copytree(prepared, where)
    store = where / "store.db"
    if name.endswith("an earlier export"):
        first = code.cli(["export", "sft", "--db", str(store), "--out", "earlier.jsonl"], where)
        assert first.rc == 0, first.err
        settle(store)
    inputs = {p.name: sha256(p) for p in sorted(where.iterdir()) if p.is_file() and not p.name.startswith("store.db")}
    before = store_state(store)
    ran = code.cli([a.replace("{S}", str(store)) for a in args], where)
    after = store_state(store)
    changed = [n for n, digest in inputs.items() if sha256(where / n) != digest]
    return {"code": code.name, "attack": name, "exit": ran.rc, "traceback": ran.traceback, "said": ran.said(),
            **_store_damage(before, after), "inputs_destroyed": len(changed), "inputs_changed": changed}


def _store_damage(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Store destroyed (no longer a readable, intact store, or examples gone), content unchanged, decisions lost."""
    destroyed = (not after["readable"] or after["integrity"] != "ok" or after["examples"] < before["examples"])
    lost = len(set(before["decisions"]) - set(after.get("decisions") or []))
    return {"store_destroyed": int(destroyed), "store_unchanged": after.get("fingerprint") == before["fingerprint"],
            "decisions_before": len(before["decisions"]), "decisions_lost": lost,
            "store_after": "ok" if after["readable"] else after["error"]}


def demo_twice(code: Code, work: Path) -> dict[str, Any]:
    """`demo --db D` built, 6 review decisions, `demo --db D` again: the decisions must survive."""
    where = work / "demo-twice"
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir()
    store = where / "demo.db"
    first = code.cli(["demo", "--db", str(store), "--no-tui"], where)
    assert first.rc == 0, first.err
    code.py(DECIDE, str(store), "6", cwd=where)
    settle(store)
    before = store_state(store)
    ran = code.cli(["demo", "--db", str(store), "--no-tui"], where)
    after = store_state(store)
    return {"code": code.name, "attack": "demo twice, decisions between", "exit": ran.rc,
            "traceback": ran.traceback, "said": ran.said(), **_store_damage(before, after), "inputs_destroyed": 0,
            "inputs_changed": []}


def part_outputs(codes: list[Code], demos: dict[str, Path], work: Path, log: Any) -> list[dict[str, Any]]:
    """Every output attack on each version."""
    rows = []
    for code in codes:
        prepared = _prepare_outputs(code, demos[code.name], work / f"prepared-{code.name}")
        for name, args in OUTPUT_ATTACKS:
            rows.append(output_attack(code, prepared, name, args, work))
            log(f"outputs {code.name} {name}: exit {rows[-1]['exit']}, destroyed {rows[-1]['store_destroyed']}, "
                f"inputs {rows[-1]['inputs_destroyed']}, lost {rows[-1]['decisions_lost']}")
        rows.append(demo_twice(code, work))
        log(f"outputs {code.name} demo twice: lost {rows[-1]['decisions_lost']}")
    return rows


# ---------------------------------------------------------------------------------------------
# 3. Invented labels: the parser fuzzed (run in a child with the version's pipeline first on sys.path)


def named_cases() -> list[tuple[str, str, bool]]:
    """(name, reply, whether a label may be returned) for the issue's cases."""
    json_label = '{{"thought_process": "Step 1: a man sleeps, so he rests.", "predicted_label": {}}}'
    return [
        ("retracted: 'I first wrote predicted_label: 0, but on reflection ...: 1'",
         "I first wrote predicted_label: 0, but on reflection the predicted_label: 1", False),
        ("quoted gold: 'The gold label: 1 / My view differs.'", "The gold label: 1\nMy view differs.", False),
        ("undecided: 'Some would say label = 1, others label = 0'",
         "Some would say label = 1, others label = 0; I cannot decide.", False),
        ("prose: 'There is no mislabel: no, ...'", "There is no mislabel: no, the premise says so.", False),
        ("quoted: 'The original label: true, but the opposite holds.'",
         "The original label: true, but the opposite holds.", False),
        ("JSON label 0.99999999999999999", json_label.format("0.99999999999999999"), False),
        ("JSON label 1e-400", json_label.format("1e-400"), False),
        ("JSON label: a 5,000-digit integer", json_label.format("1" * 5000), False),
        ("a 5,000-digit integer elsewhere in a valid reply",
         '{"thought_process": "Step 1: a man sleeps, so he rests.", "tokens": ' + "9" * 5000
         + ', "predicted_label": 1}', True),
    ]


def fuzz_worker(n: int, seed: int) -> dict[str, Any]:
    """In the child: fuzz every entry point of whichever pipeline.parsing comes first on sys.path."""
    from test_parsing_fuzz import PARSERS, check, expected, generate, holds_a_label

    import pipeline.parsing

    cases = list(generate(n, seed))
    per: dict[str, Counter[str]] = {name: Counter() for name in PARSERS}
    seconds = dict.fromkeys(PARSERS, 0.0)
    examples: dict[str, list[str]] = {}
    for mutation, shape, (reply, allowed) in cases:
        for name, parse in PARSERS.items():
            c = per[name]
            t0 = time.perf_counter()
            try:
                parsed = parse(reply)
            except Exception as e:
                seconds[name] += time.perf_counter() - t0
                c["exceptions"] += 1
                examples.setdefault(f"exception {type(e).__name__}", [name, mutation, reply[:160]])
                continue
            seconds[name] += time.perf_counter() - t0
            label = parsed.label
            c["labels"] += label is not None
            if label is not None and label not in allowed:  # a label the reply does not state as its answer
                c["invented"] += 1
                examples.setdefault(f"invented {mutation}", [name, mutation, reply[:160]])
            if label is not None and not holds_a_label(reply):
                c["no_label_field"] += 1
            try:
                check(name, parsed, reply, allowed if mutation != "none" else expected(name, shape, allowed))
            except AssertionError:
                c["check_failures"] += 1
    named = []
    for case, reply, may_label in named_cases():
        outcome = {}
        for name, parse in PARSERS.items():
            try:
                parsed = parse(reply)
                outcome[name] = parsed.label if name != "judge" else ("score" if parsed.score is not None else None)
            except Exception as e:
                outcome[name] = f"exception {type(e).__name__}"
        named.append({"case": case, "may_label": may_label, "outcome": outcome})
    return {"parser": str(Path(pipeline.parsing.__file__)), "replies": len(cases), "entry_points": list(PARSERS),
            "mutations": dict(Counter(m for m, _, _ in cases)),
            "per_entry_point": {k: dict(v) for k, v in per.items()}, "seconds": seconds, "examples": examples,
            "named": named}


def part_parser(codes: list[Code], n: int, seed: int, log: Any) -> list[dict[str, Any]]:
    """The fuzz in a child per version (PYTHONPATH: that tree first, then tests/ for the generator)."""
    rows = []
    for code in codes:
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--fuzz-worker", str(n), str(seed)],
                              cwd=code.root, env={**code.env(), "PYTHONPATH": f"{code.root}{os.pathsep}{TESTS}"},
                              capture_output=True, text=True, timeout=3600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"fuzz worker ({code.name}) failed: {done.stderr[-2000:]}")
        row = {"code": code.name, "wall_s": round(time.monotonic() - started, 1), **json.loads(done.stdout)}
        rows.append(row)
        totals = Counter()
        for c in row["per_entry_point"].values():
            totals.update(c)
        log(f"parser {code.name}: {row['replies']} replies x {len(row['entry_points'])}: {dict(totals)} "
            f"in {row['wall_s']} s")
    return rows


# ---------------------------------------------------------------------------------------------
# 4. Hostile input files through `nlistral import`


@dataclass(frozen=True)
class Hostile:
    """A file to import: its name, bytes (None: missing), extra options, premise markers of rows whose label is
    not exactly 0/1 as written (a gold label stored for them is invented), and whether a correct importer takes it."""

    case: str
    name: str
    data: bytes | None
    options: tuple[str, ...] = ()
    bad_label_rows: tuple[str, ...] = ()
    valid: bool = False


def _jsonl(*records: str) -> bytes:
    return ("\n".join(records) + "\n").encode()


def _csv_bytes(header: str, *rows: str) -> bytes:
    return ("\n".join((header, *rows)) + "\n").encode()


def hostile_files(seed: int) -> list[Hostile]:
    """The hostile files (deterministic for a seed)."""
    ok = '{"premise": "hostile ok row", "hypothesis": "A row.", "label": 1}'
    return [
        Hostile("ESC ]0;...BEL in a CSV header", "esc_header.csv",
                _csv_bytes(f"premise,hypothesis,{ESC_TITLE}label", "hostile esc header row,A row.,1")),
        Hostile("ESC ]0;...BEL in a dataset name (import, then stats)", "esc_dataset.csv",
                _csv_bytes("premise,hypothesis,label", "hostile esc dataset row,A row.,1"),
                options=("--dataset", f"{ESC_TITLE}rte"), valid=True),
        Hostile("lone surrogate in JSON Lines", "surrogate.jsonl",
                _jsonl('{"premise": "hostile surrogate \\ud800", "hypothesis": "A row.", "label": 1}', ok)),
        Hostile("5,000-digit label (JSON Lines)", "huge_label.jsonl",
                _jsonl('{"premise": "hostile huge label", "hypothesis": "A row.", "label": ' + "1" * 5000 + "}", ok),
                bad_label_rows=("hostile huge label",)),
        Hostile("label 0.99999999999999999 (JSON Lines)", "rounding.jsonl",
                _jsonl('{"premise": "hostile rounding", "hypothesis": "A row.", "label": 0.99999999999999999}', ok),
                bad_label_rows=("hostile rounding",)),
        Hostile("label 1e-400 (JSON Lines)", "tiny.jsonl",
                _jsonl('{"premise": "hostile tiny", "hypothesis": "A row.", "label": 1e-400}', ok),
                bad_label_rows=("hostile tiny",)),
        Hostile("label 0.99999999999999999 (CSV)", "rounding.csv",
                _csv_bytes("premise,hypothesis,label", "hostile csv rounding,A row.,0.99999999999999999",
                           "hostile csv ok,A row.,0"), bad_label_rows=("hostile csv rounding",)),
        Hostile("duplicate header (label twice: 1 and 0)", "dup_header.csv",
                _csv_bytes("premise,hypothesis,label,label", "hostile duplicate header,A row.,1,0"),
                bad_label_rows=("hostile duplicate header",)),
        Hostile("300,000-character field (CSV)", "long_field.csv",
                _csv_bytes("premise,hypothesis,label", "hostile long field " + "x" * 300_000 + ",A row.,1"),
                valid=True),
        Hostile("first JSON record over 64 KiB", "long_first.jsonl",
                _jsonl('{"premise": "hostile long first ' + "y" * 70_000 + '", "hypothesis": "A row.", "label": 0}',
                       ok), valid=True),
        Hostile("binary garbage (.csv)", "garbage.csv", random.Random(seed).randbytes(8192)),
        Hostile("NUL bytes in a CSV field", "nul.csv",
                _csv_bytes("premise,hypothesis,label", "hostile nul \x00 row,A row.,1")),
        Hostile("empty file (.csv)", "empty.csv", b""),
        Hostile("UTF-16 CSV", "utf16.csv", "premise,hypothesis,label\nhostile utf16 row,A row.,1\n".encode("utf-16")),
        Hostile("missing file", "missing.csv", None),
    ]


def hostile_import(code: Code, item: Hostile, work: Path) -> dict[str, Any]:
    """Import one hostile file into a store that does not exist yet."""
    where = work / "hostile"
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir()
    if item.data is not None:
        (where / item.name).write_bytes(item.data)
    store = where / "h.db"
    ran = code.cli(["import", item.name, "--db", str(store), *item.options], where)
    runs = [ran]
    if item.options and ran.rc == 0:  # the dataset name reaches the terminal again through stats
        runs.append(code.cli(["stats", "--db", str(store)], where))
    created = any(Path(f"{store}{s}").exists() for s in ("", "-wal", "-shm"))
    invented, rows = 0, 0
    if store.is_file():
        conn = sqlite3.connect(store)
        try:
            rows = conn.execute("SELECT count(*) FROM examples").fetchone()[0]
            for marker in item.bad_label_rows:
                invented += conn.execute("SELECT count(*) FROM examples WHERE instr(premise, ?) AND gold_label "
                                         "IS NOT NULL", [marker]).fetchone()[0]
        except sqlite3.Error:
            pass
        finally:
            conn.close()
    return {"code": code.name, "case": item.case, "exit": ran.rc, "traceback": any(r.traceback for r in runs),
            "raw_escape": any(r.raw_escape for r in runs), "store_created_by_failure": ran.rc != 0 and created,
            "invented_labels": invented, "rows_stored": rows, "valid": item.valid,
            "valid_refused": item.valid and ran.rc != 0, "said": ran.said()}


def part_hostile(codes: list[Code], seed: int, work: Path, log: Any) -> list[dict[str, Any]]:
    """Every hostile file on each version."""
    rows = []
    for item in hostile_files(seed):
        for code in codes:
            rows.append(hostile_import(code, item, work))
            r = rows[-1]
            log(f"hostile {code.name} {item.case}: exit {r['exit']}, traceback {r['traceback']}, "
                f"escape {r['raw_escape']}, invented {r['invented_labels']}")
    return rows


# ---------------------------------------------------------------------------------------------
# 5. Write paths of the CLI while another process holds the lock


def _lock_case(code: Code, name: str, store: Path, args: list[str], where: Path, hold_s: float,
               count: str) -> dict[str, Any]:
    """Run args while a LockHolder holds the store's write lock for hold_s seconds."""
    from app_process import LockHolder

    settle(store)
    holder = LockHolder(store)
    timer = threading.Timer(hold_s, holder.release)
    timer.start()
    try:
        ran = code.cli(args, where, timeout=hold_s + 120, MISTRAL_API_KEY=KEY,
                       NLISTRAL_CONFIG=str(where / "no-config.toml"))
    finally:
        timer.join()
        holder.release()
    conn = sqlite3.connect(store)
    done = conn.execute(count).fetchone()[0]
    conn.close()
    text = (ran.out + ran.errb).decode(errors="replace").lower()
    return {"code": code.name, "command": name, "exit": ran.rc, "traceback": ran.traceback,
            "crashed": ran.rc != 0 or ran.traceback, "seconds": round(ran.seconds, 1), "lock_held_s": hold_s,
            "said_waiting": "waiting" in text, "done_after": done, "said": ran.said()}


def part_locks(codes: list[Code], demos: dict[str, Path], hold_s: float, work: Path, log: Any
               ) -> list[dict[str, Any]]:
    """import, export and generate against a held lock, on each version."""
    from fake_mistral import FakeMistral, toy_pairs

    rows = []
    with FakeMistral(api_key=KEY, retry_after="0", latency_s=0.005) as fake:
        for code in codes:
            where = work / f"locks-{code.name}"
            shutil.rmtree(where, ignore_errors=True)
            where.mkdir()
            pairs = toy_pairs(12)
            _write_csv(where / "small.csv", pairs[:6])
            _write_csv(where / "more.csv", pairs[6:])
            demo = copy_store(demos[code.name], where / "demo.db")
            small = where / "small.db"
            assert code.cli(["import", "small.csv", "--db", str(small)], where).rc == 0
            rows.append(_lock_case(code, "import (6 rows)", demo, ["import", "more.csv", "--db", str(demo)], where,
                                   hold_s, "SELECT count(*) FROM examples WHERE dataset = 'more'"))
            rows.append(_lock_case(code, "export sft --out", demo,
                                   ["export", "sft", "--db", str(demo), "--out", "sft.jsonl"], where, hold_s,
                                   "SELECT count(*) FROM exports"))
            rows.append(_lock_case(code, "generate (fake server, 6 requests)", small,
                                   ["generate", "--db", str(small), "--server-url", fake.url, "--rps", "50"], where,
                                   hold_s, "SELECT count(*) FROM generations WHERE kind = 'thought'"))
            for r in rows[-3:]:
                log(f"locks {code.name} {r['command']}: exit {r['exit']}, traceback {r['traceback']}, "
                    f"{r['seconds']} s, done {r['done_after']}")
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def _yn(flag: Any) -> str:
    return "yes" if flag else "no"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def report(res: dict[str, Any]) -> str:
    """The markdown summary."""
    out = io.StringIO()
    w = out.write
    m = res["machine"]
    w(f"# Reliability run\n\ncommand: `{res['command']}`  \nmachine: {m['cpu']}, {m['cores']} cores, "
      f"Python {m['python']}, {m['platform']}  \nload average before {m['load_before']}, after {m['load_after']}  \n"
      f"started {res['started_utc']}, took {res['wall_s']:.0f} s  \ncode: new = {res['head']} (working tree), "
      f"old = {res['base_commit']} (worktree {res['base_tree']})\n\n")
    h = res["headline"]
    w("## Headline\n\n| | new code | old code |\n|---|---|---|\n")
    for key, label in (("decisions_made", "review decisions made (app trials)"),
                       ("decisions_lost", "review decisions lost (app trials)"),
                       ("attacks", "output-path attacks run"),
                       ("stores_destroyed", "stores destroyed (output attacks)"),
                       ("inputs_destroyed", "input / existing files destroyed"),
                       ("attack_decisions_lost", "decisions lost (output attacks)"),
                       ("parser_calls", "parser calls (fuzz + named cases)"),
                       ("parser_exceptions", "parser exceptions"),
                       ("parser_invented", "invented labels (parser calls)"),
                       ("hostile_files", "hostile files imported"),
                       ("import_invented", "invented gold labels stored (import)"),
                       ("stores_created_by_failure", "stores left by a failing import"),
                       ("valid_refused", "valid hostile files refused"),
                       ("tracebacks", "tracebacks (import, outputs, locks)"),
                       ("raw_escapes", "raw ESC/BEL on the terminal"),
                       ("lock_crashes", "CLI crashes under a held lock")):
        w(f"| {label} | {h['new'].get(key, '-')} | {h['old'].get(key, '-') if 'old' in h else '-'} |\n")

    if res.get("app"):
        w("\n## 1. Review app: 10 decisions, then the end (real process on a pty, real lock holder)\n\n"
          "| scenario | code | trials | decisions made | stored | lost | stored twice | integrity ok | "
          "ended within the cap | time to end (median / max) |\n|---|---|---|---|---|---|---|---|---|---|\n")
        for scenario in APP_SCENARIOS:
            for code in res["codes"]:
                rs = [r for r in res["app"] if r["scenario"] == scenario and r["code"] == code]
                if not rs:
                    continue
                ends = [r["end_s"] for r in rs if r.get("end_s") is not None and not r.get("hung")]
                hung = sum(bool(r.get("hung")) for r in rs)
                timing = (f"{statistics.median(ends):.2f} / {max(ends):.2f} s" if ends else "-")
                if hung:
                    timing += f"; {hung} hung past {res['args']['hang_cap']:.0f} s, killed"
                w(f"| {scenario} | {code} | {len(rs)} | {10 * len(rs)} | {sum(r['stored'] for r in rs)} | "
                  f"{sum(r['lost'] for r in rs)} | {sum(r['twice'] for r in rs)} | "
                  f"{sum(r['integrity'] == 'ok' for r in rs)}/{len(rs)} | "
                  f"{len(rs) - hung - sum('error' in r for r in rs)}/{len(rs)} | {timing} |\n")
        w("\nTime to end: from the `q`, kill or hang-up to the process's end (burst: from the keys, `q` included). "
          "New code: `q`, kill or hang-up the moment all ten decisions are journaled (shown as made); old code "
          "(no journal to watch): 3 s after the keys. Lost: decisions not in the store once it is opened again "
          "(new code: opening applies the journals). Ended within the cap: the process was gone within "
          f"{res['args']['hang_cap']:.0f} s (a kill -9 always is).\n")

    if res.get("outputs"):
        w("\n## 2. Output paths aimed at the store or an input (store with data and 6 decisions)\n\n"
          "| attack | code | exit | traceback | store destroyed | store rows unchanged | inputs destroyed | "
          "decisions lost | what it said (last line) |\n|---|---|---|---|---|---|---|---|---|\n")
        for r in res["outputs"]:
            w(f"| {r['attack']} | {r['code']} | {r['exit']} | {_yn(r['traceback'])} | {r['store_destroyed']} | "
              f"{_yn(r['store_unchanged'])} | {r['inputs_destroyed']} | {r['decisions_lost']}/{r['decisions_before']}"
              f" | {_cell(r['said'])} |\n")

    if res.get("parser"):
        w("\n## 3. Parser fuzz (tests/test_parsing_fuzz.py's generator, seed "
          f"{res['args']['seed']})\n\n| code | replies x entry points | exceptions | invented labels | "
          "label with no label field | `check` failures (any property) | labels returned | parse time |\n"
          "|---|---|---|---|---|---|---|---|\n")
        for r in res["parser"]:
            t = Counter()
            for c in r["per_entry_point"].values():
                t.update(c)
            w(f"| {r['code']} | {r['replies']:,} x {len(r['entry_points'])} | {t['exceptions']} | {t['invented']} | "
              f"{t['no_label_field']} | {t['check_failures']} | {t['labels']:,} | "
              f"{sum(r['seconds'].values()):.1f} s |\n")
        w("\nInvented: a label the generator did not allow for that reply (prose, retracted, conflicting, quoted, "
          "rounding or out-of-range labels allow none; a mutated valid reply allows its own label or none); "
          "counted per call (reply x entry point). Label with no label field: the test's independent oracle "
          "finds no label field and the reply is not a bare label. `check` failures: calls that fail any property "
          "tests/test_parsing_fuzz.py's `check` asserts (invented labels included; also a status that disagrees "
          "with the label, or a valid reply read as failed).\n\n"
          "Named cases (per entry point: the label returned, `-` none, `E` an exception; judge: `s` a score):\n\n")
        names = res["parser"][0]["entry_points"]
        w("| case | code | " + " | ".join(names) + " | labels where none may be |\n|---|---|"
          + "---|" * (len(names) + 1) + "\n")
        for i, case in enumerate(res["parser"][0]["named"]):
            for r in res["parser"]:
                o = r["named"][i]["outcome"]
                cells = ["E" if isinstance(v, str) and v.startswith("exception") else "s" if v == "score"
                         else "-" if v is None else str(v) for v in (o[n] for n in names)]
                bad = 0 if case["may_label"] else sum(isinstance(o[n], int) for n in names)
                w(f"| {_cell(case['case'])} | {r['code']} | " + " | ".join(cells) + f" | {bad} |\n")

    if res.get("hostile"):
        w("\n## 4. Hostile files through `nlistral import` (into a store that does not exist yet)\n\n"
          "| file | code | exit | traceback | raw ESC/BEL on the terminal | store created by the failure | "
          "invented labels stored | rows stored | what it said (last line) |\n|---|---|---|---|---|---|---|---|---|\n")
        for r in res["hostile"]:
            valid = " (valid: must import)" if r["valid"] else ""
            w(f"| {r['case']}{valid} | {r['code']} | {r['exit']} | {_yn(r['traceback'])} | {_yn(r['raw_escape'])} | "
              f"{_yn(r['store_created_by_failure'])} | {r['invented_labels']} | {r['rows_stored']} | "
              f"{_cell(r['said'])} |\n")

    if res.get("locks"):
        w(f"\n## 5. CLI write paths while another process holds the write lock for {res['args']['lock_seconds']:.0f} s"
          " (busy timeout 15 s)\n\n| command | code | exit | traceback | said it waits | seconds | done after "
          "| what it said (last line) |\n|---|---|---|---|---|---|---|---|\n")
        for r in res["locks"]:
            w(f"| {r['command']} | {r['code']} | {r['exit']} | {_yn(r['traceback'])} | {_yn(r['said_waiting'])} | "
              f"{r['seconds']} | {r['done_after']} | {_cell(r['said'])} |\n")
        w("\nDone after: import = rows of the imported file in the store; export = exports recorded; generate = "
          "thoughts stored.\n")
    return out.getvalue()


def headline(res: dict[str, Any], code: str) -> dict[str, Any]:
    """The totals of one version."""
    app = [r for r in res.get("app", []) if r["code"] == code]
    outs = [r for r in res.get("outputs", []) if r["code"] == code]
    hostile = [r for r in res.get("hostile", []) if r["code"] == code]
    locks = [r for r in res.get("locks", []) if r["code"] == code]
    h: dict[str, Any] = {"decisions_made": 10 * len(app), "decisions_lost": sum(r["lost"] for r in app),
                         "attacks": len(outs), "stores_destroyed": sum(r["store_destroyed"] for r in outs),
                         "inputs_destroyed": sum(r["inputs_destroyed"] for r in outs),
                         "attack_decisions_lost": sum(r["decisions_lost"] for r in outs),
                         "hostile_files": len(hostile),
                         "import_invented": sum(r["invented_labels"] for r in hostile),
                         "stores_created_by_failure": sum(bool(r["store_created_by_failure"]) for r in hostile),
                         "valid_refused": sum(bool(r["valid_refused"]) for r in hostile),
                         "tracebacks": sum(bool(r["traceback"]) for r in hostile + outs + locks),
                         "raw_escapes": sum(bool(r["raw_escape"]) for r in hostile),
                         "lock_crashes": sum(bool(r["crashed"]) for r in locks)}
    for r in res.get("parser", []):
        if r["code"] == code:
            t = Counter()
            for c in r["per_entry_point"].values():
                t.update(c)
            named = r["named"]
            h["parser_calls"] = f"{r['replies'] * len(r['entry_points']) + len(named) * len(r['entry_points']):,}"
            named_exc = sum(isinstance(v, str) and v.startswith("exception") for c in named
                            for v in c["outcome"].values())
            named_inv = sum(isinstance(v, int) for c in named if not c["may_label"] for v in c["outcome"].values())
            h["parser_exceptions"] = t["exceptions"] + named_exc
            h["parser_invented"] = t["invented"] + named_inv
    return h


# ---------------------------------------------------------------------------------------------


def _base_tree(path: Path, commit: str) -> bool:
    """Make sure the baseline worktree exists; True if this run added it (and so removes it)."""
    if (path / "pipeline" / "cli.py").exists():
        return False
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit], check=True,
                   capture_output=True)
    return True


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "load_before": _load()}


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> None:
    """Parse, run the parts asked for, print the summary."""
    if len(sys.argv) == 4 and sys.argv[1] == "--fuzz-worker":  # the child of part 3
        print(json.dumps(fuzz_worker(int(sys.argv[2]), int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--trials", type=int, default=None, help="trials per app scenario (default 10; --quick 2)")
    parser.add_argument("--fuzz", type=int, default=None, help="fuzz replies (default 50,000; --quick 5,000)")
    parser.add_argument("--quick", action="store_true",
                        help="2 trials, 5,000 fuzz replies (about 6 minutes, mostly the old code's hangs and locks)")
    parser.add_argument("--seed", type=int, default=20261122, help="fuzz and garbage seed (the test uses 1212)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write every measurement here")
    parser.add_argument("--parts", default="app,outputs,parser,hostile,locks",
                        help="comma-separated parts to run [default: all]")
    parser.add_argument("--no-baseline", action="store_true", help="attack only this tree, not the old code")
    parser.add_argument("--base-tree", type=Path, default=Path("/tmp/rel-base"),
                        help="where the baseline worktree is (added, and removed at the end, if absent)")
    parser.add_argument("--base-commit", default=BASE_COMMIT, help="the baseline commit [default: %(default)s]")
    parser.add_argument("--hang-cap", type=float, default=60.0,
                        help="seconds an app may take to end before it is killed and counted as hung")
    parser.add_argument("--lock-seconds", type=float, default=20.0, help="how long the lock holder holds (part 5)")
    parser.add_argument("--report-from", type=Path, default=None, metavar="JSON",
                        help="measure nothing: print the summary of an earlier run's --json file")
    args = parser.parse_args()
    if args.report_from:
        res = json.loads(args.report_from.read_text())
        res["headline"] = {code: headline(res, code) for code in res["codes"]}
        print(report(res))
        return
    trials = args.trials if args.trials is not None else (2 if args.quick else 10)
    fuzz_n = args.fuzz if args.fuzz is not None else (5000 if args.quick else 50_000)
    parts = set(args.parts.split(","))
    # A closed terminal must reach the app as SIGHUP, as it does in a real terminal; started under nohup, this
    # process would pass SIGHUP on to the app as ignored, and the app would outlive its terminal.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    sys.path[:0] = [str(ROOT), str(TESTS)]
    os.environ["NLISTRAL_CONFIG"] = "/nonexistent/nlistral-reliability.toml"
    os.environ.pop("NLISTRAL_DB", None)

    started = time.monotonic()
    res: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/reliability.py", *sys.argv[1:]]),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": _machine(),
        "head": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                               text=True, check=False).stdout.strip(),
        "base_commit": args.base_commit, "base_tree": str(args.base_tree),
        "args": {"trials": trials, "fuzz": fuzz_n, "seed": args.seed, "hang_cap": args.hang_cap,
                 "lock_seconds": args.lock_seconds, "parts": sorted(parts)},
    }
    codes = [Code("new", ROOT)]
    added = False
    if not args.no_baseline:
        added = _base_tree(args.base_tree, args.base_commit)
        codes.append(Code("old", args.base_tree))
    res["codes"] = [c.name for c in codes]

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {line}", file=sys.stderr, flush=True)

    try:
        with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
            work = Path(tmp)
            demos = {c.name: build_demo(c, work) for c in codes}
            if "app" in parts:
                res["app"] = part_app(codes, demos, trials, work, args.hang_cap, log)
            if "outputs" in parts:
                res["outputs"] = part_outputs(codes, demos, work, log)
            if "parser" in parts:
                res["parser"] = part_parser(codes, fuzz_n, args.seed, log)
            if "hostile" in parts:
                res["hostile"] = part_hostile(codes, args.seed, work, log)
            if "locks" in parts:
                res["locks"] = part_locks(codes, demos, args.lock_seconds, work, log)
    finally:
        if added:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(args.base_tree)],
                           capture_output=True, check=False)
    res["machine"]["load_after"] = _load()
    res["wall_s"] = time.monotonic() - started
    res["headline"] = {c.name: headline(res, c.name) for c in codes}
    text = report(res)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
