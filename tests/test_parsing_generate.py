"""Parse outcomes end to end: poison replies from the fake server through generate, the store and the export.

A reply holding a 5,000-digit integer is stored as a failed parse (generate does not crash), and for
every reply the store's parse status agrees with what the export later does: a stored answer is
"failed" exactly when the export leaves it out as `parse_failed` (issue 12 items 9 and 10).
"""
from __future__ import annotations

import json
from pathlib import Path

from fake_mistral import FakeMistral, client_settings, toy_db, toy_pairs

from db import open_db
from db.runs import get_run
from exports import SftOptions, plan
from pipeline.generate import run_stage, stage_options

HUGE = "9" * 5000
STEPS = "Step 1: the premise is about a park. Step 2: the hypothesis adds nothing new."


def _thought(label: object) -> str:
    return '{"thought_process": "' + STEPS + '", "predicted_label": ' + str(label) + "}"


# (reply, stored status, stored label) for stage-1 thoughts: one example each, in this order.
THOUGHT_REPLIES: list[tuple[str, str, int | None]] = [
    (_thought(1), "ok", 1),
    (_thought(0), "ok", 0),
    ('{"predicted_label": 1}', "failed", None),  # was "repaired" with label 1; the export said parse_failed
    ('{"thought_process": "  ", "predicted_label": 0}', "failed", None),
    ("1", "failed", None),
    ("I first wrote predicted_label: 0, but on reflection the predicted_label: 1", "failed", None),
    ("The gold label: 1\nMy view differs.", "failed", None),
    ("Some would say label = 1, others label = 0; I cannot decide.", "failed", None),
    ("There is no mislabel: no, the annotators were right.", "failed", None),
    ("The original label: true, but the opposite holds.", "failed", None),
    (_thought("0.99999999999999999"), "failed", None),
    (_thought("1e-400"), "failed", None),
    (_thought(HUGE), "failed", None),
    (f"Here is a number: {HUGE}\n" + _thought(1), "repaired", 1),
    ("```json\n{'thought_process': '" + STEPS + "', 'predicted_label': 1,}\n```", "repaired", 1),
    ('{"predicted_label": 0, "thought_process": "' + STEPS[:30], "repaired", 0),  # cut, label complete
    ('{"thought_process": "' + STEPS + '", "predicted_label": 1', "failed", None),  # cut at the label
    (f"Thought process: {STEPS}\nPredicted label: 1", "repaired", 1),
]












def _parse_failed_ids(path: Path, ablation: str) -> set[int]:
    db = open_db(path)
    try:
        planned = plan(db, SftOptions(ablation=ablation, splits=("train",)))
    finally:
        db.conn.close()
    return set(planned.left_out_ids.get("parse_failed", []))


def test_a_5000_digit_integer_is_stored_as_a_failed_parse(fake: FakeMistral, tmp_path: Path) -> None:
    """It used to raise ValueError in the parser: generate crashed, stored nothing, left its run running."""
    pairs = toy_pairs(3)
    path = toy_db(tmp_path / "p.db", pairs)
    poison = {("thought", pairs[0][0]): _thought(HUGE), ("thought", pairs[1][0]): f"{HUGE} is my answer: {HUGE}"}
    fake.script_replies(poison)
    result = run_stage(path, stage_options("thought", client_settings(fake.url, max_concurrency=4, max_retries=1)))
    assert result.counters.stored == 3 and result.counters.parse["failed"] == 2
    db = open_db(path)
    rows = {r["example_id"]: r for r in db.query("SELECT * FROM generations WHERE kind = 'thought'")}
    assert get_run(db, result.run_id).status == "completed"
    db.conn.close()
    for example_id in (1, 2):
        row = rows[example_id]
        assert row["parse_status"] == "failed" and row["predicted_label"] is None
        assert HUGE in row["raw_response"]  # the paid answer kept as it came
        assert json.loads(row["params"])["parse_problems"]
    assert rows[3]["parse_status"] == "ok"
    sent = len(fake.snapshot())
    assert run_stage(path, stage_options("thought", client_settings(fake.url, max_concurrency=4, max_retries=1))).counters.total == 0  # never paid twice
    assert len(fake.snapshot()) == sent


