"""`nlistral reflect --blind` (the rationalisation test) end to end: real SDK, real sockets, real SQLite, the fake
server; the prompt never holds gold; resume after kill -9; the outcome cells and their conditions; the review app."""
from __future__ import annotations

import json
import os
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from fake_mistral import TEST_KEY, FakeMistral, Record, toy_db, toy_pairs
from kill import generation_process, sigkill_when, stored_count
from typer.testing import CliRunner

from db import open_db, write_tx
from db.detail import load_details
from db.errors import UnknownExampleError
from db.examples import NewExample, example_row, insert_examples
from db.generations import add_generation, refresh_derived
from db.outcomes import AXIS_SQL, CELLS, cell_condition, outcomes, reflection_value
from db.reviews import record
from db.runs import list_runs
from db.staging import stage_rows
from pipeline.cli import app
from pipeline.generate import stage_options
from pipeline.generate.tasks import build_task
from pipeline.parsing import parse_reflection
from pipeline.prompts import BLIND_REFLECTION, PROMPTS, REFLECTION, label_name
from pipeline.settings import Settings

runner = CliRunner()
REFLECTION_MODEL = Settings().models.reflection
MARK = "BLINDMARK"  # in every scripted blind answer, to find blind text where it must never be


def _cli(*args: str) -> dict:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{"):])


def _user(r: Record) -> str:
    return next(content for role, content in r.messages if role == "user")


def _premise(r: Record) -> str:
    return re.search(r"^Premise: (.*)$", _user(r), re.MULTILINE).group(1)  # type: ignore[union-attr]


def _blind_answer(label: int, text: str = "Step 1 holds; Step 2 does not follow.") -> str:
    return json.dumps({"error_analysis": f"{MARK} {text}", "predicted_label": label,
                       "improved_thought_process": f"{MARK} Step 1: ... Step 2: ... Step 3: so the label is {label}."})


def _wrong_thoughts(db_path: Path) -> list[dict]:
    db = open_db(db_path)
    try:
        return list(db.query("SELECT e.id, e.premise, e.hypothesis, e.gold_label, e.thought_id, e.thought_label, "
                             "g.thought_process FROM examples e JOIN generations g ON g.id = e.thought_id "
                             "WHERE e.thought_label != e.gold_label ORDER BY e.id"))
    finally:
        db.conn.close()


# ---------------------------------------------------------------------------------------------
# The prompt


def test_the_blind_prompt_holds_no_gold_and_calls_the_thought_an_earlier_attempt():
    assert PROMPTS["blind_reflection"] is BLIND_REFLECTION and BLIND_REFLECTION.version.startswith("blind_reflection-")
    text = (BLIND_REFLECTION.system + BLIND_REFLECTION.user).lower()
    assert "may or may not be right" in text and "earlier attempt" in text
    for leak in ("gold", "annotator", "wrong", "flawed", "incorrect", "mistake", "correct label", "{gold"):
        assert leak not in text, leak
    # The same parser reads both answers (same fields).
    for field in ("error_analysis", "improved_thought_process", "predicted_label"):
        assert field in BLIND_REFLECTION.system and field in REFLECTION.system
    parsed = parse_reflection(_blind_answer(1), gold=0)
    assert parsed.status == "ok" and parsed.label == 1 and parsed.error_analysis and parsed.thought


@pytest.mark.usefixtures("api_env")
def test_a_blind_task_is_the_same_whatever_the_gold_label():
    """Gold only selects the examples: flipping it changes nothing in the request."""
    opts = stage_options("blind_reflection", Settings(), need_endpoint=False)
    assert opts.model == REFLECTION_MODEL and opts.prompt is BLIND_REFLECTION
    row = {"id": 3, "premise": "A man sleeps.", "hypothesis": "A man is awake.", "gold_label": 0, "parent_id": 9,
           "thought": "Step 1: ... so entailment.", "label": 1, "attempts": 0}
    a, b = build_task(opts, row), build_task(opts, {**row, "gold_label": 1})
    assert a.messages == b.messages and a.dedupe_key == b.dedupe_key
    assert "it answered 1 (entailment)" in a.messages[1]["content"]
    shown = build_task(stage_options("reflection", Settings(), need_endpoint=False), row)
    assert "Annotators' label: 0 (no entailment)" in shown.messages[1]["content"]
    assert shown.dedupe_key != a.dedupe_key


# ---------------------------------------------------------------------------------------------
# End to end with the CLI


@pytest.mark.usefixtures("api_env")
def test_reflect_blind_end_to_end(fake: FakeMistral, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = toy_db(tmp_path / "b.db", toy_pairs(24))
    db_arg = ("--db", str(path))
    fake.config.thought_error_rate = 0.5
    Path(os.environ["NLISTRAL_CONFIG"]).write_text(f'[api]\nserver_url = "{fake.url}"\nrps = 500.0\n')
    _cli("generate", *db_arg, "--json")
    wrong = _wrong_thoughts(path)
    assert len(wrong) >= 6, "the toy data should give several wrong thoughts"
    # wrong[0]: the reflection shown gold misses it and so does the blind one (gold doubted); wrong[1], wrong[2]:
    # only the one shown gold reaches gold (rationalised); wrong[3]: the blind answer does not parse (changes
    # nothing); the rest: both reach gold (robust).
    fake.script_replies({("reflection", wrong[0]["premise"]): json.dumps({
        "error_analysis": "The thought holds.", "improved_thought_process": "Step 1: it holds.",
        "predicted_label": 1 - wrong[0]["gold_label"]})})
    assert _cli("reflect", *db_arg, "--json")["status"] == "completed"
    db = open_db(path)
    reflection_ids = dict(db.execute("SELECT id, reflection_id FROM examples").fetchall())
    db.conn.close()
    scripted = {("blind_reflection", w["premise"]): _blind_answer(w["gold_label"]) for w in wrong[4:]}
    scripted.update({("blind_reflection", w["premise"]): _blind_answer(1 - w["gold_label"]) for w in wrong[:3]})
    scripted[("blind_reflection", wrong[3]["premise"])] = f"{MARK} I would rather not say."
    fake.script_replies(scripted)

    # --dry-run sends nothing, needs no key, and plans one request per wrong thought with the reflection model.
    monkeypatch.delenv("MISTRAL_API_KEY")
    sent_before = len(fake.snapshot())
    plan = _cli("reflect", "--blind", "--dry-run", "--json", *db_arg)
    assert plan["requests"] == len(wrong) and plan["model"] == REFLECTION_MODEL
    assert plan["prompt_version"] == BLIND_REFLECTION.version and plan["cost_usd_estimate"] > 0
    human = runner.invoke(app, ["reflect", "--blind", "--dry-run", *db_arg])
    assert f"Dry run: {len(wrong)} requests" in human.output and "Nothing was sent" in " ".join(human.output.split())
    assert len(fake.snapshot()) == sent_before
    monkeypatch.setenv("MISTRAL_API_KEY", TEST_KEY)

    done = _cli("reflect", "--blind", "--json", *db_arg)
    assert done["status"] == "completed" and done["run"]["stored"] == len(wrong)
    assert done["parse_failed"] == 1 and done["run"]["parse"]["failed"] == 1
    assert done["blind_outcomes"] == {"robust": len(wrong) - 4, "rationalised": 2, "doubts_gold": 1}
    sent_before = len(fake.snapshot())
    again = runner.invoke(app, ["reflect", "--blind", *db_arg])  # everything stored: nothing is sent again
    assert "Blind reflect run" in again.output and "rationalised" in again.output
    assert len(fake.snapshot()) == sent_before

    cells = _cli("triage", "--json", *db_arg)["cells"]
    assert cells["reflection_rationalises"] == 2 and cells["reflections_doubt_gold"] == 1
    assert cells["fixed_by_reflection"] == len(wrong) - 3  # robust ones, and the one whose blind did not parse
    assert cells["reflection_not_gold"] == 1 and cells["needs_reflection"] == 0
    assert sum(cells[c] for c in ("fixed_by_reflection", "reflection_not_gold", "reflection_unparsed",
                                  "needs_reflection", "reflection_rationalises")) == len(wrong)

    # Each blind answer was asked once, of the current thought, and the run is a reflect run marked blind.
    db = open_db(path)
    blinds = list(db.query("SELECT * FROM generations WHERE kind = 'blind_reflection' ORDER BY example_id"))
    assert [b["example_id"] for b in blinds] == [w["id"] for w in wrong]
    assert [b["parent_id"] for b in blinds] == [w["thought_id"] for w in wrong]
    assert {b["model"] for b in blinds} == {REFLECTION_MODEL}
    assert {b["prompt_version"] for b in blinds} == {BLIND_REFLECTION.version}
    reflects = [r for r in list_runs(db) if r.kind == "reflect"]
    assert sorted(r.config["blind"] for r in reflects) == [False, True, True]
    assert {r.config["stage"] for r in reflects if r.config["blind"]} == {"blind_reflection"}
    # A blind reflection never becomes the example's reflection, even after a full re-derivation.
    assert dict(db.execute("SELECT id, reflection_id FROM examples").fetchall()) == reflection_ids
    refresh_derived(db)
    assert dict(db.execute("SELECT id, reflection_id FROM examples").fetchall()) == reflection_ids
    with pytest.raises(UnknownExampleError, match="not a reflection"):
        record(db, "choose_reflection", [wrong[1]["id"]], reviewer="ann", payload={"generation_id": blinds[1]["id"]})
    db.conn.close()

    # The blind prompt the server received holds no gold; the reflection prompt of the same example does.
    records = [r for r in fake.snapshot() if r.status == 200]
    blind_sent = {_premise(r): r for r in records if r.kind == "blind_reflection"}
    shown_sent = {_premise(r): r for r in records if r.kind == "reflection"}
    assert set(blind_sent) == set(shown_sent) == {w["premise"] for w in wrong}
    opts = stage_options("blind_reflection", Settings(), need_endpoint=False)
    for w in wrong:
        gold, blind, shown = w["gold_label"], blind_sent[w["premise"]], shown_sent[w["premise"]]
        assert f"Annotators' label: {gold} ({label_name(gold)})" in _user(shown)
        body = "\n".join(content for _, content in blind.messages)
        assert "Annotators" not in body and "gold" not in body.lower()
        row = {"id": w["id"], "premise": w["premise"], "hypothesis": w["hypothesis"], "gold_label": None,
               "parent_id": w["thought_id"], "thought": w["thought_process"], "label": w["thought_label"],
               "attempts": 0}
        expected = build_task(opts, row).messages  # built without any gold label
        assert [list(m) for m in blind.messages] == [[m["role"], m["content"]] for m in expected]

    # Blind text is never exported.
    out = tmp_path / "reflected.jsonl"
    result = runner.invoke(app, ["export", "sft", "--ablation", "reflected", "--out", str(out), *db_arg])
    assert result.exit_code == 0, result.output
    exported = out.read_text()
    assert exported.count("\n") >= len(wrong) and MARK not in exported


@pytest.mark.usefixtures("api_env")
def test_blind_alone_leaves_the_example_without_a_reflection(fake: FakeMistral, tmp_path: Path):
    path = toy_db(tmp_path / "alone.db", toy_pairs(10))
    fake.config.thought_error_rate = 0.5
    settings_args = ("--server-url", fake.url, "--rps", "500", "--db", str(path), "--json")
    _cli("generate", *settings_args)
    wrong = _wrong_thoughts(path)
    assert _cli("reflect", "--blind", *settings_args)["run"]["stored"] == len(wrong) > 0
    db = open_db(path)
    assert db.execute("SELECT count(*) FROM examples WHERE reflection_id IS NOT NULL").fetchone()[0] == 0
    assert outcomes(db).cells["needs_reflection"] == len(wrong)
    db.conn.close()


# ---------------------------------------------------------------------------------------------
# Resume after kill -9

KILL_N, CONCURRENCY = 60, 6


@pytest.mark.slow
def test_sigkill_mid_blind_run_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MISTRAL_API_KEY", TEST_KEY)
    monkeypatch.setenv("NLISTRAL_CONFIG", str(tmp_path / "none.toml"))
    path = toy_db(tmp_path / "kill.db", toy_pairs(KILL_N))
    with FakeMistral(api_key=TEST_KEY, thought_error_rate=1.0) as fake:
        _cli("generate", "--db", str(path), "--server-url", fake.url, "--rps", "500", "--json")
        wrong = {w["premise"]: w for w in _wrong_thoughts(path)}
        assert len(wrong) >= 30
        fake.reset()
        fake.config.latency_s = 0.2
        first = generation_process("reflect", path, fake.url, TEST_KEY, tmp_path, CONCURRENCY, "--blind")
        sigkill_when(first, lambda: stored_count(path, "blind_reflection") >= 10, "the first run stored fewer than 10 answers")
        phase1 = fake.snapshot()
        conn = sqlite3.connect(path)
        stored = {p for (p,) in conn.execute("SELECT e.premise FROM generations g JOIN examples e ON e.id = "
                                             "g.example_id WHERE g.kind = 'blind_reflection'")}
        conn.close()
        assert 10 <= len(stored) < len(wrong)

        second = generation_process("reflect", path, fake.url, TEST_KEY, tmp_path, CONCURRENCY, "--blind")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 0, err.decode()
        phase2 = fake.snapshot()[len(phase1):]

    conn = sqlite3.connect(path)
    per_example = Counter(r[0] for r in conn.execute(
        "SELECT example_id FROM generations WHERE kind = 'blind_reflection'"))
    wanted = {w["id"] for w in wrong.values()}
    assert set(per_example) == wanted and set(per_example.values()) == {1}
    statuses = sorted(s for (s,) in conn.execute(
        "SELECT status FROM runs WHERE kind = 'reflect' AND json_extract(config, '$.blind')"))
    assert conn.execute("SELECT count(*) FROM examples WHERE reflection_id IS NOT NULL").fetchone()[0] == 0
    conn.close()
    assert statuses == ["completed", "interrupted"]
    assert all(r.kind == "blind_reflection" for r in phase1 + phase2)
    assert not [r for r in phase2 if _premise(r) in stored]  # nothing stored was asked again
    answered_twice = {k for k, n in Counter(r.key for r in phase1 + phase2 if r.status == 200).items() if n > 1}
    assert len(answered_twice) <= CONCURRENCY  # only answers in flight at the kill


# ---------------------------------------------------------------------------------------------
# Outcome cells and their conditions

# source id: (gold, thought, reflection, blinds of the current thought oldest first, prediction); "x": failed to
# parse, "-": none. Each comment is the reflection value.
STORE = {
    1: (1, 0, 1, (1,), "-"),  # robust
    2: (1, 0, 1, (0,), 0),  # rationalised (prediction wrong: adapter still wrong after reflection)
    3: (0, 1, 1, (1,), 1),  # doubts_gold (both models disagree with gold)
    4: (0, 1, 0, ("x",), "-"),  # gold: an unparsed blind changes nothing
    5: (0, 1, 0, (0, 1), "-"),  # rationalised: the latest blind counts
    6: (1, 0, 0, (0, 1), 1),  # not_gold: the latest blind reaches gold
    7: (1, 0, "-", (0,), "-"),  # none: a blind alone is no reflection (needs_reflection)
    8: (1, 0, "x", (0,), "-"),  # unparsed
    9: (None, 0, 1, (0,), "-"),  # no_gold
    10: (1, 1, "-", (), 1),  # thought right
    11: (1, 0, 1, (), "x"),  # gold
}
OLD_THOUGHT_BLIND = 1  # example 1 also has a blind reflection of an older thought that disagrees: ignored
REFLECTION_VALUES = {1: "robust", 2: "rationalised", 3: "doubts_gold", 4: "gold", 5: "rationalised", 6: "not_gold",
                     7: "none", 8: "unparsed", 9: "no_gold", 10: "none", 11: "gold"}


def _answer(label: object) -> dict[str, object]:
    return {"predicted_label": None, "parse_status": "failed"} if label == "x" else {
        "predicted_label": label, "parse_status": "ok"}


@pytest.fixture
def store(db):
    """The examples of STORE, with an older thought (and its blind reflection) under example 1."""
    with write_tx(db):
        insert_examples(db, [stage_rows([example_row(NewExample(i, "a", "train", str(i), f"premise {i}",
                                                                 f"hypothesis {i}", gold))
                                         for i, (gold, *_) in STORE.items()])])
    ids = {int(s): i for s, i in db.execute("SELECT source_id, id FROM examples")}
    old = add_generation(db, example_id=ids[1], kind="thought", model="m", backend="t", dedupe_key="old",
                         thought_process="old", **_answer(1))
    add_generation(db, example_id=ids[1], kind="blind_reflection", parent_id=old.id, model="r", backend="t",
                   dedupe_key="old-blind", thought_process="old blind", **_answer(0))
    for i, (_, thought, reflection, blinds, prediction) in STORE.items():
        t = add_generation(db, example_id=ids[i], kind="thought", model="m", backend="t", dedupe_key=f"t{i}",
                           thought_process=f"thought {i}", **_answer(thought))
        if reflection != "-":
            add_generation(db, example_id=ids[i], kind="reflection", parent_id=t.id, model="r", backend="t",
                           dedupe_key=f"r{i}", thought_process=f"reflection {i}", **_answer(reflection))
        for k, blind in enumerate(blinds):
            add_generation(db, example_id=ids[i], kind="blind_reflection", parent_id=t.id, model="r", backend="t",
                           dedupe_key=f"b{i}-{k}", thought_process=f"blind {i}", error_analysis="check",
                           **_answer(blind))
        if prediction != "-":
            add_generation(db, example_id=ids[i], kind="prediction", model="a", backend="local",
                           dedupe_key=f"p{i}", **_answer(prediction))
    return db, ids


def test_the_reflection_axis_with_blind_reflections(store):
    db, ids = store
    got = {i: db.execute(f"SELECT {AXIS_SQL['reflection']} FROM examples e WHERE e.id = ?", [ids[i]]).fetchone()[0]
           for i in STORE}
    assert got == REFLECTION_VALUES
    assert db.execute("SELECT count(*) FROM examples e WHERE e.reflection_id IN (SELECT id FROM generations "
                      "WHERE kind = 'blind_reflection')").fetchone()[0] == 0
    cells = outcomes(db).cells
    assert (cells["reflection_rationalises"], cells["reflections_doubt_gold"]) == (2, 1)  # 2, 5; 3
    assert cells["fixed_by_reflection"] == 3 and cells["reflection_not_gold"] == 2  # 1, 4, 11; 3, 6
    assert cells["adapter_still_wrong_after_reflection"] == 1 and cells["needs_reflection"] == 1


def test_cell_condition_selects_what_outcomes_counts(store):
    db, _ = store
    counts = outcomes(db).cells
    axes = ", ".join(f"{sql} AS {axis}" for axis, sql in AXIS_SQL.items())
    per_example = {r[0]: r[1:] for r in db.execute(f"SELECT e.id, {axes} FROM examples e")}
    assert sum(g.count for g in outcomes(db).grid) == len(per_example)
    for name, cell in CELLS.items():
        selected = {r[0] for r in db.execute(f"SELECT e.id FROM examples e WHERE {cell_condition(name)}")}
        assert selected == {i for i, values in per_example.items() if cell.holds(*values)}, name
        assert len(selected) == counts[name], name
    assert any(counts[name] for name in ("reflection_rationalises", "fixed_by_reflection", "reflection_not_gold"))
    with pytest.raises(KeyError, match="unknown outcome cell"):
        cell_condition("no_such_cell")


def test_the_detail_read_model_has_the_blind_reflection_of_the_current_thought(store):
    db, ids = store
    details = load_details(db, list(ids.values()))
    one, two, five, seven = (details[ids[i]] for i in (1, 2, 5, 7))
    assert one.blind is not None and one.blind.thought_process == "blind 1"  # not the older thought's
    assert one.reflection_outcome == "robust" and two.reflection_outcome == "rationalised"
    assert five.blind.predicted_label == 1 and five.reflection_outcome == "rationalised"  # the latest one
    assert seven.reflection is None and seven.blind is not None and seven.reflection_outcome is None
    assert details[ids[4]].reflection_outcome is None  # an unparsed blind says nothing
    assert all(details[ids[i]].reflection_outcome in (None, REFLECTION_VALUES[i]) for i in STORE)
    assert reflection_value(1, 1, None) == "gold" and reflection_value(1, 0, 1) == "not_gold"


# ---------------------------------------------------------------------------------------------
# The review app


@pytest.fixture
def blind_demo(demo_db_path: Path) -> tuple[Path, int]:
    """The demo store with a blind reflection (markup-like text in it) beside the first reflection."""
    db = open_db(demo_db_path)
    row = db.execute("SELECT id, thought_id, gold_label FROM examples WHERE reflection_id IS NOT NULL "
                     "ORDER BY id LIMIT 1").fetchone()
    add_generation(db, example_id=row[0], kind="blind_reflection", parent_id=row[1], model="mistral-small-latest",
                   backend="test", dedupe_key="blind-demo", parse_status="ok", predicted_label=1 - row[2],
                   error_analysis="[bold]Step 2[/bold] holds.", thought_process="Step 1: [red]own[/red] reasoning.")
    db.conn.close()
    return demo_db_path, row[0]


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [(200, 50), (80, 24)])
async def test_the_detail_pane_shows_both_reflections(blind_demo, size):
    from nlistral_tui.pilot import running, screen_text, settle
    from nlistral_tui.widgets.text_pager import TextPager

    path, example_id = blind_demo
    async with running(path, size) as (app, pilot):
        await pilot.press("2")  # disagreements: the first one has the blind reflection
        await settle(app, pilot)
        screen = app.screen
        assert screen.current is not None and screen.current.id == example_id
        pager = screen.query_one("#detail-left" if size == (80, 24) else "#detail-right", TextPager)
        shown = pager.content.plain
        lines = shown.splitlines()
        if size == (200, 50):  # the blind reflection is the right half of the lines with the rule between
            shown = "\n".join(line.split(" │ ", 1)[1] for line in lines if " │ " in line)
        words = " ".join(shown.split())
        assert "REFLECTION (shown gold)" in pager.content.plain and "BLIND REFLECTION (not shown gold)" in words
        assert "[bold]Step 2[/bold] holds." in words and "[red]own[/red]" in words  # model text, never markup
        assert "differs from the reflection shown gold" in words and "rationalised" in words
        shown_at = next(n for n, line in enumerate(lines) if "REFLECTION (shown gold)" in line)
        blind_at = next(n for n, line in enumerate(lines) if "BLIND REFLECTION" in line)
        if size == (200, 50):
            assert shown_at == blind_at  # side by side
        else:
            assert blind_at > shown_at + 3  # one below the other
            assert max(len(line) for line in screen_text(app).splitlines()) <= 80