def test_stored_parse_status_agrees_with_the_export(fake: FakeMistral, tmp_path: Path) -> None:
    pairs = toy_pairs(len(THOUGHT_REPLIES) + 4)
    path = toy_db(tmp_path / "p.db", pairs)
    replies = {("thought", pairs[i][0]): reply for i, (reply, _, _) in enumerate(THOUGHT_REPLIES)}
    # The last four examples: thoughts that disagree with gold, so they get reflections (scripted too).
    wrong = list(range(len(THOUGHT_REPLIES), len(pairs)))
    for i in wrong:
        replies[("thought", pairs[i][0])] = _thought(1 - pairs[i][2])
    reflections = [
        json.dumps({"error_analysis": "It missed the place.", "improved_thought_process": STEPS,
                    "predicted_label": pairs[wrong[0]][2]}),                     # reaches gold: ok
        '{"error_analysis": "It missed the place.", "predicted_label": ' + str(pairs[wrong[1]][2]) + '}',  # no thought
        f"The gold label: {pairs[wrong[2]][2]}\nMy view differs.",              # restates gold, disagrees
        '{"error_analysis": "x", "improved_thought_process": "' + STEPS + '", "predicted_label": ' + HUGE + "}",
    ]
    for i, reply in zip(wrong, reflections, strict=True):
        replies[("reflection", pairs[i][0])] = reply
    fake.script_replies(replies)

    stage = run_stage(path, stage_options("thought", client_settings(fake.url, max_concurrency=4, max_retries=1)))
    assert stage.counters.stored == len(pairs)
    db = open_db(path)
    thoughts = {r["example_id"]: r for r in db.query("SELECT * FROM generations WHERE kind = 'thought'")}
    db.conn.close()
    failed = {eid for eid, r in thoughts.items() if r["parse_status"] == "failed"}
    assert _parse_failed_ids(path, "unmodified") == failed  # the store and the export say the same
    for i, (reply, status, label) in enumerate(THOUGHT_REPLIES):
        row = thoughts[i + 1]
        assert (row["parse_status"], row["predicted_label"]) == (status, label), reply[:60]
        if status == "failed":
            assert row["raw_response"] == reply
    assert stage.summary["parse_failed"] == len(failed) == stage.counters.parse["failed"]

    # Parsed thoughts that disagree with gold get a reflection: the four scripted ones, and the fake's
    # usual (correct) reflection for the others.
    others = sum(label is not None and label != pairs[i][2] for i, (_, _, label) in enumerate(THOUGHT_REPLIES))
    reflect = run_stage(path, stage_options("reflection", client_settings(fake.url, max_concurrency=4, max_retries=1)))
    assert reflect.counters.stored == 4 + others and reflect.counters.parse["failed"] == 3
    assert reflect.summary["reached_gold"] == 1 + others  # "The gold label: 1 / My view differs." is not
    db = open_db(path)
    reflected = {r["example_id"]: r for r in db.query("SELECT * FROM generations WHERE kind = 'reflection'")}
    flagged = {r[0] for r in db.execute("SELECT id FROM examples WHERE parse_failed = 1")}
    db.conn.close()
    refl_failed = {eid for eid, r in reflected.items() if r["parse_status"] == "failed"}
    assert refl_failed == {wrong[1] + 1, wrong[2] + 1, wrong[3] + 1}
    assert all(reflected[e]["predicted_label"] is None for e in refl_failed)
    # The reflected set needs the reflection of a wrong thought: it is left out as parse_failed exactly when
    # the stored reflection failed (or the thought did), as the store's own parse_failed flag says.
    assert _parse_failed_ids(path, "reflected") == failed | refl_failed == flagged
